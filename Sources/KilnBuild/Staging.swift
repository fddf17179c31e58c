#if canImport(Glibc)
import Glibc
#endif
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

    deinit { Staging.remove(path) }

    public func recordContent(_ path: String, digest: Digest) { digests[path] = digest }

    public func contentDigest(of path: String) -> Digest? { digests[path] }

    /// A fresh path inside the staging directory.
    public func newPath(_ hint: String) -> String {
        counter += 1
        return "\(path)/\(counter)-\(hint)"
    }

    static func remove(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            // Directories made read-only by a script must still be emptied.
            chmod(path, 0o700)
            if let d = opendir(path) {
                var names: [String] = []
                while let e = readdir(d) {
                    let n = withUnsafePointer(to: e.pointee.d_name) {
                        $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
                    }
                    if n != "." && n != ".." { names.append(n) }
                }
                closedir(d)
                for n in names { remove(path + "/" + n) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
