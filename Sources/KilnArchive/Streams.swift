import CKilnSys
import KilnOCI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pull-based byte stream. `read` returns 0 only at the end.
///
/// Streams are synchronous and single-owner: a layer pipeline owns its readers and
/// writers on one task, which keeps memory bounded by the buffers in flight.
public protocol ByteReader: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A push-based byte stream. `finish` flushes trailers (compressors) and must be
/// called once, after the last `write`.
public protocol ByteWriter: AnyObject {
    func write(_ buffer: UnsafeRawBufferPointer) throws
    func finish() throws
}

extension ByteWriter {
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

extension ByteReader {
    /// Reads exactly `buffer.count` bytes, or fewer only at the end of the stream.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var n = 0
        while n < buffer.count {
            let r = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[n...]))
            if r == 0 { break }
            n += r
        }
        return n
    }

    /// Copies the rest of the stream into `writer`; returns the number of bytes copied.
    @discardableResult
    public func copy(to writer: ByteWriter, bufferSize: Int = 1 << 20) throws -> Int64 {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buf.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try read(into: buf)
            if n == 0 { return total }
            try writer.write(UnsafeRawBufferPointer(rebasing: buf[..<n]))
            total += Int64(n)
        }
    }

    /// Reads the whole stream; only for small documents (manifests, configs).
    public func readAll(limit: Int = 64 << 20) throws -> [UInt8] {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if n == 0 { return out }
            out.append(contentsOf: chunk[..<n])
            if out.count > limit { throw ArchiveError.tooLarge("document", limit: Int64(limit)) }
        }
    }
}

/// Errors from reading and writing archives and streams.
public enum ArchiveError: Error, CustomStringConvertible, Sendable {
    case io(String, path: String, errno: Int32)
    case corrupt(String)
    case tooLarge(String, limit: Int64)
    case unsafePath(String)
    case compression(String)

    public var description: String {
        switch self {
        case .io(let op, let path, let e): return "\(op) \(path): \(String(cString: strerror(e)))"
        case .corrupt(let s): return s
        case .tooLarge(let what, let limit): return "\(what) exceeds the limit of \(limit) bytes"
        case .unsafePath(let s): return s
        case .compression(let s): return s
        }
    }
}

/// Reads a file through its descriptor.
public final class FileReader: ByteReader {
    public let fd: Int32
    public let path: String
    private let owns: Bool

    public init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ArchiveError.io("cannot open", path: path, errno: errno) }
        self.fd = fd
        self.path = path
        self.owns = true
    }

    /// Wraps an existing descriptor (stdin, say) without closing it.
    public init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        self.owns = false
    }

    deinit { if owns { close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ArchiveError.io("cannot read", path: path, errno: errno)
        }
    }
}

/// Writes to a file descriptor.
public final class FileWriter: ByteWriter {
    public let fd: Int32
    public let path: String
    private let owns: Bool
    public private(set) var offset: Int64 = 0

    /// Creates (truncating) `path` with mode 0644.
    public init(creating path: String, mode: mode_t = 0o644) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw ArchiveError.io("cannot create", path: path, errno: errno) }
        self.fd = fd
        self.path = path
        self.owns = true
    }

    public init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        self.owns = false
    }

    deinit { if owns { close(fd) } }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw ArchiveError.io("cannot write", path: path, errno: errno)
            }
            done += n
        }
        offset += Int64(buffer.count)
    }

    /// Overwrites bytes at an earlier offset (patching a header) without moving on.
    public func pwrite(_ bytes: [UInt8], at position: Int64) throws {
        let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(position)) }
        guard n == bytes.count else { throw ArchiveError.io("cannot write", path: path, errno: errno) }
    }

    public func finish() throws {}

    /// Appends exactly `count` bytes of another file, copied in the kernel
    /// (copy_file_range, reflinks where the file system can) when possible.
    public func copy(fromFile src: FileReader, count: Int64) throws {
        var left = count
        while left > 0 {
            let n = kiln_copy_file_range(src.fd, fd, Int(min(left, 1 << 30)))
            if n > 0 {
                left -= Int64(n)
                offset += Int64(n)
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n == 0 { throw ArchiveError.corrupt("\(src.path): shorter than the \(count) bytes expected") }
            // No kernel copy here (another file system, a pipe): copy through memory.
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buf.deallocate() }
            while left > 0 {
                let r = try src.read(into: UnsafeMutableRawBufferPointer(rebasing: buf[..<Int(min(Int64(buf.count), left))]))
                if r == 0 { throw ArchiveError.corrupt("\(src.path): shorter than the \(count) bytes expected") }
                try write(UnsafeRawBufferPointer(rebasing: buf[..<r]))
                left -= Int64(r)
            }
        }
    }

    /// Cuts the file back to `position` and continues writing there.
    public func truncate(to position: Int64) throws {
        guard ftruncate(fd, off_t(position)) == 0, lseek(fd, off_t(position), SEEK_SET) >= 0 else {
            throw ArchiveError.io("cannot truncate", path: path, errno: errno)
        }
        offset = position
    }

    /// Flushes the file to stable storage before it is renamed into place.
    public func sync() throws {
        guard fsync(fd) == 0 || errno == EINVAL else { throw ArchiveError.io("cannot sync", path: path, errno: errno) }
    }
}

/// Hashes everything written through it, then forwards it.
public final class HashingWriter: ByteWriter {
    public private(set) var hasher = KilnOCI.SHA256Hasher()
    private let next: ByteWriter?

    public init(_ next: ByteWriter?) { self.next = next }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        hasher.update(buffer)
        try next?.write(buffer)
    }

    public func finish() throws { try next?.finish() }

    public var count: Int64 { hasher.count }
    public var digest: KilnOCI.Digest { hasher.finalize() }
}

/// Counts bytes and throws them away.
public final class NullWriter: ByteWriter {
    public private(set) var count: Int64 = 0
    public init() {}
    public func write(_ buffer: UnsafeRawBufferPointer) throws { count += Int64(buffer.count) }
    public func finish() throws {}
}

/// Reads from an in-memory buffer.
public final class BufferReader: ByteReader {
    private let bytes: [UInt8]
    private var pos = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - pos)
        if n > 0 {
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + pos, byteCount: n)
            }
            pos += n
        }
        return n
    }
}

/// Collects written bytes in memory; for small documents and tests.
public final class BufferWriter: ByteWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public func write(_ buffer: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: buffer) }
    public func finish() throws {}
}
