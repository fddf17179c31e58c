#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import KilnOCI
import Yams

// Spec syntax (YAML, or JSON since JSON is YAML):
//
//   name: example/hello            # required
//   tag: "1.0"                     # optional
//   architecture: amd64            # GOARCH name, optional
//   os: linux                      # default linux
//   variant: v8                    # optional
//   created: 2024-01-01T00:00:00Z  # RFC 3339 or `now`; default $SOURCE_DATE_EPOCH, else epoch 1
//   mtime: now                     # same syntax; default: the created time
//   contents:
//     - ./rootfs                   # a directory merged into /
//     - source: ./app              # or archive: / closure:, exactly one
//       target: /opt/app
//   users:  [{name: app, uid: 1000, gid: 1000, home: /home/app, shell: /bin/sh}]
//   groups: [{name: app, gid: 1000, members: [app]}]
//   perms:  [{path: "/opt/app/*", mode: "0755", uid: 1000, gid: 1000}]
//   extraCommands: |
//     mkdir -p tmp
//   xattrs: false
//   compressor: gzip               # gzip, zstd or none
//   config: {Entrypoint: [...], Cmd: [...], Env: [K=V], ...}   # Docker names
//   fromImage: oci-archive:base.tar:v1  # a base image, any transport; its layers are reused
//   fromImageName: example/base         # choose among the images of one archive
//   fromImageTag: v1
//   runAsRoot: |                        # run as root in namespaces over an overlayfs of the image
//     useradd -m app
//   runAsRootNetwork: false             # default false: no network for runAsRoot
//
// Every error reads `FILE:LINE: KEY: what is wrong`, KEY being a path such as
// `config.Env[2]` (list indices count from 0).

extension Spec {
    /// Reads and parses the spec file at `path`.
    public static func load(path: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Spec {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw BuildError("\(path): cannot read the spec file: \(String(cString: strerror(errno)))")
        }
        close(fd)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BuildError("\(path): cannot read the spec file: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BuildError("\(path): the spec file is not valid UTF-8")
        }
        return try parse(text: text, path: path, environment: environment)
    }

    /// Parses spec text. `path` names the file in messages and, made absolute, gives the
    /// directory that relative content paths are resolved against.
    /// `environment` supplies `SOURCE_DATE_EPOCH`.
    public static func parse(text: String, path: String, environment: [String: String] = [:]) throws -> Spec {
        try SpecParser(text: text, path: path, environment: environment).parse()
    }
}

// MARK: - Parser

private struct SpecParser {
    let file: String
    let text: String
    let environment: [String: String]
    let absolutePath: String
    let directory: String

    init(text: String, path: String, environment: [String: String]) {
        self.file = path
        self.text = text
        self.environment = environment
        var abs = path
        if !abs.hasPrefix("/") {
            abs = FileManager.default.currentDirectoryPath + "/" + abs
        }
        abs = SpecPaths.clean(abs)
        self.absolutePath = abs
        if let slash = abs.lastIndex(of: "/"), slash != abs.startIndex {
            self.directory = String(abs[..<slash])
        } else {
            self.directory = "/"
        }
    }

    // MARK: Top level

    static let topKeys = ["name", "tag", "architecture", "os", "variant", "created", "mtime", "contents",
                          "users", "groups", "perms", "extraCommands", "xattrs", "compressor", "config",
                          "fromImage", "fromImageName", "fromImageTag", "runAsRoot", "runAsRootNetwork",
                          "maxLayers", "layering", "layers"]

