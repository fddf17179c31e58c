import Yams

/// `users`, `groups` and `perms`.
extension SpecParser {
    static let maxID = 4_294_967_294

    func accountName(_ n: Node, _ kp: String, what: String) throws -> String {
        let s = try string(n, kp)
        guard SpecPaths.isAccountName(s) else {
            throw fail(n, kp, "invalid \(what) name `\(s)` (expected lowercase letters, digits, `_` and `-`, not starting with a digit or `-`, at most 32 characters)")
        }
        return s
    }

    func passwdField(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard s.hasPrefix("/") else { throw fail(n, kp, "`\(s)` must be an absolute path") }
        guard !s.contains(":"), !s.contains("\n"), !s.utf8.contains(0) else {
            throw fail(n, kp, "`\(s)` must not contain `:` or a newline")
        }
        return s
    }

    func parseUsers(_ n: Node) throws -> [Spec.User] {
        var users: [Spec.User] = []
        var byName: [String: Spec.User] = [:]
        var byUID: [Int: Spec.User] = [:]
        for (i, item) in try list(n, "users", itemHint: "a list of maps with `name` and `uid`").enumerated() {
            let kp = "users[\(i)]"
            let f = try fields(item, at: kp, allowed: ["name", "uid", "gid", "home", "shell"])
            guard let nameNode = f["name"] else { throw f.missing("name", "the user name", self) }
            let name = try accountName(nameNode, "\(kp).name", what: "user")
            guard let uidNode = f["uid"] else { throw f.missing("uid", "the numeric user id", self) }
            let uid = try integer(uidNode, "\(kp).uid", max: Self.maxID)
            let gid = try f["gid"].map { try integer($0, "\(kp).gid", max: Self.maxID) } ?? uid
            let home = try f["home"].map { try passwdField($0, "\(kp).home") } ?? (name == "root" ? "/root" : "/home/\(name)")
            let shell = try f["shell"].map { try passwdField($0, "\(kp).shell") } ?? "/bin/sh"
            if let other = byName[name] {
                throw fail(nameNode, "\(kp).name", "duplicate user `\(name)` (first on line \(other.location.line))")
            }
            if let other = byUID[uid] {
                throw fail(uidNode, "\(kp).uid", "uid \(uid) is already used by `\(other.name)` (line \(other.location.line))")
            }
            let user = Spec.User(name: name, uid: uid, gid: gid, home: home, shell: shell, location: location(item))
            byName[name] = user
            byUID[uid] = user
            users.append(user)
        }
        return users
    }

    func parseGroups(_ n: Node) throws -> [Spec.Group] {
        var groups: [Spec.Group] = []
        var byName: [String: Spec.Group] = [:]
        var byGID: [Int: Spec.Group] = [:]
        for (i, item) in try list(n, "groups", itemHint: "a list of maps with `name` and `gid`").enumerated() {
            let kp = "groups[\(i)]"
            let f = try fields(item, at: kp, allowed: ["name", "gid", "members"])
            guard let nameNode = f["name"] else { throw f.missing("name", "the group name", self) }
            let name = try accountName(nameNode, "\(kp).name", what: "group")
            guard let gidNode = f["gid"] else { throw f.missing("gid", "the numeric group id", self) }
            let gid = try integer(gidNode, "\(kp).gid", max: Self.maxID)
            var members: [String] = []
            if let m = f["members"] {
                for (j, member) in try list(m, "\(kp).members", itemHint: "a list of user names").enumerated() {
                    members.append(try accountName(member, "\(kp).members[\(j)]", what: "user"))
                }
            }
            if let other = byName[name] {
                throw fail(nameNode, "\(kp).name", "duplicate group `\(name)` (first on line \(other.location.line))")
            }
            if let other = byGID[gid] {
                throw fail(gidNode, "\(kp).gid", "gid \(gid) is already used by `\(other.name)` (line \(other.location.line))")
            }
            let group = Spec.Group(name: name, gid: gid, members: members, location: location(item))
            byName[name] = group
            byGID[gid] = group
            groups.append(group)
        }
        return groups
    }

    func parsePerms(_ n: Node) throws -> [Spec.Permission] {
        try list(n, "perms", itemHint: "a list of maps with `path` and `mode`, `uid` or `gid`").enumerated().map { i, item in
            let kp = "perms[\(i)]"
            let f = try fields(item, at: kp, allowed: ["path", "mode", "uid", "gid"])
            guard let pathNode = f["path"] else { throw f.missing("path", "an absolute path or glob inside the image", self) }
            let path = try string(pathNode, "\(kp).path")
            guard path.hasPrefix("/") else {
                throw fail(pathNode, "\(kp).path", "`\(path)` must be an absolute path inside the image (starting with `/`)")
            }
            guard !path.split(separator: "/").contains("..") else {
                throw fail(pathNode, "\(kp).path", "`\(path)` must not contain `..`")
            }
            let mode = try f["mode"].map { try parseMode($0, "\(kp).mode") }
            let uid = try f["uid"].map { try integer($0, "\(kp).uid", max: Self.maxID) }
            let gid = try f["gid"].map { try integer($0, "\(kp).gid", max: Self.maxID) }
            guard mode != nil || uid != nil || gid != nil else {
                throw fail(item, kp, "nothing to change: give at least one of `mode`, `uid` or `gid`")
            }
            return Spec.Permission(path: path, mode: mode, uid: uid, gid: gid, location: location(item))
        }
    }

    /// An octal mode: the string "0755" or "755" (or "0o755"), or a YAML integer whose
    /// digits are all octal (755 and 0755 both mean 0o755).
    func parseMode(_ n: Node, _ kp: String) throws -> UInt32 {
        guard case .scalar(let s) = n, tagName(n) == .str || tagName(n) == .int else {
            throw fail(n, kp, "expected an octal mode such as \"0755\", got \(describe(n))")
        }
        var digits = Substring(s.string)
        if digits.hasPrefix("0o") { digits = digits.dropFirst(2) }
        guard !digits.isEmpty, digits.count <= 12, digits.utf8.allSatisfy({ (48...55).contains($0) }),
              let v = UInt32(digits, radix: 8) else {
            throw fail(n, kp, "`\(s.string)` is not an octal mode (expected octal digits such as \"0755\")")
        }
        guard v <= 0o7777 else { throw fail(n, kp, "`\(s.string)` is larger than 07777") }
        return v
    }
}
