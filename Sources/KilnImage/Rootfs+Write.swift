#if canImport(Glibc)
import Glibc
#endif
import CKilnSys
import KilnArchive
import KilnOCI

extension Rootfs {
    /// Writes the file system as one tar stream: entries sorted (parents first, siblings
    /// bytewise), the root left out, hard links kept (the first path in order holds the
    /// data), owners numeric with no names.
    /// - Parameter mtime: every entry's mtime; nil keeps the layers' mtimes.
    public func writeTar(to out: ByteWriter, mtime: Int64?) throws {
        let tar = TarWriter(out)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var firstPath: [ObjectIdentifier: String] = [:]
        try walk { path, node in
            var h = TarHeader(name: path, kind: .regular, mode: node.mode, uid: node.uid, gid: node.gid,
                              mtime: mtime ?? node.mtime, xattrs: node.xattrs)
            if !node.isDirectory {
                if let first = firstPath[ObjectIdentifier(node)] {
                    h.kind = .hardlink
                    h.linkName = first
                    try tar.writeHeader(h)
                    return
                }
                firstPath[ObjectIdentifier(node)] = path
            }
            switch node.kind {
            case .directory:
                h.kind = .directory
                h.name = path + "/"
                try tar.writeHeader(h)
            case .regular(let body, let size):
                h.size = size
                try tar.writeHeader(h)
                if let body {
                    try tar.writeBody(from: try FileReader(path: body), size: size, what: body, buffer: buffer)
                }
            case .symlink(let target):
                h.kind = .symlink
                h.linkName = target
                try tar.writeHeader(h)
            case .charDevice(let ma, let mi), .blockDevice(let ma, let mi):
                if case .charDevice = node.kind { h.kind = .charDevice } else { h.kind = .blockDevice }
                h.devMajor = ma
                h.devMinor = mi
                try tar.writeHeader(h)
            case .fifo:
                h.kind = .fifo
                try tar.writeHeader(h)
            }
        }
        try tar.close(finishOutput: true)
    }

    /// Creates the file system as a new directory at `path`, which must not exist. It is
    /// built under a temporary name beside `path` and renamed into place, so a failure
    /// leaves nothing. Every object is created relative to its parent's descriptor with
    /// `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`, in directories Kiln made itself, so nothing
    /// outside the directory is touched: symlinks from the layers were already resolved
    /// inside the root when the model was built (`Rootfs.resolve`), so the model has no
    /// directory below a symlink and nothing here follows one. Owners and device nodes
    /// need root: without it, owners are left as they are and device nodes are skipped
    /// (see `warnings`).
    ///
    /// Races: the temporary directory is mode 0700 until everything in it is written, so
    /// no other user can change anything in it meanwhile. A process of the same user
    /// could (Kiln is a single-user build tool, and that process could write anywhere
    /// Kiln can); what is guarded against is what the layers say, not the user.
    /// - Parameter mtime: every object's mtime; nil keeps the layers' mtimes.
    /// - Returns: warnings about what could not be reproduced.
    @discardableResult
    public func writeDirectory(at path: String, mtime: Int64?) throws -> [String] {
        var st = stat()
        guard lstat(path, &st) != 0 else { throw ImageError.invalid("\(path) already exists; refusing to write into it") }
        let tmp = siblingTemp(of: path)
        guard mkdir(tmp, 0o700) == 0 else { throw ImageError.io("cannot create \(tmp): \(errnoMessage())") }
        do {
            let fd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw ImageError.io("cannot open \(tmp): \(errnoMessage())") }
            defer { close(fd) }
            let writer = DirectoryWriter(root: tmp, rootFD: fd, isRoot: geteuid() == 0, mtime: mtime)
            try writer.fill(fd, root, relative: "")
            try writer.finish(fd, root, name: nil, relative: "")
            guard rename(tmp, path) == 0 else { throw ImageError.io("cannot move \(tmp) to \(path): \(errnoMessage())") }
            return writer.warnings
        } catch {
            FileSystem.removeTree(tmp)
            throw error
        }
    }
}

/// Creates a `Rootfs` on disk, one directory descriptor at a time.
private final class DirectoryWriter {
    let root: String
    /// The root, open: hard links are made relative to it, not to its path.
    let rootFD: Int32
    let isRoot: Bool
    let mtime: Int64?
    var warnings: [String] = []
    var skippedDevices = 0
    var skippedXattrs = 0
    /// Where each multiply-linked node was first created (a path relative to `root`).
    var created: [ObjectIdentifier: String] = [:]

    init(root: String, rootFD: Int32, isRoot: Bool, mtime: Int64?) {
        self.root = root
        self.rootFD = rootFD
        self.isRoot = isRoot
        self.mtime = mtime
    }

    func fail(_ what: String, _ rel: String) -> ImageError {
        .io("cannot \(what) \(root)/\(rel): \(errnoMessage())")
    }

