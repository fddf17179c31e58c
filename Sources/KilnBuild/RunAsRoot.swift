#if canImport(Glibc)
import Glibc
#endif
import CKilnSys
import Foundation
import KilnArchive
import KilnImage

/// dockerTools' `runAsRoot` without a VM: the script runs as root in new mount, PID, IPC,
/// UTS and network namespaces (and a user namespace when Kiln is not root), inside an
/// overlayfs whose lower directories are the image so far — the base's layers as
/// extracted snapshots (`BaseSnapshots`), one directory for the new layers, and one
/// holding only mount points — and whose upper directory becomes the new layer.
///
/// The upper directory is read as overlayfs records changes: a 0:0 character device is
/// a deletion (`.wh.NAME` in the layer), a directory with `trusted.overlay.opaque=y`
/// (`user.overlay.opaque` in a user namespace) replaced a lower one (`DIR/.wh..wh..opq`).
/// `/proc`, `/dev` (with its own devpts and `/dev/shm`) and `/tmp` are mounted over, so
/// nothing written there is kept; with the network, the host's `/etc/resolv.conf` and
/// `/etc/hosts` are bind-mounted read-only when the image has none.
public struct RunAsRoot {
    public let script: String
    public let network: Bool
    /// The script's environment (`NAME=VALUE`).
    public let environment: [String]
    /// Prefix for messages, `FILE:LINE: ` of the spec key.
    public let location: String
    /// Remove the volatile files of package managers from the layer (`RunAsRoot.scrubbed`).
    public var scrub = false

    /// Bumped whenever what the sandbox shows the script changes: part of the runAsRoot
    /// layer cache key.
    public static let sandboxVersion = 2

    public init(script: String, network: Bool, environment: [String], location: String) {
        self.script = script
        self.network = network
        self.environment = environment
        self.location = location
    }

    /// Runs the script over `lower` (a directory, not modified) and returns the changes
    /// as a file tree whose bodies live in `staging` (kept until the layer is written).
    public func run(lower: String, staging: Staging) throws -> FileTree {
        try run(lowers: [lower], mountDirectory: nil, staging: staging)
    }

