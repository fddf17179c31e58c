#if canImport(Glibc)
import Glibc
#endif
import CKilnSys
import KilnArchive
import KilnOCI

/// Applies layer tars onto a directory on disk in the form overlayfs stacks: a whiteout
/// (`.wh.NAME`) of something this directory does not hold becomes a 0:0 character
/// device, an opaque marker (`DIR/.wh..wh..opq`) the `trusted.overlay.opaque`
/// (`user.overlay.opaque` rootless) xattr — so the directory hides what lower
/// directories of the stack hold, as the layer hides what lower layers hold (OCI
/// image-spec layer.md "Whiteouts", Linux Documentation/filesystems/overlayfs.rst
/// "whiteouts and opaque directories"). Several layers applied in turn onto the same
/// directory give their combined change set (a merged snapshot).
///
/// Names are data: every object is reached from the root descriptor one component at a
/// time with `O_NOFOLLOW`, entries below a symlink or a file are refused, and overlayfs'
/// own xattrs in a layer are dropped (they would steer the overlay).
final class SnapshotWriter {
    let root: String
    let rootFD: Int32
    let isRoot: Bool
    let opaqueXattr: String
    /// Lower directories of the stack, top first: the metadata of parents a layer does
    /// not list, and the files of hard links into lower layers.
    let below: [String]
    /// True once the result depends on `below` (then it is keyed by chain ID).
    private(set) var usedBelow = false
    /// Device nodes and xattrs that a non-root extraction cannot reproduce.
    private(set) var skipped = 0
    /// Directory metadata, set when every layer is in (children change mtimes).
    private var dirMeta: [String: TarHeader] = [:]
    /// Paths this layer put in place: its whiteouts and opaque markers spare them.
    private var thisLayer = Set<String>()

    init(root: String, below: [String], userns: Bool) throws {
        self.root = root
        self.below = below
        isRoot = geteuid() == 0
        opaqueXattr = userns ? "user.overlay.opaque" : "trusted.overlay.opaque"
        rootFD = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard rootFD >= 0 else { throw BuildError("cannot open \(root): \(errnoText())") }
    }

    deinit { close(rootFD) }

    /// Applies one uncompressed layer tar; returns its sha256 (the diffID it has).
    func apply(tar stream: ByteReader, what: String, maxEntrySize: Int64) throws -> Digest {
        thisLayer = []
        let hashed = HashingReader(stream)
        let tar = TarReader(hashed, maxEntrySize: maxEntrySize)
        var seen = Set<String>()
        do {
            while let h = try tar.next() {
                let comps = try components(h.name, what: what)
                guard seen.insert(comps.joined(separator: "/")).inserted else {
                    throw BuildError("\(what): duplicate entry \"\(h.name)\" in one layer")
                }
                try entry(h, comps, tar: tar, what: what)
                if let hook = testPauseHook, hook == "snapshot-extract" { testPause(hook) }
            }
            _ = try tar.skipTrailingData()
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError("\(what): \(error)")
        }
        return hashed.digest
    }

