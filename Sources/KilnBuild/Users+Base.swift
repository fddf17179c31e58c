/// The account files of an image: `/etc/passwd`, `/etc/group`, `/etc/shadow` and
/// `/etc/gshadow` (nil when the image has no such file).
public struct AccountFiles: Sendable, Equatable {
    public var passwd: String?
    public var group: String?
    public var shadow: String?
    public var gshadow: String?

    public init(passwd: String? = nil, group: String? = nil, shadow: String? = nil, gshadow: String? = nil) {
        self.passwd = passwd
        self.group = group
        self.shadow = shadow
        self.gshadow = gshadow
    }

    /// The spec's users and groups merged into a base image's files (dockerTools'
    /// shadowSetup on top of an existing image): every base line is kept as it is, a
    /// spec entry replaces the base line of the same name in place and is appended
    /// otherwise, root is added when nobody has uid 0, a user whose gid has no group
    /// gets one named after it, and shadow/gshadow gain a locked (`!`) line for each
    /// new name (existing passwords stay). All four files are returned, so `useradd`
    /// and friends find what they expect.
    ///
    /// A spec id already used by another name in the base is an error naming both.
    public func merging(users: [Spec.User], groups: [Spec.Group]) throws -> AccountFiles {
        let builtIn = SourceLocation(file: "<built-in>", line: 0)
        var passwdLines = AccountFiles.lines(passwd)
        var groupLines = AccountFiles.lines(group)
        var shadowLines = AccountFiles.lines(shadow)
        var gshadowLines = AccountFiles.lines(gshadow)

        var allUsers = users
        let hasRoot = passwdLines.contains { AccountFiles.field($0, 2) == "0" || AccountFiles.field($0, 0) == "root" }
        if !hasRoot && !users.contains(where: { $0.uid == 0 || $0.name == "root" }) {
            allUsers.insert(Spec.User(name: "root", uid: 0, gid: 0, home: "/root", shell: "/bin/sh", location: builtIn), at: 0)
        }
        var allGroups = groups
        let hasRootGroup = groupLines.contains { AccountFiles.field($0, 2) == "0" || AccountFiles.field($0, 0) == "root" }
        if !hasRootGroup && !groups.contains(where: { $0.gid == 0 || $0.name == "root" }) {
            allGroups.insert(Spec.Group(name: "root", gid: 0, members: [], location: builtIn), at: 0)
        }

        for u in allUsers {
            let line = "\(u.name):x:\(u.uid):\(u.gid)::\(u.home):\(u.shell)"
            if let i = passwdLines.firstIndex(where: { AccountFiles.field($0, 0) == u.name }) {
                passwdLines[i] = line
            } else {
                if let other = passwdLines.first(where: { AccountFiles.field($0, 2) == String(u.uid) }) {
                    throw BuildError("\(u.location): users: uid \(u.uid) of `\(u.name)` is already used by `\(AccountFiles.field(other, 0) ?? "?")` in the base image's /etc/passwd")
                }
                passwdLines.append(line)
            }
            if !shadowLines.contains(where: { AccountFiles.field($0, 0) == u.name }) {
                shadowLines.append("\(u.name):!:::::::")
            }
        }
        for g in allGroups {
            let line = "\(g.name):x:\(g.gid):\(g.members.joined(separator: ","))"
            if let i = groupLines.firstIndex(where: { AccountFiles.field($0, 0) == g.name }) {
                groupLines[i] = line
            } else {
                if let other = groupLines.first(where: { AccountFiles.field($0, 2) == String(g.gid) }) {
                    throw BuildError("\(g.location): groups: gid \(g.gid) of `\(g.name)` is already used by `\(AccountFiles.field(other, 0) ?? "?")` in the base image's /etc/group")
                }
                groupLines.append(line)
            }
            let gs = "\(g.name):!::\(g.members.joined(separator: ","))"
            if let i = gshadowLines.firstIndex(where: { AccountFiles.field($0, 0) == g.name }) {
                // Keep the password and administrators; the members are the spec's.
                let old = gshadowLines[i]
                gshadowLines[i] = "\(g.name):\(AccountFiles.field(old, 1) ?? "!"):\(AccountFiles.field(old, 2) ?? ""):\(g.members.joined(separator: ","))"
            } else {
                gshadowLines.append(gs)
            }
        }
        // A user's primary group, as useradd creates it.
        for u in allUsers where !groupLines.contains(where: { AccountFiles.field($0, 2) == String(u.gid) }) {
            guard !groupLines.contains(where: { AccountFiles.field($0, 0) == u.name }) else { continue }
            groupLines.append("\(u.name):x:\(u.gid):")
            if !gshadowLines.contains(where: { AccountFiles.field($0, 0) == u.name }) {
                gshadowLines.append("\(u.name):!::")
            }
        }
        func text(_ lines: [String]) -> String { lines.map { $0 + "\n" }.joined() }
        return AccountFiles(passwd: text(passwdLines), group: text(groupLines), shadow: text(shadowLines), gshadow: text(gshadowLines))
    }

    static func lines(_ text: String?) -> [String] {
        guard let text else { return [] }
        var out = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while out.last == "" { out.removeLast() }
        return out
    }

    /// The `index`th colon-separated field of an account line.
    static func field(_ line: String, _ index: Int) -> String? {
        let parts = line.split(separator: ":", omittingEmptySubsequences: false)
        return index < parts.count ? String(parts[index]) : nil
    }
}