    /// Runs the script over `lowers` (bottom first; relative names are resolved from
    /// `mountDirectory`, which keeps the overlay's option page short). None is modified.
    public func run(lowers: [String], mountDirectory: String?, staging: Staging) throws -> FileTree {
        let upper = staging.newPath("upper")
        let work = staging.newPath("work")
        let merged = staging.newPath("merged")
        let points = staging.newPath("mountpoints")
        for d in [upper, work, merged, points] {
            guard mkdir(d, 0o755) == 0 else { throw BuildError("cannot create \(d): \(String(cString: strerror(errno)))") }
        }
        let stack = [points] + lowers
        for p in stack + [upper, work] where p.contains(where: { ",:\\".contains($0) }) {
            throw BuildError("\(location)runAsRoot: the path \(p) contains `,`, `:` or `\\`, which overlayfs options cannot hold; set TMPDIR (or --cache-dir) to a plain path")
        }
        let userns = geteuid() != 0
        let idmap = userns ? IDMap.current() : nil
        let helpers = idmap?.helperArguments
        let view = StackView(lowers: lowers.reversed().map { l in
            l.hasPrefix("/") ? l : (mountDirectory ?? ".") + "/" + l
        })
        // Mount points for /proc, /dev and /tmp, in a lower directory of their own, so
        // they never show up in the new layer and the shared snapshots stay untouched.
        func mountPoint(_ name: String, mode: mode_t) -> String? {
            if let (_, st) = view.resolve(name) {
                guard (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
                return merged + "/" + name
            }
            guard mkdir(points + "/" + name, mode) == 0 else { return nil }
            chmod(points + "/" + name, mode)
            return merged + "/" + name
        }
        let proc = mountPoint("proc", mode: 0o555)
        let dev = mountPoint("dev", mode: 0o755)
        let tmp = mountPoint("tmp", mode: 0o1777)
        var binds: [String] = []
        if network {
            binds = try hostFileMounts(view: view, points: points, merged: merged)
        }

        // A plain upper directory: no redirects, no index, no metadata-only copies. In a
        // user namespace the kernel insists on redirect_dir=follow with userxattr (which
        // follows redirects but never creates them).
        var options = "lowerdir=\(stack.reversed().joined(separator: ":")),upperdir=\(upper),workdir=\(work),index=off,metacopy=off"
        options += userns ? ",userxattr" : ",redirect_dir=off"
        guard options.utf8.count < 4000 else {
            throw BuildError("\(location)runAsRoot: the overlay's options are \(options.utf8.count) bytes, more than a mount takes (4096); use a shorter TMPDIR or --cache-dir")
        }
        let log = staging.newPath("runAsRoot.log")
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard logFD >= 0 else { throw BuildError("cannot create \(log): \(String(cString: strerror(errno)))") }
        defer { close(logFD) }

        var status: Int32 = 0, step: Int32 = 0, err: Int32 = 0
        let fixed = [merged, options, script, "0 \(geteuid()) 1\n", "0 \(getegid()) 1\n",
                     proc ?? "", dev ?? "", tmp ?? "", mountDirectory ?? ""]
        let uidArgs = helpers?.uid ?? [], gidArgs = helpers?.gid ?? []
        let rc: Int32 = withCStrings(fixed + binds + uidArgs + gidArgs + environment) { c in
            var at = fixed.count
            func take(_ n: Int) -> [UnsafePointer<CChar>?] {
                defer { at += n }
                return Array(c[at..<(at + n)]).map { UnsafePointer($0) } + [nil]
            }
            let bindp = take(binds.count), uidp = take(uidArgs.count), gidp = take(gidArgs.count)
            var envp: [UnsafePointer<CChar>?] = Array(c[at...]).map { UnsafePointer($0) }
            envp.append(nil)
            return envp.withUnsafeBufferPointer { env in
                bindp.withUnsafeBufferPointer { bp in uidp.withUnsafeBufferPointer { up in gidp.withUnsafeBufferPointer { gp in
                    var sb = kiln_sandbox()
                    sb.merged = UnsafePointer(c[0])
                    sb.overlay_options = UnsafePointer(c[1])
                    sb.script = UnsafePointer(c[2])
                    sb.uid_map = UnsafePointer(c[3])
                    sb.gid_map = UnsafePointer(c[4])
                    sb.proc_dir = proc == nil ? nil : UnsafePointer(c[5])
                    sb.dev_dir = dev == nil ? nil : UnsafePointer(c[6])
                    sb.tmp_dir = tmp == nil ? nil : UnsafePointer(c[7])
                    sb.mount_cwd = mountDirectory == nil ? nil : UnsafePointer(c[8])
                    sb.ro_binds = bp.baseAddress
                    sb.envp = env.baseAddress
                    sb.network = network ? 1 : 0
                    sb.userns = userns ? 1 : 0
                    sb.log_fd = logFD
                    sb.uidmap_argv = helpers == nil ? nil : up.baseAddress
                    sb.gidmap_argv = helpers == nil ? nil : gp.baseAddress
                    return kiln_sandbox_run(&sb, &status, &step, &err)
                } } }
            }
        }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        if rc != 0 {
            throw BuildError("\(location)runAsRoot: " + RunAsRoot.explain(step: step, errno: err, userns: userns, options: options))
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand (they are macros).
        let signal = status & 0x7f
        let code = (status >> 8) & 0xff
        guard signal == 0, code == 0 else {
            let tail = output.split(separator: "\n").suffix(3).joined(separator: " | ")
            let how = signal == 0 ? "exit status \(code)" : "signal \(signal)"
            throw BuildError("\(location)runAsRoot failed with \(how)" + (tail.isEmpty ? "" : "; last output: \(tail)"))
        }
        if !output.isEmpty { TerminalScreen.shared.write(output) }  // above any live progress
        if scrub { try RunAsRoot.scrub(upper: upper, lower: view) }
        // In a user namespace the script's root is Kiln's own user on disk (and its
        // users 1…N the subordinate range, when there is one).
        return try RunAsRoot.changes(inUpper: upper, idmap: idmap)
    }

    /// `/etc/resolv.conf` and `/etc/hosts` of the host for a script with the network,
    /// when the image has none: empty files in the mount-point directory (under an
    /// `etc` with the image's own metadata, which a copy-up then keeps), bind-mounted
    /// read-only, so nothing of them reaches the layer. Pairs of source and target.
    private func hostFileMounts(view: StackView, points: String, merged: String) throws -> [String] {
        var out: [String] = []
        var etcMade = false
        for name in ["resolv.conf", "hosts"] {
            let host = "/etc/" + name
            guard access(host, R_OK) == 0, view.resolve("etc/" + name) == nil else { continue }
            let etc = view.resolve("etc")
            if let (_, st) = etc, (st.st_mode & S_IFMT) != S_IFDIR { continue }
            if !etcMade {
                guard mkdir(points + "/etc", 0o755) == 0 else { throw BuildError("cannot create \(points)/etc: \(errnoText())") }
                if let (_, st) = etc {
                    if geteuid() == 0 { chown(points + "/etc", st.st_uid, st.st_gid) }
                    chmod(points + "/etc", st.st_mode & 0o7777)
                    var times = [st.st_atim, st.st_mtim]
                    utimensat(AT_FDCWD, points + "/etc", &times, AT_SYMLINK_NOFOLLOW)
                }
                etcMade = true
            }
            let fd = open(points + "/etc/" + name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw BuildError("cannot create \(points)/etc/\(name): \(errnoText())") }
            close(fd)
            out += [host, merged + "/etc/" + name]
        }
        if etcMade, let (_, st) = view.resolve("etc") {
            var times = [st.st_atim, st.st_mtim]
            utimensat(AT_FDCWD, points + "/etc", &times, AT_SYMLINK_NOFOLLOW)
        }
        return out
    }

    /// What went wrong while setting the sandbox up, and how to allow it.
    static func explain(step: Int32, errno e: Int32, userns: Bool, options: String) -> String {
        let reason = String(cString: strerror(e))
        switch UInt32(step) {
        case KILN_SB_USERNS.rawValue:
            return "the kernel refused to create a user namespace (\(reason)); Kiln needs one when it does not run as root. "
                + "Enable unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` on Debian kernels, "
                + "`sysctl -w user.max_user_namespaces=15000`, or `kernel.apparmor_restrict_unprivileged_userns=0` on Ubuntu), or run kiln as root"
        case KILN_SB_IDMAP.rawValue:
            return "cannot map root in the user namespace (\(reason)); run kiln as root or allow user namespaces"
                + (IDMap.current().subuid != nil ? " (newuidmap/newgidmap refused the range /etc/subuid and /etc/subgid grant; check them)" : "")
        case KILN_SB_NAMESPACES.rawValue:
            return "the kernel refused to create mount, PID, IPC, UTS and network namespaces (\(reason)); "
                + (userns ? "enable user namespaces or run kiln as root" : "is kiln running in a container without CAP_SYS_ADMIN? run it with --privileged or as root on the host")
        case KILN_SB_PRIVATE.rawValue:
            return "cannot make the mount namespace private (\(reason))"
        case KILN_SB_OVERLAY.rawValue:
            if e == ENODEV {
                return "the kernel has no overlayfs (\(reason)); load it with `modprobe overlay` (CONFIG_OVERLAY_FS)"
            }
            return "the kernel refused the overlayfs mount (\(reason)) with options \(options); "
                + (userns ? "overlayfs in a user namespace needs Linux 5.11 or later; or run kiln as root. " : "")
                + "The staging directory (TMPDIR) must be on a file system overlayfs accepts as upper (ext4, xfs, btrfs, tmpfs), not on overlayfs or NFS"
        case KILN_SB_PROC.rawValue:
            return "cannot mount /proc in the sandbox (\(reason))"
        case KILN_SB_DEV.rawValue:
            return "cannot set up /dev in the sandbox (\(reason))"
        case KILN_SB_TMP.rawValue:
            return "cannot mount /tmp in the sandbox (\(reason))"
        case KILN_SB_BIND.rawValue:
            return "cannot bind-mount the host's /etc/resolv.conf or /etc/hosts into the sandbox (\(reason))"
        case KILN_SB_ROOT.rawValue:
            return "cannot enter the image root (\(reason))"
        case KILN_SB_EXEC.rawValue:
            return e == ENOENT ? "the image has no /bin/sh to run the script with (\(reason))" : "cannot run /bin/sh in the image (\(reason))"
        default:
            return "cannot start the sandbox (\(reason))"
        }
    }

    /// The overlay's upper directory as a layer's file tree: exact modes, owners and
    /// xattrs (minus overlayfs' own), whiteouts and opaque directories as OCI records.
    /// - Parameter rootOwner: the host uid and gid that stand for root (user namespace).
    public static func changes(inUpper upper: String, rootOwner: (uid: uid_t, gid: gid_t)? = nil) throws -> FileTree {
        try changes(inUpper: upper, idmap: rootOwner.map { IDMap(uid: $0.uid, gid: $0.gid) })
    }

    static func changes(inUpper upper: String, idmap: IDMap?) throws -> FileTree {
        var tree = FileTree()
        func walk(_ host: String, _ rel: String) throws {
            for name in try FileSystem.listDirectory(host) {
                let h = host + "/" + name
                let r = rel.isEmpty ? name : rel + "/" + name
                var st = stat()
                guard lstat(h, &st) == 0 else { throw BuildError("cannot read \(h): \(String(cString: strerror(errno)))") }
                let mode = UInt32(st.st_mode & 0o7777)
                let fmt = st.st_mode & S_IFMT
                var xattrs: [String: [UInt8]] = [:]
                if fmt != S_IFLNK {
                    xattrs = try Xattrs.read(h)
                }
                let opaque = ["trusted.overlay.opaque", "user.overlay.opaque"].contains { xattrs[$0] == Array("y".utf8) }
                xattrs = xattrs.filter { !$0.key.hasPrefix("trusted.overlay.") && !$0.key.hasPrefix("user.overlay.") }
                var node: FileNode
                switch fmt {
                case S_IFCHR where st.st_rdev == 0:
                    // A deletion.
                    let parent = rel.isEmpty ? "" : rel + "/"
                    tree.insert(parent + ".wh." + name, FileNode(.file(.inline([])), mode: 0o644))
                    continue
                case S_IFREG:
                    let id = st.st_nlink > 1 ? FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)) : nil
                    node = FileNode(.file(.host(path: h, size: Int64(st.st_size), identity: id)), mode: mode)
                case S_IFDIR:
                    node = FileNode(.directory, mode: mode)
                case S_IFLNK:
                    node = FileNode(.symlink(try FileNode.readLink(h)), mode: 0o777)
                case S_IFCHR:
                    node = FileNode(.charDevice(major: kiln_major(st.st_rdev), minor: kiln_minor(st.st_rdev)), mode: mode)
                case S_IFBLK:
                    node = FileNode(.blockDevice(major: kiln_major(st.st_rdev), minor: kiln_minor(st.st_rdev)), mode: mode)
                case S_IFIFO:
                    node = FileNode(.fifo, mode: mode)
                default:
                    continue  // sockets left behind by daemons the script started
                }
                node.uid = idmap?.containerUID(st.st_uid) ?? Int(st.st_uid)
                node.gid = idmap?.containerGID(st.st_gid) ?? Int(st.st_gid)
                node.xattrs = xattrs
                tree.insert(r, node)
                if fmt == S_IFDIR {
                    if opaque { tree.insert(r + "/.wh..wh..opq", FileNode(.file(.inline([])), mode: 0o644)) }
                    try walk(h, r)
                }
            }
        }
        try walk(upper, "")
        return tree
    }
}

/// Calls `body` with C copies of `strings`, valid for the call only.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>]) -> R) -> R {
    let ptrs = strings.map { strdup($0)! }
    defer { ptrs.forEach { free($0) } }
    return body(ptrs)
}
