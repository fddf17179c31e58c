import KilnArchive
import KilnOCI

/// An image read from somewhere: its manifest and config as stored, and its layers.
public struct SourceImage: Sendable {
    public var manifestBytes: [UInt8]
    public var manifest: Manifest
    public var configBytes: [UInt8]
    public var config: ImageConfig
    public var layers: [any StoredLayer]
    /// Names the source gives the image (`RepoTags`, the OCI ref name).
    public var names: [String]

    public var manifestDigest: Digest { .sha256(manifestBytes) }

    public init(manifestBytes: [UInt8], manifest: Manifest, configBytes: [UInt8], config: ImageConfig,
                layers: [any StoredLayer], names: [String]) {
        self.manifestBytes = manifestBytes
        self.manifest = manifest
        self.configBytes = configBytes
        self.config = config
        self.layers = layers
        self.names = names
    }
}

/// Produces images: an OCI layout or archive, a docker-archive (and later a registry).
public protocol ImageSource {
    func image() throws -> SourceImage
}

/// A layer whose blob is a file or a range of one.
struct BlobLayer: StoredLayer {
    let descriptor: Descriptor
    let diffID: Digest
    let open: @Sendable () throws -> ByteReader
    func openBlob() throws -> ByteReader { try open() }
}

/// Small documents are capped so a hostile manifest cannot exhaust memory.
let documentLimit = 4 << 20

extension SourceImage {
    /// Checks the config against the manifest and builds the layers.
    static func assemble(manifestBytes: [UInt8], what: String, names: [String],
                         readBlob: (Descriptor) throws -> [UInt8],
                         openBlob: @escaping @Sendable (Descriptor) throws -> ByteReader) throws -> SourceImage {
        let manifest = try CanonicalJSON.decode(Manifest.self, from: manifestBytes, what: "\(what): manifest")
        let configBytes = try readBlob(manifest.config)
        let actual = Digest.sha256(configBytes)
        guard actual == manifest.config.digest else {
            throw ImageError.digestMismatch(what: "\(what): config", expected: manifest.config.digest, actual: actual)
        }
        let config = try CanonicalJSON.decode(ImageConfig.self, from: configBytes, what: "\(what): config")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw ImageError.invalid("\(what): the manifest has \(manifest.layers.count) layers but the config lists \(config.rootfs.diff_ids.count) diff_ids")
        }
        let layers: [any StoredLayer] = zip(manifest.layers, config.rootfs.diff_ids).map { d, diff in
            BlobLayer(descriptor: d, diffID: diff, open: { try openBlob(d) })
        }
        return SourceImage(manifestBytes: manifestBytes, manifest: manifest, configBytes: configBytes,
                           config: config, layers: layers, names: names)
    }
}