    /// Sets the directories' owners, modes and mtimes, deepest first.
    func finish() throws {
        let paths = dirMeta.keys.sorted { $0.split(separator: "/").count > $1.split(separator: "/").count }
        for rel in paths {
            let h = dirMeta[rel]!
            let comps = rel.split(separator: "/").map(String.init)
            let fd: Int32
            if comps.isEmpty {
                fd = dup(rootFD)
            } else {
                guard let parent = try? openParent(comps, create: false, what: "") else { continue }
                defer { close(parent) }
                fd = openat(parent, comps.last!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            guard fd >= 0 else { continue }  // replaced by a later layer
            defer { close(fd) }
            try setMetadata(fd: fd, h, rel: rel)
        }
        dirMeta = [:]
    }

    // MARK: Entries

    private func entry(_ h: TarHeader, _ comps: [String], tar: TarReader, what: String) throws {
        guard let name = comps.last else {
            guard h.kind == .directory else { throw BuildError("\(what): entry \"\(h.name)\" replaces the root with a non-directory") }
            dirMeta[""] = h
            return
        }
        let parentComps = Array(comps.dropLast())
        if name == ".wh..wh..opq" {
            let parentRel = parentComps.joined(separator: "/")
            let fd = try openParent(comps, create: true, what: what)
            defer { close(fd) }
            try pruneLower(fd, rel: parentRel)
            let full = parentRel.isEmpty ? root : root + "/" + parentRel
            guard lsetxattr(full, opaqueXattr, "y", 1, 0) == 0 else {
                throw BuildError("cannot mark \(full) opaque (\(opaqueXattr)): \(errnoText())")
            }
            return
        }
        if name.hasPrefix(".wh.") {
            let target = String(name.dropFirst(4))
            guard !target.isEmpty, target != ".", target != ".." else { throw BuildError("\(what): invalid whiteout \"\(h.name)\"") }
            let rel = (parentComps + [target]).joined(separator: "/")
            if thisLayer.contains(rel) { return }  // a whiteout hides lower layers only
            let fd = try openParent(comps, create: true, what: what)
            defer { close(fd) }
            try remove(fd, target, rel: rel)
            // Only a whiteout of something below is kept: in a directory that no lower
            // directory has, overlayfs lists a whiteout as the device it is. So the
            // result depends on the stack (and is keyed by chain ID).
            usedBelow = true
            guard StackView(lowers: below).resolve(rel) != nil else { return }
            guard mknodat(fd, target, S_IFCHR | 0o000, 0) == 0 else {
                throw BuildError("cannot create the whiteout \(root)/\(rel): \(errnoText()) (overlayfs whiteouts need Linux 5.8 or later without root)")
            }
            return
        }
        let rel = comps.joined(separator: "/")
        let fd = try openParent(comps, create: true, what: what)
        defer { close(fd) }
        var st = stat()
        let exists = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        let wasWhiteout = exists && (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0
        thisLayer.insert(rel)
        switch h.kind {
        case .directory:
            if exists && (st.st_mode & S_IFMT) == S_IFDIR {
                dirMeta[rel] = h
                try setXattrs(rel, h.xattrs)
                return
            }
            if exists { try remove(fd, name, rel: rel) }
            guard mkdirat(fd, name, 0o700) == 0 else { throw BuildError("cannot create directory \(root)/\(rel): \(errnoText())") }
            // A directory in place of a whiteout replaces what lower layers had there.
            if wasWhiteout { lsetxattr(root + "/" + rel, opaqueXattr, "y", 1, 0) }
            dirMeta[rel] = h
            try setXattrs(rel, h.xattrs)
        case .regular:
            if exists { try remove(fd, name, rel: rel) }
            let out = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard out >= 0 else { throw BuildError("cannot create \(root)/\(rel): \(errnoText())") }
            defer { close(out) }
            let n = try tar.copyBody(to: FileWriter(fd: out, path: root + "/" + rel))
            guard n == h.size else { throw BuildError("\(what): entry \"\(h.name)\" is truncated") }
            try setMetadata(fd: out, h, rel: rel)
        case .hardlink:
            let target = try components(h.linkName, what: what)
            guard target != comps else { throw BuildError("\(what): hard link \"\(h.name)\" points to itself") }
            if exists { try remove(fd, name, rel: rel) }
            if let tfd = try? openParent(target, create: false, what: what) {
                defer { close(tfd) }
                var tst = stat()
                if fstatat(tfd, target.last!, &tst, AT_SYMLINK_NOFOLLOW) == 0, (tst.st_mode & S_IFMT) != S_IFDIR,
                   !((tst.st_mode & S_IFMT) == S_IFCHR && tst.st_rdev == 0) {
                    guard linkat(tfd, target.last!, fd, name, 0) == 0 else { throw BuildError("cannot link \(root)/\(rel): \(errnoText())") }
                    return
                }
            }
            // A link to a file of a lower layer: a copy here (the stack shows both names
            // with the same bytes; they are separate inodes from now on).
            guard let lower = lowerFile(target) else {
                throw BuildError("\(what): hard link \"\(h.name)\" points to \"\(h.linkName)\", which is not in the image")
            }
            usedBelow = true
            try copyLowerFile(lower, into: fd, name: name, rel: rel)
        case .symlink:
            if exists { try remove(fd, name, rel: rel) }
            guard symlinkat(h.linkName, fd, name) == 0 else { throw BuildError("cannot create symlink \(root)/\(rel): \(errnoText())") }
            if isRoot { fchownat(fd, name, uid_t(truncatingIfNeeded: h.uid), gid_t(truncatingIfNeeded: h.gid), AT_SYMLINK_NOFOLLOW) }
            var times = [timespec](repeating: timespec(tv_sec: Int(h.mtime), tv_nsec: 0), count: 2)
            utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW)
        case .charDevice, .blockDevice, .fifo:
            if exists { try remove(fd, name, rel: rel) }
            if h.kind == .fifo {
                guard mkfifoat(fd, name, 0o600) == 0 else { throw BuildError("cannot create fifo \(root)/\(rel): \(errnoText())") }
            } else {
                guard isRoot else { skipped += 1; return }
                let type: mode_t = h.kind == .charDevice ? S_IFCHR : S_IFBLK
                guard mknodat(fd, name, type | 0o600, kiln_makedev(h.devMajor, h.devMinor)) == 0 else {
                    throw BuildError("cannot create device \(root)/\(rel): \(errnoText())")
                }
            }
            if isRoot { fchownat(fd, name, uid_t(truncatingIfNeeded: h.uid), gid_t(truncatingIfNeeded: h.gid), AT_SYMLINK_NOFOLLOW) }
            fchmodat(fd, name, mode_t(h.mode & 0o7777), 0)
            try setXattrs(rel, h.xattrs)
            var times = [timespec](repeating: timespec(tv_sec: Int(h.mtime), tv_nsec: 0), count: 2)
            utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW)
        }
    }

    /// Owner, mode, xattrs and mtime of an object open as `fd`.
    private func setMetadata(fd: Int32, _ h: TarHeader, rel: String) throws {
        if isRoot {
            guard fchown(fd, uid_t(truncatingIfNeeded: h.uid), gid_t(truncatingIfNeeded: h.gid)) == 0 else {
                throw BuildError("cannot change the owner of \(root)/\(rel): \(errnoText())")
            }
        }
        guard fchmod(fd, mode_t(h.mode & 0o7777)) == 0 else { throw BuildError("cannot change the mode of \(root)/\(rel): \(errnoText())") }
        if h.kind != .directory { try setXattrs(rel, h.xattrs) }
        var times = [timespec](repeating: timespec(tv_sec: Int(h.mtime), tv_nsec: 0), count: 2)
        futimens(fd, &times)
    }

    private func setXattrs(_ rel: String, _ xattrs: [String: [UInt8]]) throws {
        let full = rel.isEmpty ? root : root + "/" + rel
        for key in xattrs.keys.sorted() where !SnapshotWriter.isOverlayXattr(key) {
            let value = xattrs[key]!
            let r = value.withUnsafeBytes { lsetxattr(full, key, $0.baseAddress, $0.count, 0) }
            if r != 0 {
                if !isRoot && (errno == EPERM || errno == ENOTSUP || errno == EACCES) { skipped += 1; continue }
                throw BuildError("cannot set the extended attribute \(key) on \(full): \(errnoText())")
            }
        }
    }

    static func isOverlayXattr(_ key: String) -> Bool {
        key.hasPrefix("trusted.overlay.") || key.hasPrefix("user.overlay.")
    }

    // MARK: Paths

    private func components(_ name: String, what: String) throws -> [String] {
        guard !name.hasPrefix("/") else { throw BuildError("\(what): entry \"\(name)\" has an absolute name") }
        guard !name.utf8.contains(0) else { throw BuildError("\(what): entry \"\(name)\" contains a NUL byte") }
        var comps: [String] = []
        for c in name.split(separator: "/", omittingEmptySubsequences: true) where c != "." {
            guard c != ".." else { throw BuildError("\(what): entry \"\(name)\" contains \"..\"") }
            comps.append(String(c))
        }
        return comps
    }

    /// The parent directory of `comps`, opened; missing parents are created with the
    /// metadata they have lower in the stack (else 0755 root), as applying the layer
    /// onto the image would leave them.
    private func openParent(_ comps: [String], create: Bool, what: String) throws -> Int32 {
        var fd = dup(rootFD)
        for (i, c) in comps.dropLast().enumerated() {
            var next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 {
                let e = errno
                var st = stat()
                let rel = comps[...i].joined(separator: "/")
                if e == ENOENT && create {
                    guard mkdirat(fd, c, 0o700) == 0 else { close(fd); throw BuildError("cannot create directory \(root)/\(rel): \(errnoText())") }
                    usedBelow = true
                    dirMeta[rel] = lowerDirectoryHeader(rel)
                } else if create, fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFCHR, st.st_rdev == 0 {
                    // Below a whiteout of a lower directory: a new, opaque directory.
                    unlinkat(fd, c, 0)
                    guard mkdirat(fd, c, 0o700) == 0 else { close(fd); throw BuildError("cannot create directory \(root)/\(rel): \(errnoText())") }
                    lsetxattr(root + "/" + rel, opaqueXattr, "y", 1, 0)
                    dirMeta[rel] = TarHeader(name: rel, kind: .directory, mode: 0o755)
                } else {
                    let kind = fstatat(fd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && (st.st_mode & S_IFMT) == S_IFLNK ? "a symlink" : "not a directory"
                    close(fd)
                    throw BuildError("\(what): entry \"\(comps.joined(separator: "/"))\" is below \"\(rel)\", which is \(kind)")
                }
                next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard next >= 0 else { close(fd); throw BuildError("cannot open \(root)/\(rel): \(errnoText())") }
            }
            close(fd)
            fd = next
        }
        return fd
    }

    /// A directory's metadata lower in the stack, as a header (0755 root when none).
    private func lowerDirectoryHeader(_ rel: String) -> TarHeader {
        for dir in below {
            var st = stat()
            if lstat(dir + "/" + rel, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFDIR else { break }
                return TarHeader(name: rel, kind: .directory, mode: UInt32(st.st_mode & 0o7777), uid: Int(st.st_uid),
                                 gid: Int(st.st_gid), mtime: Int64(st.st_mtim.tv_sec))
            }
        }
        return TarHeader(name: rel, kind: .directory, mode: 0o755)
    }

    /// The regular file at `comps` lower in the stack (whiteouts and opaque directories
    /// respected, symlinks never followed).
    private func lowerFile(_ comps: [String]) -> String? {
        let view = StackView(lowers: below)
        guard let (path, st) = view.resolve(comps.joined(separator: "/")), (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return path
    }

    private func copyLowerFile(_ path: String, into fd: Int32, name: String, rel: String) throws {
        let src = try FileReader(path: path)
        var st = stat()
        fstat(src.fd, &st)
        let out = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw BuildError("cannot create \(root)/\(rel): \(errnoText())") }
        defer { close(out) }
        _ = try src.copy(to: FileWriter(fd: out, path: root + "/" + rel))
        if isRoot { fchown(out, st.st_uid, st.st_gid) }
        fchmod(out, st.st_mode & 0o7777)
        var times = [st.st_atim, st.st_mtim]
        futimens(out, &times)
    }

    /// Removes `name` from `fd` (a tree for a directory).
    private func remove(_ fd: Int32, _ name: String, rel: String) throws {
        var st = stat()
        guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            FileSystem.removeTree(root + "/" + rel)
            for k in dirMeta.keys where k == rel || k.hasPrefix(rel + "/") { dirMeta[k] = nil }
        } else {
            guard unlinkat(fd, name, 0) == 0 else { throw BuildError("cannot remove \(root)/\(rel): \(errnoText())") }
        }
    }

    /// Removes from a directory what earlier layers put there (what this layer added
    /// stays, its own directories pruned in turn).
    private func pruneLower(_ fd: Int32, rel: String) throws {
        let full = rel.isEmpty ? root : root + "/" + rel
        for name in try FileSystem.listDirectory(full) {
            let childRel = rel.isEmpty ? name : rel + "/" + name
            if thisLayer.contains(childRel) {
                let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                if sub >= 0 {
                    defer { close(sub) }
                    try pruneLower(sub, rel: childRel)
                }
            } else {
                try remove(fd, name, rel: childRel)
            }
        }
    }
}

/// The union of overlay lower directories as overlayfs shows it, read from the host
/// without mounting: the top-most entry wins, a 0:0 character device hides lower ones,
/// an opaque directory ends the search below it. Symlinks are never followed.
struct StackView {
    /// Top first.
    let lowers: [String]

