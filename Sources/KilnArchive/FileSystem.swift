#if canImport(Glibc)
import Glibc
#endif

/// The few directory operations every module needs, in one place.
public enum FileSystem {
    /// A directory's entry names (without `.` and `..`), sorted bytewise so that
    /// traversal order never depends on the file system.
    public static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw ArchiveError.io("cannot list", path: path, errno: errno)
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafePointer(to: ent.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    /// `mkdir -p`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var cur = path.hasPrefix("/") ? "" : "."
        for c in path.split(separator: "/") {
            cur += "/" + c
            if mkdir(cur, mode) != 0 && errno != EEXIST {
                throw ArchiveError.io("cannot create directory", path: cur, errno: errno)
            }
        }
    }

    /// `rm -rf`, symlinks never followed; directories a script made read-only are
    /// opened up first so they can be emptied.
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            for n in (try? listDirectory(path)) ?? [] { removeTree(path + "/" + n) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Writes a small file whole through a temporary file beside it, synced and renamed
    /// into place: a failure leaves the old file (or none), never half a new one.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws {
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let w = try FileWriter(creating: tmp, mode: mode)
            try w.write(bytes)
            try w.sync()
            guard rename(tmp, path) == 0 else { throw ArchiveError.io("cannot write", path: path, errno: errno) }
        } catch {
            unlink(tmp)
            throw error
        }
    }
}
