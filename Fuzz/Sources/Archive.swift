import KilnArchive

enum FuzzArchive {
    static func tar(_ data: [UInt8]) { try? readTar(MemoryReader(data)) }
    static func gzip(_ data: [UInt8]) { try? drain(GzipReader(MemoryReader(data), limit: fuzzLimit)) }
    static func zstd(_ data: [UInt8]) { try? drain(ZstdReader(MemoryReader(data), limit: fuzzLimit)) }
    static func xz(_ data: [UInt8]) { try? drain(XzReader(MemoryReader(data), limit: fuzzLimit)) }

    /// What a layer goes through: compression sniffed from its first bytes, then the tar
    /// reader over the decompressed stream.
    static func compression(_ data: [UInt8]) {
        try? readTar(Compression.decompressing(MemoryReader(data), limit: fuzzLimit))
    }
}
