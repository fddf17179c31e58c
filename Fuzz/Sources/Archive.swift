import KilnArchive

enum FuzzArchive {
    /// The tar reader, and tarsum (which reads layers as Go's archive/tar does) over it.
    static func tar(_ data: [UInt8]) {
        try? readTar(MemoryReader(data))
        for version in TarsumVersion.allCases {
            _ = try? Tarsum.compute(reader: MemoryReader(data), version: version, limit: fuzzLimit)
        }
    }
    static func gzip(_ data: [UInt8]) { try? drain(GzipReader(MemoryReader(data), limit: fuzzLimit)) }
    static func zstd(_ data: [UInt8]) { try? drain(ZstdReader(MemoryReader(data), limit: fuzzLimit)) }
    static func xz(_ data: [UInt8]) { try? drain(XzReader(MemoryReader(data), limit: fuzzLimit)) }

    /// What a layer goes through: compression sniffed from its first bytes, then the tar
    /// reader over the decompressed stream.
    static func compression(_ data: [UInt8]) {
        try? readTar(Compression.decompressing(MemoryReader(data), limit: fuzzLimit))
    }
}
