#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import CKilnSys

extension FileNode {
    /// Reads one host path's node with `lstat` (symlinks are not followed).
    ///
    /// Modes are normalised so the layer does not depend on the umask the inputs were
    /// created under: directories 0755, files 0755 when any execute bit is set and 0644
    /// otherwise, symlinks 0777. `perms` in the spec sets anything else.
    public static func host(_ path: String, xattrs: Bool) throws -> FileNode {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            throw BuildError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        let fmt = st.st_mode & S_IFMT
        let exec = (st.st_mode & 0o111) != 0
        var node: FileNode
        switch fmt {
        case S_IFREG:
            let id = st.st_nlink > 1 ? FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) : nil
            node = FileNode(.file(.host(path: path, size: Int64(st.st_size), identity: id)), mode: exec ? 0o755 : 0o644)
        case S_IFDIR:
            node = FileNode(.directory, mode: 0o755)
        case S_IFLNK:
            node = FileNode(.symlink(try readLink(path)), mode: 0o777)
        case S_IFCHR:
            node = FileNode(.charDevice(major: kiln_major(st.st_rdev), minor: kiln_minor(st.st_rdev)), mode: UInt32(st.st_mode & 0o7777))
        case S_IFBLK:
            node = FileNode(.blockDevice(major: kiln_major(st.st_rdev), minor: kiln_minor(st.st_rdev)), mode: UInt32(st.st_mode & 0o7777))
        case S_IFIFO:
            node = FileNode(.fifo, mode: 0o644)
        default:
            throw BuildError("\(path): sockets cannot be stored in an image")
        }
        if xattrs && fmt != S_IFLNK { node.xattrs = try Xattrs.read(path) }
        return node
    }

    static func readLink(_ path: String) throws -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { throw BuildError("cannot read symlink \(path): \(String(cString: strerror(errno)))") }
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension FileTree {
    /// Adds a host file or directory tree at `imagePath`. Symlinks inside the tree are
    /// stored as symlinks and never followed, so nothing outside the tree is read.
    public mutating func addHost(_ hostPath: String, at imagePath: String, xattrs: Bool) throws {
        try addHost(hostPath, normalized: FileTree.normalize(imagePath), xattrs: xattrs)
    }

    private mutating func addHost(_ hostPath: String, normalized target: String, xattrs: Bool) throws {
        let node = try FileNode.host(hostPath, xattrs: xattrs)
        ProgressBoard.shared.planned()
        if node.isDirectory {
            if !target.isEmpty { insert(normalized: target, node) }
            // Names from readdir hold no `/` and are never `.` or `..`: the joined path
            // is already normal.
            for name in try FileSystem.listDirectory(hostPath) {
                try addHost(hostPath + "/" + name, normalized: target.isEmpty ? name : target + "/" + name, xattrs: xattrs)
            }
        } else {
            guard !target.isEmpty else { throw BuildError("\(hostPath) is not a directory, so it cannot be merged into /") }
            insert(normalized: target, node)
        }
    }
}

/// Extended attributes of host files, every namespace (the trusted ones too when
/// Kiln runs as root, as runAsRoot needs).
enum Xattrs {
    static func read(_ path: String) throws -> [String: [UInt8]] {
        let size = llistxattr(path, nil, 0)
        if size <= 0 { return [:] }
        var names = [CChar](repeating: 0, count: size)
        let n = llistxattr(path, &names, size)
        guard n > 0 else { return [:] }
        var out: [String: [UInt8]] = [:]
        for raw in names[..<n].split(separator: 0) {
            let name = String(decoding: raw.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let vsize = lgetxattr(path, name, nil, 0)
            guard vsize >= 0 else { continue }
            var value = [UInt8](repeating: 0, count: vsize)
            let got = lgetxattr(path, name, &value, vsize)
            if got >= 0 { out[name] = Array(value[..<got]) }
        }
        return out
    }
}