    func parse() throws -> Spec {
        let composed: Node?
        do {
            composed = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw yamlError(error)
        }
        guard let root = composed, !isNull(root) else {
            throw BuildError("\(file):1: the spec is empty (expected a map with at least a `name` key)")
        }
        guard case .mapping = root else {
            throw BuildError("\(file):\(line(root)): expected a map at the top level, got \(describe(root))")
        }
        let f = try fields(root, at: "", allowed: Self.topKeys)

        var locations: [String: SourceLocation] = [:]
        for (name, entry) in f.entries {
            locations[name] = location(entry.key)
        }

        guard let nameNode = f["name"] else { throw f.missing("name", "the image name, e.g. `example/hello`", self) }
        let name = try string(nameNode, "name")
        do {
            try ReferenceGrammar.validateName(name)
        } catch let e as OCIError {
            throw fail(nameNode, "name", e.description)
        }

        var tag: String?
        if let n = f["tag"] {
            let t = try string(n, "tag")
            do {
                try ReferenceGrammar.validateTag(t)
            } catch let e as OCIError {
                throw fail(n, "tag", e.description)
            }
            tag = t
        }

        let architecture = try f["architecture"].map { try parseArchitecture($0) }
        let os = try f["os"].map { try parseOS($0) } ?? "linux"
        var variant: String?
        if let n = f["variant"] {
            let v = try string(n, "variant")
            guard !v.isEmpty else { throw fail(n, "variant", "must not be empty") }
            variant = v
        }

        let created = try f["created"].map { try parseTime($0, "created") } ?? defaultCreated()
        let mtime = try f["mtime"].map { try parseTime($0, "mtime") }

        let contents = try f["contents"].map { try parseContents($0) } ?? []
        let users = try f["users"].map { try parseUsers($0) } ?? []
        let groups = try f["groups"].map { try parseGroups($0) } ?? []
        let perms = try f["perms"].map { try parsePerms($0) } ?? []
        let extraCommands = try f["extraCommands"].map { try string($0, "extraCommands") }
        let xattrs = try f["xattrs"].map { try bool($0, "xattrs") } ?? false

        var compressor = Spec.Compressor.gzip
        if let n = f["compressor"] {
            let s = try string(n, "compressor")
            guard let c = Spec.Compressor(rawValue: s) else {
                throw fail(n, "compressor", "unknown compressor `\(s)`"
                    + hint(s, Spec.Compressor.allCases.map(\.rawValue), expected: "gzip, zstd or none"))
            }
            compressor = c
        }

        let config = try f["config"].map { try parseConfig($0) } ?? ContainerConfig()

        var spec = Spec(path: file, fileURL: URL(fileURLWithPath: absolutePath), directory: directory,
                    name: name, tag: tag, architecture: architecture, os: os, variant: variant,
                    created: created, mtime: mtime, contents: contents, users: users, groups: groups,
                    perms: perms, extraCommands: extraCommands, xattrs: xattrs, compressor: compressor,
                    config: config, keyLocations: locations)
        // Base image and runAsRoot (see BaseImage.swift, RunAsRoot.swift).
        if let n = f["fromImage"] {
            let s = try string(n, "fromImage")
            do {
                spec.fromImage = try BaseReference.resolve(s, relativeTo: directory)
            } catch {
                throw fail(n, "fromImage", "\(error)")
            }
        }
        for key in ["fromImageName", "fromImageTag"] {
            guard let n = f[key] else { continue }
            let s = try string(n, key)
            guard spec.fromImage != nil else { throw fail(n, key, "needs `fromImage` (the archive to choose from)") }
            do {
                if key == "fromImageName" { try ReferenceGrammar.validateName(s) } else { try ReferenceGrammar.validateTag(s) }
            } catch let e as OCIError {
                throw fail(n, key, e.description)
            }
            if key == "fromImageName" { spec.fromImageName = s } else { spec.fromImageTag = s }
        }
        // Layering (see Layering.swift).
        if let n = f["maxLayers"] {
            let v = try integer(n, "maxLayers", max: Int.max)
            guard (1...Spec.layerLimit).contains(v) else {
                throw fail(n, "maxLayers", "must be 1 to \(Spec.layerLimit) (overlay mounts fail beyond that), base layers included")
            }
            spec.maxLayers = v
        }
        if let n = f["layering"] {
            let s = try string(n, "layering")
            let all = ["auto", "popularity", "single"]
            switch s {
            case "auto": spec.layering = .auto
            case "popularity": spec.layering = .popularity
            case "single": spec.layering = .single
            default: throw fail(n, "layering", "unknown strategy `\(s)`" + hint(s, all, expected: "auto, popularity or single"))
            }
        }
        if let n = f["layers"] {
            guard f["layering"] == nil else { throw fail(n, "layers", "an explicit `layers` list replaces `layering`; give one of them") }
            var groups: [[String]] = []
            for (i, item) in try list(n, "layers", itemHint: "a glob or a list of globs").enumerated() {
                let globs = try (try? stringList(item, "layers[\(i)]")) ?? [string(item, "layers[\(i)]")]
                for g in globs where !g.hasPrefix("/") {
                    throw fail(item, "layers[\(i)]", "`\(g)` must be an absolute path or glob")
                }
                groups.append(globs)
            }
            spec.layering = .explicit(groups)
        }
        if let n = f["runAsRoot"] { spec.runAsRoot = try string(n, "runAsRoot") }
        if let n = f["runAsRootNetwork"] {
            spec.runAsRootNetwork = try bool(n, "runAsRootNetwork")
            guard spec.runAsRoot != nil else { throw fail(n, "runAsRootNetwork", "has no effect without `runAsRoot`") }
        }
        return spec
    }

