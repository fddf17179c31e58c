/// A user of the image's `/etc/passwd`.
public struct UserSpec: Sendable, Equatable {
    public var name: String
    public var uid: Int
    public var gid: Int
    public var home: String
    public var shell: String
    public init(name: String, uid: Int, gid: Int, home: String, shell: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
    }
}

/// A group of the image's `/etc/group`.
public struct GroupSpec: Sendable, Equatable {
    public var name: String
    public var gid: Int
    public var members: [String]
    public init(name: String, gid: Int, members: [String]) {
        self.name = name
        self.gid = gid
        self.members = members
    }
}

extension FileTree {
    /// Writes `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow` with root
    /// always present (dockerTools' shadowSetup / fakeNss), and creates each home
    /// directory owned by its user. A user whose primary gid has no group gets one
    /// named after it, as `useradd` does. Passwords are locked (`!`).
    public mutating func addUsers(_ users: [UserSpec], groups: [GroupSpec]) {
        var allUsers = users
        if !allUsers.contains(where: { $0.uid == 0 || $0.name == "root" }) {
            allUsers.insert(UserSpec(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh"), at: 0)
        }
        var allGroups = groups
        if !allGroups.contains(where: { $0.gid == 0 || $0.name == "root" }) {
            allGroups.insert(GroupSpec(name: "root", gid: 0, members: []), at: 0)
        }
        for u in allUsers where !allGroups.contains(where: { $0.gid == u.gid }) {
            allGroups.append(GroupSpec(name: u.name, gid: u.gid, members: []))
        }
        let passwd = allUsers.map { "\($0.name):x:\($0.uid):\($0.gid)::\($0.home):\($0.shell)\n" }.joined()
        let shadow = allUsers.map { "\($0.name):!:::::::\n" }.joined()
        let group = allGroups.map { "\($0.name):x:\($0.gid):\($0.members.joined(separator: ","))\n" }.joined()
        let gshadow = allGroups.map { "\($0.name):!::\($0.members.joined(separator: ","))\n" }.joined()
        if nodes["etc"] == nil { insert("etc", .directory()) }
        insert("etc/passwd", FileNode(.file(.inline(Array(passwd.utf8))), mode: 0o644))
        insert("etc/group", FileNode(.file(.inline(Array(group.utf8))), mode: 0o644))
        insert("etc/shadow", FileNode(.file(.inline(Array(shadow.utf8))), mode: 0o640))
        insert("etc/gshadow", FileNode(.file(.inline(Array(gshadow.utf8))), mode: 0o640))
        for u in allUsers {
            let home = FileTree.normalize(u.home)
            guard !home.isEmpty, home != "var/empty", home != "nonexistent" else { continue }
            var node = nodes[home] ?? .directory(mode: u.uid == 0 ? 0o700 : 0o755)
            if !node.isDirectory { continue }
            node.uid = u.uid
            node.gid = u.gid
            insert(home, node)
        }
    }
}
