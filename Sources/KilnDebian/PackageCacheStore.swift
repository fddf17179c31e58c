#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// Content-addressed files (.debs, compressed indexes) under one directory:
/// `root/blobs/sha256/<hex>` for content, `root/tmp/` for downloads in progress. A file
/// appears under `blobs` only after its hash was checked, by a rename within the same
/// file system, so a reader never sees a partial file and two processes storing the same
/// content both succeed (the second rename replaces identical bytes).
public struct PackageCacheStore: Sendable {
    public let root: String

    public init(root: String) throws {
        self.root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        do {
            try FileSystem.makeDirectories(self.root + "/blobs/sha256")
            try FileSystem.makeDirectories(self.root + "/tmp")
        } catch {
            throw RepositoryError.io(root, reason: "cannot create the package cache: \(error)")
        }
    }

    /// Where content with this SHA256 (64 hex digits, no `sha256:` prefix) lives.
    public func path(sha256: String) -> String {
        root + "/blobs/sha256/" + Self.hex(sha256)
    }

    /// Whether the content is stored (and has `size` bytes, when given). A stat, no hashing:
    /// only verified content is ever renamed into place.
    public func has(sha256: String, size: Int64?) -> Bool {
        var st = stat()
        guard stat(path(sha256: sha256), &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return false }
        if let size { return Int64(st.st_size) == size }
        return true
    }

    /// Moves a verified temporary file (from `newTempPath`) into place and returns its
    /// path. The caller has checked the hash; this only renames.
    public func adopt(tempFile: String, sha256: String) throws -> String {
        let dest = path(sha256: sha256)
        guard rename(tempFile, dest) == 0 else {
            let e = errno
            unlink(tempFile)
            throw RepositoryError.io(dest, reason: "cannot move \(tempFile) into the cache: \(String(cString: strerror(e)))")
        }
        return dest
    }

    /// A fresh path under `root/tmp`, on the same file system as the blobs.
    public func newTempPath() -> String {
        let r = (0..<4).map { _ in String(UInt32.random(in: 0...UInt32.max), radix: 16) }.joined()
        return root + "/tmp/" + r
    }

    /// Accepts `sha256:<hex>` too, and upper-case hex.
    static func hex(_ s: String) -> String {
        (s.hasPrefix("sha256:") ? String(s.dropFirst(7)) : s).lowercased()
    }
}
