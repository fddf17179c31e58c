import KilnArchive
import KilnOCI

/// An image on its way into a sink: its name, config and layers. The config's
/// `rootfs.diff_ids` is completed by the sink as layers are produced.
public struct PendingImage: Sendable {
    /// Repository name, such as `example/hello`.
    public var name: String
    /// The tag; when nil the sink derives one from the config digest, as dockerTools
    /// derives it from the output hash.
    public var tag: String?
    public var config: ImageConfig
    public var layers: [LayerInput]
    /// When copying an image: its config and manifest exactly as the source stores
    /// them, written unchanged so every digest is preserved.
    public var stored: StoredDocuments?

    public init(name: String, tag: String?, config: ImageConfig, layers: [LayerInput], stored: StoredDocuments? = nil) {
        self.name = name
        self.tag = tag
        self.config = config
        self.layers = layers
        self.stored = stored
    }

    /// The config bytes to write: the stored ones, or the canonical encoding of
    /// `config` with the diffIDs the sink produced. Every sink takes them from here.
    public func configBytes(diffIDs: [Digest]) throws -> [UInt8] {
        if let stored { return stored.config }
        var c = config
        c.rootfs = RootFS(diffIDs: diffIDs)
        return try CanonicalJSON.encode(c)
    }

    /// The OCI manifest (image-spec manifest.md) that OCI layouts and registries get for
    /// a built image, or for a copy whose stored manifest they cannot keep: the config
    /// blob and the layers, each with its OCI media type. The one synthesis of a
    /// manifest (docker-archives write Docker's `manifest.json` instead).
    public static func ociManifest(config: [UInt8], layers: [Descriptor]) throws -> [UInt8] {
        let manifest = Manifest(
            mediaType: MediaType.ociManifest,
            config: Descriptor(mediaType: MediaType.ociConfig, digest: .sha256(config), size: Int64(config.count)),
            layers: layers.map { d in
                var d = d
                d.mediaType = ociLayerMediaType(d.mediaType)
                return d
            })
        return try CanonicalJSON.encode(manifest)
    }
}

/// A config and manifest as stored by a source.
public struct StoredDocuments: Sendable {
    public var config: [UInt8]
    public var manifest: [UInt8]
    public var manifestMediaType: String

    public init(config: [UInt8], manifest: [UInt8], manifestMediaType: String) {
        self.config = config
        self.manifest = manifest
        self.manifestMediaType = manifestMediaType
    }
}

extension SourceImage {
    /// This image as input to a sink, unchanged: same layers, config and manifest.
    public func pending(name: String, tag: String?) -> PendingImage {
        PendingImage(name: name, tag: tag, config: config, layers: layers.map { .stored($0) },
                     stored: StoredDocuments(config: configBytes, manifest: manifestBytes,
                                             manifestMediaType: manifest.mediaType ?? MediaType.ociManifest))
    }
}

/// What a sink wrote.
public struct WrittenImage: Sendable, Codable {
    public var reference: String
    public var tag: String
    public var manifestDigest: Digest
    public var configDigest: Digest
    public var layers: [Descriptor]
    public var diffIDs: [Digest]

    public init(reference: String, tag: String, manifestDigest: Digest, configDigest: Digest, layers: [Descriptor], diffIDs: [Digest]) {
        self.reference = reference
        self.tag = tag
        self.manifestDigest = manifestDigest
        self.configDigest = configDigest
        self.layers = layers
        self.diffIDs = diffIDs
    }
}

/// A destination for images: an OCI layout, an OCI archive, a docker-archive, a registry.
public protocol ImageSink {
    func write(_ image: PendingImage) throws -> WrittenImage
}

extension PendingImage {
    /// The tag derived from the config digest: its first 32 hex digits.
    public static func derivedTag(configDigest: Digest) -> String {
        String(configDigest.hex.prefix(32))
    }
}
