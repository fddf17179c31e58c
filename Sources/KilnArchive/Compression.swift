/// The compressions a layer blob can have: the OCI image-spec layer media types
/// `application/vnd.oci.image.layer.v1.tar`, `…tar+gzip` and `…tar+zstd`.
public enum Compression: String, Sendable, CaseIterable {
    case none, gzip, zstd

    /// Identifies a stream from its first bytes (4 are enough):
    /// gzip `1f 8b` (RFC 1952 §2.3.1), zstd frame magic `28 b5 2f fd` or a
    /// skippable frame `5? 2a 4d 18` (RFC 8878 §3.1.1, §3.1.2); anything else,
    /// a tar header included, is `.none`.
    public static func detect(_ firstBytes: [UInt8]) -> Compression {
        let b = firstBytes
        if b.count >= 2 && b[0] == 0x1f && b[1] == 0x8b { return .gzip }
        if b.count >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd { return .zstd }
        if b.count >= 4 && b[0] & 0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18 { return .zstd }
        return .none
    }

    /// A writer compressing into `next` with the default level (gzip 6, zstd 3);
    /// `.none` forwards writes and `finish` unchanged.
    public func writer(_ next: ByteWriter) -> ByteWriter {
        let next = ProgressBoard.shared.counting(next)  // the bytes written, for the progress display
        switch self {
        case .none: return PassthroughWriter(next)
        case .gzip: return ParallelGzipWriter(next)
        // Always libzstd's worker threads (never 0): the bytes are then the same for any
        // number of cores, so a build on 2 cores equals one on 64.
        case .zstd: return ZstdWriter(next, threads: ProcessInfoCores.count)
        }
    }

    /// A reader decompressing `reader`, which must be in this compression.
    public func reader(_ reader: ByteReader, limit: Int64? = nil) -> ByteReader {
        switch self {
        case .none: return limit.map { LimitedReader(reader, limit: $0) } ?? reader
        case .gzip: return GzipReader(reader, limit: limit)
        case .zstd: return ZstdReader(reader, limit: limit)
        }
    }

    /// Opens `path` and decompresses it according to its magic bytes (gzip, zstd
    /// or xz; see `decompressing`).
    /// - Parameter limit: the most bytes to produce before `ArchiveError.tooLarge`
    ///   (applies to uncompressed files too).
    public static func openDecompressed(path: String, limit: Int64? = nil) throws -> ByteReader {
        try decompressing(FileReader(path: path), limit: limit)
    }

    /// Sniffs the first bytes of `reader` and returns a reader of the plain bytes:
    /// `reader` itself (behind the sniffed bytes), or a gzip, zstd or xz decoder.
    ///
    /// xz (magic `FD 37 7A 58 5A 00`, xz-file-format §2.1.1.1) is recognised here
    /// but is not a case of `Compression`, which names the OCI layer media types:
    /// it occurs in Debian packages and indexes, never as a layer compression.
    /// - Parameter limit: the most bytes to produce before `ArchiveError.tooLarge`
    ///   (applies to uncompressed input too).
    public static func decompressing(_ reader: ByteReader, limit: Int64? = nil) throws -> ByteReader {
        var magic = [UInt8](repeating: 0, count: XzReader.magic.count)
        let n = try magic.withUnsafeMutableBytes { try reader.readFully(into: $0) }
        magic.removeLast(magic.count - n)
        let prefixed = PrefixedReader(prefix: magic, reader)
        if XzReader.isXz(magic) { return XzReader(prefixed, limit: limit) }
        return detect(magic).reader(prefixed, limit: limit)
    }
}

/// Forwards writes and `finish` to another writer unchanged: the "compressor"
/// for `Compression.none`.
public final class PassthroughWriter: ByteWriter {
    private let next: ByteWriter
    public init(_ next: ByteWriter) { self.next = next }
    public func write(_ buffer: UnsafeRawBufferPointer) throws { try next.write(buffer) }
    public func finish() throws { try next.finish() }
}

/// Yields `prefix` and then the rest of another reader: puts back bytes that were
/// read to sniff a stream's format.
public final class PrefixedReader: ByteReader {
    private var prefix: [UInt8]
    private var prefixPos = 0
    private let rest: ByteReader

    public init(prefix: [UInt8], _ rest: ByteReader) {
        self.prefix = prefix
        self.rest = rest
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if prefixPos < prefix.count {
            let n = min(buffer.count, prefix.count - prefixPos)
            prefix.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + prefixPos, byteCount: n)
            }
            prefixPos += n
            if prefixPos == prefix.count { prefix = [] ; prefixPos = 0 }
            return n
        }
        return try rest.read(into: buffer)
    }
}

/// Passes another reader through, failing with `ArchiveError.tooLarge` once it
/// has produced more than `limit` bytes: the size guard for uncompressed input.
private final class LimitedReader: ByteReader {
    private let source: ByteReader
    private let limit: Int64
    private var total: Int64 = 0

    init(_ source: ByteReader, limit: Int64) {
        self.source = source
        self.limit = limit
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        total += Int64(n)
        if total > limit { throw ArchiveError.tooLarge("uncompressed stream", limit: limit) }
        return n
    }
}
