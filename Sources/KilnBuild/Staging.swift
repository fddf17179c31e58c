#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// A private temporary directory for one build: bodies unpacked from archives and
/// the tree `extraCommands` runs in. Removed when the build ends, whatever happens.
public final class Staging: @unchecked Sendable {
    public let path: String
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

    deinit { FileSystem.removeTree(path) }

    public func recordContent(_ path: String, digest: Digest) { digests[path] = digest }

    public func contentDigest(of path: String) -> Digest? { digests[path] }

    /// A fresh path inside the staging directory.
    public func newPath(_ hint: String) -> String {
        counter += 1
        return "\(path)/\(counter)-\(hint)"
    }
}
