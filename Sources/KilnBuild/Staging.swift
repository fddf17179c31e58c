#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI
import Foundation

/// A private temporary directory for one build: bodies unpacked from archives and
/// the tree `extraCommands` runs in. Removed when the build ends, whatever happens.
/// Shared by the threads of a build: its mutable state is behind a lock.
public final class Staging: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var counter = 0
    /// Digests of bodies unpacked from archives, by staged path: their identity for the
    /// layer cache, since the staged copies are new files each build.
    private var digests: [String: Digest] = [:]

    public init() throws {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/kiln-build-XXXXXX".utf8CString)
        guard let p = mkdtemp(&template) else {
            throw BuildError("cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
        }
        path = String(cString: p)
    }

    deinit { remove() }

    /// Deletes the directory now. Commands call it when they end: a pipeline thread may
    /// still hold the last reference when the process exits.
    public func remove() { FileSystem.removeTree(path) }

    public func recordContent(_ path: String, digest: Digest) { lock.withLock { digests[path] = digest } }

    public func contentDigest(of path: String) -> Digest? { lock.withLock { digests[path] } }

    /// A fresh path inside the staging directory.
    public func newPath(_ hint: String) -> String {
        let n = lock.withLock {
            counter += 1
            return counter
        }
        return "\(path)/\(n)-\(hint)"
    }
}
