#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// The user namespace of a rootless runAsRoot: root is Kiln's own user and, when
/// `/etc/subuid` and `/etc/subgid` grant Kiln's user a subordinate range and the setuid
/// helpers `newuidmap`/`newgidmap` are installed (shadow-utils, subuid(5)), ids 1…N of
/// the sandbox are that range — so `useradd`, apt's `_apt` and `chown` work as on a
/// real system. Without a range only root is mapped (as `unshare --map-root-user`).
struct IDMap: Equatable, Sendable {
    var uid: uid_t
    var gid: gid_t
    /// The subordinate ranges (host start, count), nil when only root is mapped.
    var subuid: (start: UInt32, count: UInt32)?
    var subgid: (start: UInt32, count: UInt32)?

    static func == (a: IDMap, b: IDMap) -> Bool { a.description == b.description }

    /// What the key of a cached runAsRoot layer records (owners in the layer follow it).
    var description: String {
        "\(uid):\(gid)" + (subuid.map { " sub \($0.start)+\($0.count)" } ?? "") + (subgid.map { " \($0.start)+\($0.count)" } ?? "")
    }

    static let newuidmap = "/usr/bin/newuidmap"
    static let newgidmap = "/usr/bin/newgidmap"

    /// The map for the current user, from `/etc/subuid` and `/etc/subgid` (the files the
    /// helpers check too).
    static func current() -> IDMap {
        let uid = geteuid(), gid = getegid()
        var map = IDMap(uid: uid, gid: gid)
        guard access(newuidmap, X_OK) == 0, access(newgidmap, X_OK) == 0 else { return map }
        let files = ("/etc/subuid", "/etc/subgid")
        let name = getpwuid(uid).map { String(cString: $0.pointee.pw_name) }
        guard let u = range(in: files.0, name: name, id: UInt32(uid)),
              let g = range(in: files.1, name: name, id: UInt32(uid)) else { return map }
        map.subuid = u
        map.subgid = g
        return map
    }

    /// The first `NAME:START:COUNT` (or `UID:START:COUNT`) line for the user.
    static func range(in file: String, name: String?, id: UInt32) -> (start: UInt32, count: UInt32)? {
        guard let bytes = try? FileReader(path: file).readAll(limit: 1 << 20) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: ":", omittingEmptySubsequences: false)
            guard f.count == 3, f[0] == (name ?? "\u{0}") || f[0] == String(id),
                  let start = UInt32(f[1]), let count = UInt32(f[2]), count > 0, start > 0 else { continue }
            return (start, min(count, UInt32.max - start))
        }
        return nil
    }

    /// The argv of the helpers (argv[1], the PID, is filled in by the sandbox).
    var helperArguments: (uid: [String], gid: [String])? {
        guard let su = subuid, let sg = subgid else { return nil }
        return ([IDMap.newuidmap, "PID", "0", "\(uid)", "1", "1", "\(su.start)", "\(su.count)"],
                [IDMap.newgidmap, "PID", "0", "\(gid)", "1", "1", "\(sg.start)", "\(sg.count)"])
    }

    /// The sandbox's id of a host owner found in the upper directory.
    func containerUID(_ host: uid_t) -> Int {
        if host == uid { return 0 }
        if let s = subuid, host >= s.start, UInt64(host) < UInt64(s.start) + UInt64(s.count) { return Int(host - s.start) + 1 }
        return Int(host)
    }

    func containerGID(_ host: gid_t) -> Int {
        if host == gid { return 0 }
        if let s = subgid, host >= s.start, UInt64(host) < UInt64(s.start) + UInt64(s.count) { return Int(host - s.start) + 1 }
        return Int(host)
    }
}