    // MARK: Platform

    static let goarch = ["386", "amd64", "amd64p32", "arm", "arm64", "arm64be", "armbe", "loong64", "mips",
                         "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le", "ppc", "ppc64", "ppc64le",
                         "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm"]
    /// Other spellings of GOARCH names: the name, and the variant they imply.
    static let archAliases: [String: (String, String?)] = [
        "x86_64": ("amd64", nil), "x86-64": ("amd64", nil), "x64": ("amd64", nil), "amd": ("amd64", nil),
        "aarch64": ("arm64", nil), "arm64v8": ("arm64", "v8"), "armv8": ("arm64", "v8"),
        "i386": ("386", nil), "i486": ("386", nil), "i586": ("386", nil), "i686": ("386", nil), "x86": ("386", nil),
        "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "armv5": ("arm", "v5"), "armv6": ("arm", "v6"),
        "armv6l": ("arm", "v6"), "armv7": ("arm", "v7"), "armv7l": ("arm", "v7"),
        "ppc64el": ("ppc64le", nil), "powerpc64le": ("ppc64le", nil), "loongarch64": ("loong64", nil),
        "riscv64gc": ("riscv64", nil),
    ]
    static let goos = ["aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux",
                       "netbsd", "openbsd", "plan9", "solaris", "wasip1", "windows"]

    func parseArchitecture(_ n: Node) throws -> String {
        let s = try string(n, "architecture")
        if Self.goarch.contains(s) { return s }
        var suggestion = didYouMean(s, Self.goarch).map { "; did you mean `\($0)`?" } ?? ""
        if let (arch, variant) = Self.archAliases[s.lowercased()] {
            suggestion = "; did you mean `\(arch)`" + (variant.map { " with `variant: \($0)`" } ?? "") + "?"
        }
        throw fail(n, "architecture", "unknown architecture `\(s)` (expected a GOARCH name such as amd64, arm64, arm, 386, ppc64le, s390x, riscv64)"
            + suggestion)
    }

    func parseOS(_ n: Node) throws -> String {
        let s = try string(n, "os")
        if Self.goos.contains(s) { return s }
        throw fail(n, "os", "unknown operating system `\(s)` (expected a GOOS name such as linux or windows)"
            + (didYouMean(s, Self.goos).map { "; did you mean `\($0)`?" } ?? ""))
    }

    // MARK: Times

    func parseTime(_ n: Node, _ key: String) throws -> CreatedTime {
        let s = try string(n, key)
        if s == "now" { return .now }
        guard let t = RFC3339.parse(s) else {
            throw fail(n, key, "invalid time `\(s)` (expected an RFC 3339 timestamp such as 2024-01-01T00:00:00Z, or `now`)")
        }
        if case .fixed(let epoch, _) = t, epoch < 0 {
            throw fail(n, key, "`\(s)` is before 1970-01-01T00:00:00Z")
        }
        return t
    }

    func defaultCreated() throws -> CreatedTime {
        if let raw = environment["SOURCE_DATE_EPOCH"], !raw.isEmpty {
            guard raw.utf8.allSatisfy({ (48...57).contains($0) }), raw.utf8.count <= 12,
                  let v = Int64(raw), v <= 253_402_300_799 else {
                throw BuildError("\(file): SOURCE_DATE_EPOCH: invalid value `\(raw)` (expected a whole number of seconds since 1970-01-01T00:00:00Z)")
            }
            return .at(epochSeconds: v)
        }
        return .at(epochSeconds: 1)
    }

    // MARK: Contents