    /// The host path and stat of `rel` in the union; nil when absent.
    func resolve(_ rel: String) -> (String, stat)? {
        let comps = rel.split(separator: "/").map(String.init)
        var candidates = lowers
        for (i, c) in comps.enumerated() {
            var next: [String] = []
            var found: (String, stat)?
            for dir in candidates {
                let p = dir + "/" + c
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFCHR && st.st_rdev == 0 { break }  // whiteout
                if found == nil { found = (p, st) }
                if i == comps.count - 1 { break }
                guard (st.st_mode & S_IFMT) == S_IFDIR else { break }
                next.append(p)
                if StackView.isOpaque(p) { break }
            }
            guard let f = found else { return nil }
            if i == comps.count - 1 { return f }
            guard (f.1.st_mode & S_IFMT) == S_IFDIR else { return nil }
            candidates = next
        }
        return nil
    }

    static func isOpaque(_ path: String) -> Bool {
        for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
            var v: UInt8 = 0
            if lgetxattr(path, key, &v, 1) == 1 && v == UInt8(ascii: "y") { return true }
        }
        return false
    }
}


func errnoText() -> String { String(cString: strerror(errno)) }

/// `KILN_TEST_PAUSE_AT`, read once: a named point where the build stops (for tests that
/// kill it there). Nil, and never consulted further, when unset.
let testPauseHook: String? = getenv("KILN_TEST_PAUSE_AT").map { String(cString: $0) }

/// Says where the build stopped and waits to be killed.
func testPause(_ point: String) -> Never {
    let line = "kiln: test pause at \(point)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    while true { pause() }
}
