#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// Where a sink puts its files: a directory or a single tar file. Both stage their
/// output and make it appear at once on `commit`, so a failure leaves nothing behind;
/// `abort` undoes everything put since the store was opened, and a destination that
/// already existed (an OCI layout holding other images) is left exactly as it was.
public protocol LayoutStore: AnyObject {
    /// Streams a new entry whose final name depends on the digest of its bytes.
    /// Returns the digest and size of what `body` wrote. An entry whose name was
    /// already written is dropped (content-addressed names make it identical).
    func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64)
    /// Streams an entry whose name and size are known before its bytes: the only kind
    /// a sequential store (a pipe) can take. `body` must write exactly `size` bytes.
    func putKnown(_ name: String, size: Int64, body: (ByteWriter) throws -> Void) throws -> Digest
    /// Adds a local file whose size is known and whose bytes are trusted (a cache
    /// entry), linked or copied in the kernel where the store allows.
    func putLocalFile(_ name: String, from path: String, size: Int64) throws
    /// Writes a small file whole.
    func putFile(_ name: String, _ bytes: [UInt8]) throws
    /// Adds a directory entry (archives only; a directory store makes them as needed).
    func putDirectory(_ name: String) throws
    /// Reads back a small file that was already in the destination (`index.json`).
    func existingFile(_ name: String) -> [UInt8]?
    /// Whether the destination already had that file (a blob an artifact refers to).
    func hasExisting(_ name: String) -> Bool
    func commit() throws
    func abort()
}

extension LayoutStore {
    public func hasExisting(_ name: String) -> Bool { existingFile(name) != nil }

    /// A content-addressed blob at `blobs/sha256/<hex>`.
    public func putBlob(body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        try putStreamed(name: { "blobs/\($0.algorithm)/\($0.hex)" }, body: body)
    }

    @discardableResult
    public func putBlob(_ bytes: [UInt8]) throws -> (digest: Digest, size: Int64) {
        try putBlob { try $0.write(bytes) }
    }
}

func errnoMessage(_ e: Int32 = errno) -> String { String(cString: strerror(e)) }

/// A temporary path next to `path`, so the final rename stays on one file system.
func siblingTemp(of path: String) -> String {
    let dir = parentDirectory(path)
    let base = path.split(separator: "/").last.map(String.init) ?? "out"
    return "\(dir)/.\(base).kiln-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func readSmallFile(_ path: String, limit: Int = 64 << 20) -> [UInt8]? {
    guard let r = try? FileReader(path: path) else { return nil }
    return try? r.readAll(limit: limit)
}

/// A writer that forwards writes and ignores `finish`, so a pipeline can be
/// finished without closing the file underneath it.
final class UnfinishedWriter: ByteWriter {
    let next: ByteWriter
    init(_ next: ByteWriter) { self.next = next }
    func write(_ buffer: UnsafeRawBufferPointer) throws { try next.write(buffer) }
    func finish() throws {}
}

/// Passes exactly `size` bytes through, and says so clearly when a stream lies.
final class ExactSizeWriter: ByteWriter {
    let next: ByteWriter
    let size: Int64
    let what: String
    private(set) var count: Int64 = 0

    init(_ next: ByteWriter, size: Int64, what: String) {
        self.next = next
        self.size = size
        self.what = what
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        count += Int64(buffer.count)
        guard count <= size else { throw ImageError.invalid("\(what): more than the \(size) bytes expected (did a file change during the build?)") }
        try next.write(buffer)
    }

    func finish() throws { try next.finish() }

    func check() throws {
        guard count == size else { throw ImageError.invalid("\(what): \(count) bytes instead of the \(size) expected (did a file change during the build?)") }
    }
}

/// Errors from reading and writing images.
public enum ImageError: Error, CustomStringConvertible, Sendable {
    case io(String)
    case invalid(String)
    case digestMismatch(what: String, expected: Digest, actual: Digest)
    case notFound(String)

    public var description: String {
        switch self {
        case .io(let s), .invalid(let s), .notFound(let s): return s
        case .digestMismatch(let what, let expected, let actual):
            return "\(what): digest mismatch (expected \(expected), got \(actual))"
        }
    }
}