    func parseContents(_ n: Node) throws -> [ContentItem] {
        try list(n, "contents", itemHint: "a list of paths or of maps with `source`, `archive` or `closure`")
            .enumerated().map { i, item in
                let kp = "contents[\(i)]"
                switch item {
                case .scalar where !isNull(item):
                    return ContentItem(kind: .directory, path: try hostPath(item, kp), location: location(item))
                case .mapping:
                    let f = try fields(item, at: kp, allowed: ["source", "archive", "closure", "target"])
                    let given: [(String, ContentItem.Kind)] = [("source", .source), ("archive", .archive), ("closure", .closure)]
                        .filter { f.entries[$0.0] != nil }
                    guard let first = given.first else {
                        throw fail(item, kp, "expected one of `source`, `archive` or `closure`")
                    }
                    let (key, kind) = first
                    if given.count > 1 {
                        let second = given[1].0
                        throw fail(f.entries[second]!.key, "\(kp).\(second)",
                                   "`\(key)` and `\(second)` cannot be used together; make them two items")
                    }
                    guard let pathNode = f[key] else { throw fail(f.entries[key]!.key, "\(kp).\(key)", "missing path") }
                    let path = try hostPath(pathNode, "\(kp).\(key)")
                    let target = try f["target"].map { try imagePath($0, "\(kp).target") }
                    return ContentItem(kind: kind, path: path, target: target, location: location(item))
                default:
                    throw fail(item, kp, "expected a path or a map with `source`, `archive` or `closure`, got \(describe(item))")
                }
            }
    }

    /// A host path, resolved against the spec's directory.
    func hostPath(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard !s.isEmpty else { throw fail(n, kp, "empty path") }
        guard !s.utf8.contains(0) else { throw fail(n, kp, "path contains a NUL character") }
        return SpecPaths.clean(s.hasPrefix("/") ? s : directory + "/" + s)
    }

    /// A path inside the image: absolute, cleaned, not escaping the root. A trailing `/` is kept.
    func imagePath(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard s.hasPrefix("/") else {
            throw fail(n, kp, "`\(s)` must be an absolute path inside the image (starting with `/`)")
        }
        guard !s.utf8.contains(0) else { throw fail(n, kp, "path contains a NUL character") }
        var parts: [Substring] = []
        for p in s.split(separator: "/") {
            switch p {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { throw fail(n, kp, "`\(s)` escapes the image root") }
                parts.removeLast()
            default: parts.append(p)
            }
        }
        let cleaned = "/" + parts.joined(separator: "/")
        return s.hasSuffix("/") && cleaned != "/" ? cleaned + "/" : cleaned
    }

    // MARK: Users, groups, perms

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

    // MARK: Config

