extension FileTree {
    /// Writes `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow` with root
    /// always present (dockerTools' shadowSetup / fakeNss), and creates each home
    /// directory owned by its user. A user whose primary gid has no group gets one
    /// named after it, as `useradd` does. Passwords are locked (`!`).
    public mutating func addUsers(_ users: [Spec.User], groups: [Spec.Group]) {
        let builtIn = SourceLocation(file: "<built-in>", line: 0)
        var allUsers = users
        if !allUsers.contains(where: { $0.uid == 0 || $0.name == "root" }) {
            allUsers.insert(Spec.User(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", location: builtIn), at: 0)
        }
        var allGroups = groups
        if !allGroups.contains(where: { $0.gid == 0 || $0.name == "root" }) {
            allGroups.insert(Spec.Group(name: "root", gid: 0, members: [], location: builtIn), at: 0)
        }
        for u in allUsers where !allGroups.contains(where: { $0.gid == u.gid }) {
            allGroups.append(Spec.Group(name: u.name, gid: u.gid, members: [], location: u.location))
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