    /// Creates the children of `dir` (open as `fd`), then recurses; a directory's own
    /// metadata is set after its children exist, so read-only directories can be filled
    /// and mtimes stay as set.
    func fill(_ fd: Int32, _ dir: Rootfs.Node, relative: String) throws {
        let names = dir.children.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for name in names {
            let node = dir.children[name]!.node
            let rel = relative.isEmpty ? name : relative + "/" + name
            if !node.isDirectory, let first = created[ObjectIdentifier(node)] {
                guard linkat(rootFD, first, fd, name, 0) == 0 else { throw fail("link", rel) }
                continue
            }
            switch node.kind {
            case .directory:
                guard mkdirat(fd, name, 0o700) == 0 else { throw fail("create directory", rel) }
                let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard sub >= 0 else { throw fail("open", rel) }
                defer { close(sub) }
                try fill(sub, node, relative: rel)
                try finish(sub, node, name: nil, relative: rel)
                continue
            case .regular(let body, _):
                if let body, linkat(AT_FDCWD, body, fd, name, 0) == 0 {
                    // The spooled body itself (same file system): nothing copied.
                } else {
                    let out = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
                    guard out >= 0 else { throw fail("create", rel) }
                    defer { close(out) }
                    if let body {
                        try FileReader(path: body).copy(to: FileWriter(fd: out, path: root + "/" + rel))
                    }
                }
            case .symlink(let target):
                guard symlinkat(target, fd, name) == 0 else { throw fail("create symlink", rel) }
            case .charDevice(let ma, let mi), .blockDevice(let ma, let mi):
                guard isRoot else {
                    skippedDevices += 1
                    continue
                }
                let type: mode_t
                if case .charDevice = node.kind { type = S_IFCHR } else { type = S_IFBLK }
                guard mknodat(fd, name, type | 0o600, kiln_makedev(ma, mi)) == 0 else { throw fail("create device", rel) }
            case .fifo:
                guard mkfifoat(fd, name, 0o600) == 0 else { throw fail("create fifo", rel) }
            }
            created[ObjectIdentifier(node)] = rel
            try finish(fd, node, name: name, relative: rel)
        }
    }

    /// Owner, mode, xattrs and mtime of one object: `name` in `fd`, or `fd` itself.
    func finish(_ fd: Int32, _ node: Rootfs.Node, name: String?, relative rel: String) throws {
        let isLink: Bool
        if case .symlink = node.kind { isLink = true } else { isLink = false }
        let n = name ?? ""
        if isRoot {
            let (u, g) = (uid_t(truncatingIfNeeded: node.uid), gid_t(truncatingIfNeeded: node.gid))
            guard (name == nil ? fchown(fd, u, g) : fchownat(fd, n, u, g, AT_SYMLINK_NOFOLLOW)) == 0 else {
                throw fail("change the owner of", rel)
            }
        }
        if !isLink {
            let r = name == nil ? fchmod(fd, mode_t(node.mode)) : fchmodat(fd, n, mode_t(node.mode), 0)
            guard r == 0 else { throw fail("change the mode of", rel) }
        }
        if !node.xattrs.isEmpty {
            let full = rel.isEmpty ? root : root + "/" + rel
            for key in node.xattrs.keys.sorted() {
                let value = node.xattrs[key]!
                let r = value.withUnsafeBytes { lsetxattr(full, key, $0.baseAddress, $0.count, 0) }
                if r != 0 {
                    if !isRoot && (errno == EPERM || errno == ENOTSUP || errno == EACCES) {
                        skippedXattrs += 1
                        continue
                    }
                    throw ImageError.io("cannot set the extended attribute \(key) on \(full): \(errnoMessage())")
                }
            }
        }
        var times = [timespec](repeating: timespec(tv_sec: Int(mtime ?? node.mtime), tv_nsec: 0), count: 2)
        guard (name == nil ? futimens(fd, &times) : utimensat(fd, n, &times, AT_SYMLINK_NOFOLLOW)) == 0 else {
            throw fail("set the time of", rel)
        }
        if name == nil && rel.isEmpty {
            if skippedDevices > 0 { warnings.append("\(skippedDevices) device node(s) skipped: creating device nodes needs root") }
            if skippedXattrs > 0 { warnings.append("\(skippedXattrs) extended attribute(s) skipped: setting them needs root") }
        }
    }
}

/// `kiln export`: an image's layers applied into one root file system.
public enum RootfsExport {
    public enum Format: String, Sendable, CaseIterable {
        case tar, dir
    }

    /// Flattens `image` into a tar file or a new directory at `path`. Everything is read
    /// and checked before the output appears (written beside it, then renamed).
    /// - Parameter mtime: every entry's mtime; nil keeps the layers' mtimes.
    /// - Returns: warnings (things a non-root export cannot reproduce).
    @discardableResult
    public static func export(_ image: SourceImage, to path: String, format: Format, mtime: Int64?,
                              limits: RootfsLimits = RootfsLimits()) throws -> [String] {
        let fs = try flatten(image, spoolNear: path, limits: limits)
        switch format {
        case .dir:
            return try fs.writeDirectory(at: path, mtime: mtime)
        case .tar:
            let tmp = siblingTemp(of: path)
            do {
                let file = try FileWriter(creating: tmp)
                try fs.writeTar(to: file, mtime: mtime)
                try file.sync()
                guard rename(tmp, path) == 0 else { throw ImageError.io("cannot move the archive into place at \(path): \(errnoMessage())") }
            } catch {
                unlink(tmp)
                throw error
            }
            return []
        }
    }

    /// Applies every layer of `image`, spooling bodies beside `spoolNear`.
    public static func flatten(_ image: SourceImage, spoolNear: String, limits: RootfsLimits = RootfsLimits()) throws -> Rootfs {
        let fs = try Rootfs(spoolDirectory: siblingTemp(of: spoolNear), limits: limits)
        for (i, layer) in image.layers.enumerated() {
            try fs.apply(layer, what: "layer \(i + 1) of \(image.layers.count) (\(layer.descriptor.digest))")
        }
        return fs
    }
}
