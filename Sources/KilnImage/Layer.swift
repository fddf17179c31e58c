import KilnArchive
import KilnOCI

/// Something that can write a layer's uncompressed tar stream, such as a layer being
/// built from a file tree. Its digests are learnt while it is written.
public protocol LayerProducer: Sendable {
    /// The exact size of the uncompressed tar, known before any byte is produced
    /// (it lets sinks write tar headers without buffering the layer).
    var uncompressedSize: Int64 { get }
    /// Writes the tar stream; when `tarsum` is given, feeds it every entry as written,
    /// so Docker's legacy checksum costs no extra pass.
    func writeTar(to out: ByteWriter, tarsum: TarsumAccumulator?) throws
}

extension LayerProducer {
    public func writeTar(to out: ByteWriter) throws { try writeTar(to: out, tarsum: nil) }
}

/// A tarsum being computed while a layer is written.
public final class TarsumAccumulator {
    public var tarsum: Tarsum
    public init(version: TarsumVersion = .v1) { tarsum = Tarsum(version: version) }
    public func finish() -> String { tarsum.finish() }
}

/// A layer whose blob already exists somewhere (an archive, a layout, a registry).
/// Its bytes are copied as they are, so digests are preserved.
public protocol StoredLayer: Sendable {
    var descriptor: Descriptor { get }
    var diffID: Digest { get }
    /// The blob as stored (compressed or not, as `descriptor.mediaType` says).
    func openBlob() throws -> ByteReader
    /// The blob's local file, when it is one whose bytes are known to match the
    /// descriptor (a cache entry): sinks may link or copy it in the kernel.
    var localFile: String? { get }
    /// Docker's legacy tarsum of the uncompressed layer, when already known.
    var tarsum: String? { get }
}

extension StoredLayer {
    public var localFile: String? { nil }
    public var tarsum: String? { nil }
}

extension StoredLayer {
    /// The uncompressed tar stream.
    public func openUncompressed(limit: Int64? = nil) throws -> ByteReader {
        try Compression.decompressing(try openBlob(), limit: limit)
    }
}

/// A layer on its way into a sink.
public enum LayerInput: Sendable {
    /// Produced now and compressed as given where the format stores compressed layers.
    case produced(any LayerProducer, Compression)
    case stored(any StoredLayer)
}

/// The layer media type for a compression, in the OCI or Docker family.
public func layerMediaType(_ c: Compression, oci: Bool = true) -> String {
    switch (c, oci) {
    case (.none, true): return MediaType.ociLayer
    case (.gzip, true): return MediaType.ociLayerGzip
    case (.zstd, true): return MediaType.ociLayerZstd
    case (.none, false): return MediaType.dockerLayer
    case (.gzip, false): return MediaType.dockerLayerGzip
    case (.zstd, false): return MediaType.dockerLayerZstd
    }
}

extension Compression {
    /// The compression a layer media type names (nil for an unknown type).
    public init?(mediaType: String) {
        switch mediaType {
        case MediaType.ociLayer, MediaType.dockerLayer: self = .none
        case MediaType.ociLayerGzip, MediaType.dockerLayerGzip: self = .gzip
        case MediaType.ociLayerZstd, MediaType.dockerLayerZstd: self = .zstd
        default: return nil
        }
    }
}

/// The OCI layer media type for a Docker one (unchanged when already OCI).
public func ociLayerMediaType(_ type: String) -> String {
    switch type {
    case MediaType.dockerLayer: return MediaType.ociLayer
    case MediaType.dockerLayerGzip: return MediaType.ociLayerGzip
    case MediaType.dockerLayerZstd: return MediaType.ociLayerZstd
    default: return type
    }
}
