import KilnOCI

/// Hashes (SHA-256) and counts what is read through it: a blob's digest or a layer's
/// diffID checked as the bytes pass, with no second read.
public final class HashingReader: ByteReader {
    private let source: ByteReader
    private var hasher = SHA256Hasher()

    public init(_ source: ByteReader) { self.source = source }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        if n > 0 { hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        return n
    }

    /// Reads (and hashes) whatever is left.
    public func drain() throws {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while try read(into: buf) > 0 {}
    }

    public var count: Int64 { hasher.count }
    public var digest: Digest { hasher.finalize() }
}