    static let configKeys = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                             "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"]

    func parseConfig(_ n: Node) throws -> ContainerConfig {
        let f = try fields(n, at: "config", allowed: Self.configKeys)
        var c = ContainerConfig()
        if let v = f["User"] { c.User = try string(v, "config.User") }
        if let v = f["Entrypoint"] { c.Entrypoint = try command(v, "config.Entrypoint") }
        if let v = f["Cmd"] { c.Cmd = try command(v, "config.Cmd") }
        if let v = f["Shell"] { c.Shell = try command(v, "config.Shell") }
        if let v = f["OnBuild"] { c.OnBuild = try stringList(v, "config.OnBuild") }
        if let v = f["Env"] { c.Env = try parseEnv(v) }
        if let v = f["WorkingDir"] {
            let s = try string(v, "config.WorkingDir")
            guard s.hasPrefix("/") else { throw fail(v, "config.WorkingDir", "`\(s)` must be an absolute path") }
            c.WorkingDir = s
        }
        if let v = f["ExposedPorts"] { c.ExposedPorts = try parsePorts(v) }
        if let v = f["Volumes"] {
            var volumes: [String: EmptyObject] = [:]
            for (item, kp) in try setItems(v, "config.Volumes", what: "absolute paths") {
                let s = try string(item, kp)
                guard s.hasPrefix("/") else { throw fail(item, kp, "`\(s)` must be an absolute path") }
                volumes[s] = EmptyObject()
            }
            c.Volumes = volumes
        }
        if let v = f["Labels"] {
            let lf = try fields(v, at: "config.Labels", allowed: nil)
            var labels: [String: String] = [:]
            for (key, entry) in lf.entries {
                let kp = "config.Labels.\(key)"
                switch entry.value {
                case .scalar(let s): labels[key] = isNull(entry.value) ? "" : s.string
                default: throw fail(entry.value, kp, "expected a string, got \(describe(entry.value))")
                }
            }
            c.Labels = labels
        }
        if let v = f["StopSignal"] { c.StopSignal = try parseSignal(v) }
        if let v = f["ArgsEscaped"] { c.ArgsEscaped = try bool(v, "config.ArgsEscaped") }
        if let v = f["Healthcheck"] { c.Healthcheck = try parseHealthcheck(v) }
        return c
    }

    /// A list of strings; a plain string gets a hint about the list form.
    func command(_ n: Node, _ kp: String) throws -> [String] {
        if case .scalar(let s) = n, !isNull(n) {
            let words = s.string.split(separator: " ").map { quoted(String($0)) }.joined(separator: ", ")
            throw fail(n, kp, "expected a list of strings, got a string; write it as a list, e.g. [\(words)], "
                + "or [\"/bin/sh\", \"-c\", \(quoted(s.string))] to run it through a shell")
        }
        return try stringList(n, kp)
    }

    func parseEnv(_ n: Node) throws -> [String] {
        if case .mapping = n {
            throw fail(n, "config.Env", "expected a list of NAME=VALUE strings, got a map; write e.g. `- PATH=/bin`")
        }
        let items = try list(n, "config.Env", itemHint: "a list of NAME=VALUE strings")
        return try items.enumerated().map { i, item in
            let kp = "config.Env[\(i)]"
            if case .mapping = item {
                throw fail(item, kp, "expected a NAME=VALUE string, got a map (write `- NAME=VALUE`, not `- NAME: VALUE`)")
            }
            let s = try string(item, kp)
            guard let eq = s.firstIndex(of: "=") else {
                throw fail(item, kp, "`\(s)` has no `=` (expected NAME=VALUE)")
            }
            guard eq != s.startIndex else { throw fail(item, kp, "`\(s)` has an empty variable name") }
            return s
        }
    }

    /// Items of a list, or keys of a map whose values are empty (`~` or `{}`), as for
    /// `ExposedPorts` and `Volumes`.
    func setItems(_ n: Node, _ kp: String, what: String) throws -> [(Node, String)] {
        switch n {
        case .sequence(let seq):
            return seq.enumerated().map { ($1, "\(kp)[\($0)]") }
        case .mapping:
            let f = try fields(n, at: kp, allowed: nil)
            return try f.entries.sorted { line($0.value.key) < line($1.value.key) }.map { key, entry in
                let empty: Bool
                switch entry.value {
                case .mapping(let m): empty = m.isEmpty
                default: empty = isNull(entry.value)
                }
                guard empty else {
                    throw fail(entry.value, "\(kp).\(key)", "expected an empty value (`{}`), got \(describe(entry.value))")
                }
                return (entry.key, "\(kp).\(key)")
            }
        default:
            throw fail(n, kp, "expected a list (or a map with empty values) of \(what), got \(describe(n))")
        }
    }

    func parsePorts(_ n: Node) throws -> [String: EmptyObject] {
        var ports: [String: EmptyObject] = [:]
        for (item, kp) in try setItems(n, "config.ExposedPorts", what: "ports such as 8080/tcp") {
            let s = try string(item, kp)
            let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let proto = parts.count > 1 ? parts[1].lowercased() : "tcp"
            guard ["tcp", "udp", "sctp"].contains(proto) else {
                throw fail(item, kp, "`\(s)`: unknown protocol `\(parts[1])` (expected tcp, udp or sctp)")
            }
            func port(_ p: Substring) -> Int? {
                guard !p.isEmpty, p.count <= 5, p.utf8.allSatisfy({ (48...57).contains($0) }),
                      let v = Int(p), (1...65535).contains(v) else { return nil }
                return v
            }
            let range = parts[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let low = port(range[0]), let high = range.count > 1 ? port(range[1]) : low, low <= high else {
                throw fail(item, kp, "`\(s)` is not a port (expected PORT[/PROTOCOL] or FIRST-LAST[/PROTOCOL], ports 1 to 65535)")
            }
            for p in low...high { ports["\(p)/\(proto)"] = EmptyObject() }
        }
        return ports
    }

    static let signals = ["ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
                          "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
                          "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ"]

    /// A Linux signal: a name with or without `SIG` (any case), a number from 1 to 64, or
    /// `SIGRTMIN+N` / `SIGRTMAX-N`. Names come back as `SIGNAME`, numbers as numbers.
    func parseSignal(_ n: Node) throws -> String {
        let kp = "config.StopSignal"
        let raw = try string(n, kp)
        let upper = raw.uppercased()
        let name = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        func small(_ s: Substring, _ range: ClosedRange<Int>) -> Int? {
            guard !s.isEmpty, s.count <= 3, s.utf8.allSatisfy({ (48...57).contains($0) }), let v = Int(s),
                  range.contains(v) else { return nil }
            return v
        }
        if name == upper, let v = small(Substring(name), 1...64) { return String(v) }
        if Self.signals.contains(name) || name == "RTMIN" || name == "RTMAX" { return "SIG" + name }
        if name.hasPrefix("RTMIN+"), let v = small(name.dropFirst(6), 0...30) { return v == 0 ? "SIGRTMIN" : "SIGRTMIN+\(v)" }
        if name.hasPrefix("RTMAX-"), let v = small(name.dropFirst(6), 0...30) { return v == 0 ? "SIGRTMAX" : "SIGRTMAX-\(v)" }
        let candidates = (Self.signals + ["RTMIN", "RTMAX"]).map { "SIG" + $0 }
        throw fail(n, kp, "unknown signal `\(raw)` (expected a Linux signal such as SIGTERM, TERM, 15 or SIGRTMIN+3)"
            + (didYouMean("SIG" + name, candidates).map { "; did you mean `\($0)`?" } ?? ""))
    }

    func parseHealthcheck(_ n: Node) throws -> Healthcheck {
        let f = try fields(n, at: "config.Healthcheck",
                           allowed: ["Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"])
        var h = Healthcheck()
        if let v = f["Test"] {
            let kp = "config.Healthcheck.Test"
            if case .scalar(let s) = v {
                throw fail(v, kp, "expected a list of strings, got a string; write [\"CMD-SHELL\", \(quoted(s.string))] "
                    + "to run it through a shell, or [\"CMD\", …] to run a program directly")
            }
            let test = try stringList(v, kp)
            switch test.first {
            case nil: break  // inherit
            case "NONE":
                guard test.count == 1 else { throw fail(v, kp, "[\"NONE\"] takes no arguments") }
            case "CMD":
                guard test.count >= 2 else { throw fail(v, kp, "[\"CMD\", …] needs a program to run") }
            case "CMD-SHELL":
                guard test.count == 2 else { throw fail(v, kp, "[\"CMD-SHELL\", …] takes exactly one shell command") }
            case let first?:
                throw fail(v, kp, "the first item must be \"CMD\", \"CMD-SHELL\" or \"NONE\", not \(quoted(first))")
            }
            h.Test = test
        }
        if let v = f["Interval"] { h.Interval = try duration(v, "config.Healthcheck.Interval") }
        if let v = f["Timeout"] { h.Timeout = try duration(v, "config.Healthcheck.Timeout") }
        if let v = f["StartPeriod"] { h.StartPeriod = try duration(v, "config.Healthcheck.StartPeriod") }
        if let v = f["StartInterval"] { h.StartInterval = try duration(v, "config.Healthcheck.StartInterval") }
        if let v = f["Retries"] { h.Retries = try integer(v, "config.Healthcheck.Retries", max: Int(Int32.max)) }
        return h
    }

    /// A Go duration ("30s", "1m30s", "1.5h", "500ms") or an integer number of nanoseconds.
    func duration(_ n: Node, _ kp: String) throws -> Int64 {
        let s = try string(n, kp)
        guard let v = SpecPaths.goDuration(s) else {
            throw fail(n, kp, "`\(s)` is not a duration (expected e.g. \"30s\", \"1m30s\", \"500ms\" or an integer number of nanoseconds)")
        }
        guard v >= 0 else { throw fail(n, kp, "`\(s)` is negative") }
        return v
    }

    // MARK: - Node helpers

    struct Entry {
        var key: Node
        var value: Node
    }

    struct Fields {
        var node: Node
        var path: String
        var entries: [String: Entry]

        /// The value of `name`, nil when absent or null.
        subscript(name: String) -> Node? {
            guard let v = entries[name]?.value else { return nil }
            if case .scalar = v, v.tag == Tag(.null) { return nil }
            return v
        }

        func keyPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

        func missing(_ name: String, _ what: String, _ p: SpecParser) -> BuildError {
            if let e = entries[name] {
                return p.fail(e.key, keyPath(name), "missing value (\(what))")
            }
            return p.fail(node, keyPath(name), "missing required key (\(what))")
        }
    }

    /// The entries of a map: keys must be strings and unique; `<<` merge keys are applied;
    /// keys not in `allowed` (when given) are errors with a suggestion.
    func fields(_ n: Node, at kp: String, allowed: [String]?) throws -> Fields {
        guard case .mapping(let m) = n else {
            throw fail(n, kp, "expected a map, got \(describe(n))")
        }
        let pairs = try flatten(m, at: kp)
        var entries: [String: Entry] = [:]
        for (name, key, value) in pairs {
            let path = kp.isEmpty ? name : "\(kp).\(name)"
            if let allowed, !allowed.contains(name) {
                throw fail(key, path, "unknown key" + hint(name, allowed, expected: nil))
            }
            entries[name] = Entry(key: key, value: value)
        }
        return Fields(node: n, path: kp, entries: entries)
    }

    func flatten(_ m: Node.Mapping, at kp: String) throws -> [(String, Node, Node)] {
        var explicit: [(String, Node, Node)] = []
        var seen: [String: Node] = [:]
        var merged: [[(String, Node, Node)]] = []
        for (key, value) in m {
            let path = { (name: String) in kp.isEmpty ? name : "\(kp).\(name)" }
            if case .scalar = key, key.tag == Tag(.merge) {
                switch value {
                case .mapping(let mm): merged.append(try flatten(mm, at: kp))
                case .sequence(let seq):
                    for item in seq {
                        guard case .mapping(let mm) = item else {
                            throw fail(item, path("<<"), "expected a map to merge, got \(describe(item))")
                        }
                        merged.append(try flatten(mm, at: kp))
                    }
                default:
                    throw fail(value, path("<<"), "expected a map or a list of maps to merge, got \(describe(value))")
                }
                continue
            }
            guard case .scalar(let s) = key, !isNull(key) else {
                throw fail(key, kp.isEmpty ? "(top level)" : kp, "keys must be strings, got \(describe(key))")
            }
            let name = s.string
            if let first = seen[name] {
                throw fail(key, path(name), "duplicate key (first on line \(line(first)))")
            }
            seen[name] = key
            explicit.append((name, key, value))
        }
        var result = explicit
        for group in merged {
            for entry in group where seen[entry.0] == nil {
                seen[entry.0] = entry.1
                result.append(entry)
            }
        }
        return result
    }

    func list(_ n: Node, _ kp: String, itemHint: String) throws -> [Node] {
        guard case .sequence(let seq) = n else {
            throw fail(n, kp, "expected \(itemHint), got \(describe(n))")
        }
        return Array(seq)
    }

    func stringList(_ n: Node, _ kp: String) throws -> [String] {
        try list(n, kp, itemHint: "a list of strings").enumerated().map { i, item in
            try string(item, "\(kp)[\(i)]")
        }
    }

    /// Any non-null scalar, as written (so `tag: 1.0` is "1.0").
    func string(_ n: Node, _ kp: String) throws -> String {
        guard case .scalar(let s) = n, !isNull(n) else {
            throw fail(n, kp, "expected a string, got \(describe(n))")
        }
        return s.string
    }

    func bool(_ n: Node, _ kp: String) throws -> Bool {
        guard tagName(n) == .bool, let b = n.bool else {
            throw fail(n, kp, "expected true or false, got \(describe(n))")
        }
        return b
    }

    /// A non-negative decimal integer up to `max`.
    func integer(_ n: Node, _ kp: String, max: Int) throws -> Int {
        guard case .scalar(let s) = n, tagName(n) == .int || tagName(n) == .str,
              !s.string.isEmpty, s.string.count <= 18, s.string.utf8.allSatisfy({ (48...57).contains($0) }),
              let v = Int(s.string), v <= max else {
            throw fail(n, kp, "expected an integer from 0 to \(max), got \(describe(n))")
        }
        return v
    }

    func tagName(_ n: Node) -> Tag.Name { Tag.Name(rawValue: n.tag.description) }

    func isNull(_ n: Node) -> Bool {
        if case .scalar = n { return tagName(n) == .null }
        return false
    }

    func describe(_ n: Node) -> String {
        switch n {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .scalar(let s):
            let shown = s.string.count > 40 ? String(s.string.prefix(40)) + "…" : s.string
            switch tagName(n) {
            case .null: return "null"
            case .bool: return "a boolean (\(shown))"
            case .int: return "an integer (\(shown))"
            case .float: return "a number (\(shown))"
            default: return "a string (\(quoted(shown)))"
            }
        }
    }

    func line(_ n: Node) -> Int { n.mark?.line ?? 1 }

    func location(_ n: Node) -> SourceLocation {
        SourceLocation(file: file, line: n.mark?.line ?? 1, column: n.mark?.column ?? 1)
    }

    func fail(_ n: Node, _ kp: String, _ what: String) -> BuildError {
        BuildError("\(file):\(line(n)): \(kp): \(what)")
    }

    func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    /// "; did you mean `X`?" or " (expected …)".
    func hint(_ s: String, _ candidates: [String], expected: String?) -> String {
        if let m = didYouMean(s, candidates) { return "; did you mean `\(m)`?" }
        return " (expected " + (expected ?? "one of " + candidates.map { "`\($0)`" }.joined(separator: ", ")) + ")"
    }

    func didYouMean(_ s: String, _ candidates: [String]) -> String? {
        SpecPaths.didYouMean(s, candidates)
    }

    func yamlError(_ e: YamlError) -> BuildError {
        var lineNo = 1
        var what = "\(e)"
        switch e {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            lineNo = mark.line
            what = problem
            if let context { what += " (\(context.text) on line \(context.mark.line))" }
        case .reader(let problem, let offset, _, let yaml):
            what = problem
            if let offset {
                lineNo = 1 + yaml.prefix(offset).filter { $0 == "\n" }.count
            }
        default:
            break
        }
        return BuildError("\(file):\(lineNo): invalid YAML: \(what)")
    }
}

