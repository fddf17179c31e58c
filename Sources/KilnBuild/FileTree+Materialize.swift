#if canImport(Glibc)
import Glibc
#endif
import CKilnSys
import KilnArchive

extension FileTree {
    /// Writes the tree to `dir` as real files, for `extraCommands` to work on. Modes are
    /// set exactly (the umask plays no part); owners are not, so no root is needed:
    /// they are carried over by path when the directory is read back.
    public func materialize(at dir: String) throws {
        func fail(_ what: String, _ p: String) -> BuildError {
            BuildError("cannot \(what) \(p) for extraCommands: \(String(cString: strerror(errno)))")
        }
        let ordered = FileTree.sortedPaths(nodes.keys)
        var linked: [FileIdentity: String] = [:]
        for rel in ordered {
            let node = nodes[rel]!
            let p = dir + "/" + rel
            switch node.content {
            case .directory:
                guard mkdir(p, 0o700) == 0 else { throw fail("create directory", p) }
            case .file(let src):
                if case .host(_, _, let id?) = src, let first = linked[id] {
                    guard link(first, p) == 0 else { throw fail("link", p) }
                    continue
                }
                switch src {
                case .host(let from, _, let id):
                    try copyFile(from: from, to: p)
                    if let id { linked[id] = p }
                case .inline(let bytes):
                    let w = try FileWriter(creating: p, mode: 0o600)
                    try w.write(bytes)
                }
                guard chmod(p, mode_t(node.mode)) == 0 else { throw fail("chmod", p) }
            case .symlink(let target):
                guard symlink(target, p) == 0 else { throw fail("create symlink", p) }
            case .hardlink(let target):
                guard link(dir + "/" + target, p) == 0 else { throw fail("link", p) }
            case .charDevice(let ma, let mi), .blockDevice(let ma, let mi):
                let type: mode_t = node.content == .charDevice(major: ma, minor: mi) ? S_IFCHR : S_IFBLK
                guard mknod(p, type | mode_t(node.mode), kiln_makedev(ma, mi)) == 0 else { throw fail("create device", p) }
            case .fifo:
                guard mkfifo(p, mode_t(node.mode)) == 0 else { throw fail("create fifo", p) }
            }
        }
        // Directory modes last, deepest first, so read-only directories can be filled.
        for rel in ordered.reversed() where nodes[rel]!.isDirectory {
            guard chmod(dir + "/" + rel, mode_t(nodes[rel]!.mode)) == 0 else { throw fail("chmod", dir + "/" + rel) }
        }
    }

    /// Reads a materialized tree back after `extraCommands`. Modes are taken as they are
    /// on disk (the script may have set them); owners and xattrs come from `previous` by
    /// path, and new paths belong to root.
    public static func readBack(from dir: String, previous: FileTree) throws -> FileTree {
        var tree = FileTree()
        func walk(_ hostPath: String, _ rel: String) throws {
            for name in try FileSystem.listDirectory(hostPath) {
                let h = hostPath + "/" + name
                let r = rel.isEmpty ? name : rel + "/" + name
                var node = try FileNode.host(h, xattrs: false)
                var st = stat()
                if lstat(h, &st) == 0, (st.st_mode & S_IFMT) != S_IFLNK { node.mode = UInt32(st.st_mode & 0o7777) }
                if let old = previous.nodes[r] {
                    node.uid = old.uid
                    node.gid = old.gid
                    node.xattrs = old.xattrs
                }
                tree.insert(r, node)
                if node.isDirectory { try walk(h, r) }
            }
        }
        try walk(dir, "")
        return tree
    }
}

/// Copies a file's bytes with copy_file_range (reflinks where the file system can).
func copyFile(from: String, to: String) throws {
    let src = open(from, O_RDONLY | O_CLOEXEC)
    guard src >= 0 else { throw BuildError("cannot read \(from): \(String(cString: strerror(errno)))") }
    defer { close(src) }
    let dst = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard dst >= 0 else { throw BuildError("cannot create \(to): \(String(cString: strerror(errno)))") }
    defer { close(dst) }
    while true {
        let n = kiln_copy_file_range(src, dst, 1 << 30)
        if n == 0 { return }
        if n < 0 {
            if errno == EINTR { continue }
            if errno == EXDEV || errno == ENOSYS || errno == EINVAL { break }
            throw BuildError("cannot copy \(from): \(String(cString: strerror(errno)))")
        }
    }
    // Fallback for file systems without copy_file_range.
    let r = FileReader(fd: src, path: from)
    _ = try r.copy(to: FileWriter(fd: dst, path: to))
}
