import KilnArchive
import KilnImage
import KilnOCI

/// A layer produced from a file tree: entries in their final order, read from the
/// host only while the tar stream is written.
public struct TreeLayer: LayerProducer {
    public let entries: [LayerEntry]
    public let uncompressedSize: Int64
    /// SHA-256 of every encoded header: the metadata part of the layer's cache key.
    public let metadataDigest: Digest

    public init(tree: FileTree, mtime: Int64) throws {
        entries = tree.entries(mtime: mtime)
        var total: Int64 = 1024  // end-of-archive blocks
        var hasher = SHA256Hasher()
        for e in entries {
            let header = try TarWriter.encode(e.header)
            hasher.update(header)
            total += Int64(header.count) + TarBlock.padded(e.header.bodySize)
        }
        uncompressedSize = total
        metadataDigest = hasher.finalize()
    }

    public func writeTar(to out: ByteWriter, tarsum: TarsumAccumulator?) throws {
        let meter = ProgressBoard.shared.beginLayer(size: uncompressedSize)
        defer { meter.finish() }
        let tar = TarWriter(out)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for entry in entries {
            try tar.writeHeader(entry.header)
            tarsum?.tarsum.beginEntry(entry.header)
            switch entry.source {
            case .host(let path, let size, _)?:
                let reader = try FileReader(path: path)
                var left = size
                while left > 0 {
                    let n = try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), left))]))
                    if n == 0 { throw BuildError("\(path): file shrank while it was being read") }
                    let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
                    try tar.writeBody(chunk)
                    tarsum?.tarsum.update(chunk)
                    meter.read(n)
                    left -= Int64(n)
                }
                // A file that grew since it was listed would silently lose its tail.
                if try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<1])) != 0 {
                    throw BuildError("\(path): file grew while it was being read")
                }
            case .inline(let bytes)?:
                try bytes.withUnsafeBytes { try tar.writeBody($0) }
                tarsum?.tarsum.update(bytes)
                meter.read(bytes.count)
            case nil:
                break
            }
        }
        try tar.close(finishOutput: false)
    }
}