// MARK: - Pure helpers

enum SpecPaths {
    /// Lexically cleans an absolute path: no `.`, no empty components, `..` applied.
    static func clean(_ path: String) -> String {
        var parts: [Substring] = []
        for p in path.split(separator: "/") {
            switch p {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(p)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// `[a-z_][a-z0-9_-]*[$]?`, 1 to 32 characters.
    static func isAccountName(_ s: String) -> Bool {
        let c = Array(s.utf8)
        guard !c.isEmpty, c.count <= 32 else { return false }
        func lower(_ b: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) }
        func digit(_ b: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) }
        guard lower(c[0]) || c[0] == UInt8(ascii: "_") else { return false }
        for (i, b) in c.enumerated().dropFirst() {
            if lower(b) || digit(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") { continue }
            if b == UInt8(ascii: "$"), i == c.count - 1 { continue }
            return false
        }
        return true
    }

    /// Go's `time.ParseDuration`, or a plain integer (nanoseconds). nil when invalid or out of range.
    static func goDuration(_ s: String) -> Int64? {
        if !s.isEmpty, s.count <= 19, s.utf8.allSatisfy({ (48...57).contains($0) }) { return Int64(s) }
        var c = Array(s.unicodeScalars)
        var negative = false
        if let f = c.first, f == "-" || f == "+" {
            negative = f == "-"
            c.removeFirst()
        }
        if c.count == 1, c[0] == "0" { return 0 }
        guard !c.isEmpty else { return nil }
        let units: [String: Int64] = ["ns": 1, "us": 1_000, "\u{B5}s": 1_000, "\u{3BC}s": 1_000, "ms": 1_000_000,
                                      "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000]
        func isDigit(_ u: Unicode.Scalar) -> Bool { ("0"..."9").contains(u) }
        var i = 0
        var total: Int64 = 0
        while i < c.count {
            var whole: Int64 = 0
            var sawDigits = false
            while i < c.count, isDigit(c[i]) {
                let (m, o1) = whole.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(c[i].value - 48))
                guard !o1, !o2 else { return nil }
                whole = a
                sawDigits = true
                i += 1
            }
            var frac: Int64 = 0
            var scale: Double = 1
            if i < c.count, c[i] == "." {
                i += 1
                while i < c.count, isDigit(c[i]) {
                    if scale < 1e18 {
                        frac = frac * 10 + Int64(c[i].value - 48)
                        scale *= 10
                    }
                    sawDigits = true
                    i += 1
                }
            }
            guard sawDigits else { return nil }
            let start = i
            while i < c.count, c[i] != ".", !isDigit(c[i]) { i += 1 }
            let unitName = String(String.UnicodeScalarView(c[start..<i]))
            guard let unit = units[unitName] else { return nil }
            let (w, o1) = whole.multipliedReportingOverflow(by: unit)
            guard !o1 else { return nil }
            let f = Double(frac) * (Double(unit) / scale)
            guard f < 9.2e18 else { return nil }
            let (t1, o2) = total.addingReportingOverflow(w)
            let (t2, o3) = t1.addingReportingOverflow(Int64(f))
            guard !o2, !o3 else { return nil }
            total = t2
        }
        return negative ? -total : total
    }

    /// A case-insensitive match, else the closest candidate within edit distance 2.
    static func didYouMean(_ s: String, _ candidates: [String]) -> String? {
        let lower = s.lowercased()
        if let exact = candidates.first(where: { $0.lowercased() == lower }) { return exact }
        var best: (String, Int)?
        for c in candidates {
            let d = levenshtein(Array(lower.unicodeScalars), Array(c.lowercased().unicodeScalars))
            if d <= 2, d < c.unicodeScalars.count, d < s.unicodeScalars.count, best == nil || d < best!.1 {
                best = (c, d)
            }
        }
        return best?.0
    }

    static func levenshtein(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
