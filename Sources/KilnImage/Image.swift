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

    public init(name: String, tag: String?, config: ImageConfig, layers: [LayerInput]) {
        self.name = name
        self.tag = tag
        self.config = config
        self.layers = layers
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
