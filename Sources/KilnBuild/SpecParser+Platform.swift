import KilnOCI
import Yams

/// `architecture`, `os` and the times `created` / `mtime` (and `SOURCE_DATE_EPOCH`).
extension SpecParser {
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
}

// MARK: - platforms and sysroots

/// `platforms: [linux/amd64, linux/arm64/v8]`: one image per platform under one index,
/// in the listed order. Each item is `OS/ARCH[/VARIANT]` with GOOS and GOARCH names
/// (the OCI image-spec's platform values). `linux/arm64` and `linux/arm64/v8` name the
/// same platform (arm64's variant defaults to v8, as containerd matches them): listing
/// both is a duplicate. An index entry's platform is written exactly as listed.
/// Mutually exclusive with `architecture`, `os` and `variant`.
///
/// `sysroots: {linux/arm64/v8: PATH}`: a root file system of that platform (relative to
/// the spec's directory), where its `closure:` and `source:` items are looked up; each
/// key must be one of `platforms`, spelled as there or naming the same platform.
extension SpecParser {
    func parsePlatformKeys(_ f: Fields, into spec: inout Spec) throws {
        if let n = f["platforms"] {
            for key in ["architecture", "os", "variant"] {
                if let other = f.entries[key] {
                    throw fail(n, "platforms", "names the platforms itself: it does not go with `\(key)` (line \(line(other.key))); give one of them")
                }
            }
            var out: [Platform] = []
            let items = try list(n, "platforms", itemHint: "a list of platforms such as [linux/amd64, linux/arm64/v8]")
            guard !items.isEmpty else { throw fail(n, "platforms", "is empty (name at least one platform, such as linux/amd64)") }
            for (i, item) in items.enumerated() {
                let kp = "platforms[\(i)]"
                let s = try string(item, kp)
                let p: Platform
                do { p = try Spec.parsePlatform(s) } catch let e as BuildError { throw fail(item, kp, e.message) }
                if let same = out.first(where: { Spec.samePlatform($0, p) }) {
                    let why = same == p ? "" : " (arm64's variant is v8 when none is given)"
                    throw fail(item, kp, "`\(s)` is listed twice: \(same) names the same platform\(why)")
                }
                out.append(p)
            }
            spec.platforms = out
        }
        if let n = f["sysroots"] {
            guard !spec.platforms.isEmpty else {
                throw fail(n, "sysroots", "names a root file system per platform of `platforms`, which the spec lacks")
            }
            let m = try fields(n, at: "sysroots", allowed: nil)
            for (key, entry) in m.entries.sorted(by: { line($0.value.key) < line($1.value.key) }) {
                let kp = "sysroots.\(key)"
                let p: Platform
                do { p = try Spec.parsePlatform(key) } catch let e as BuildError { throw fail(entry.key, kp, e.message) }
                guard let listed = spec.platforms.first(where: { Spec.samePlatform($0, p) }) else {
                    throw fail(entry.key, kp, "\(key) is not among the platforms (\(spec.platforms.map(\.description).joined(separator: ", ")))")
                }
                guard spec.sysroots[listed] == nil else { throw fail(entry.key, kp, "a second sysroot for \(listed)") }
                let s = try string(entry.value, kp)
                guard !s.isEmpty, !s.utf8.contains(0) else { throw fail(entry.value, kp, "expected a directory path") }
                spec.sysroots[listed] = SpecPaths.clean(s.hasPrefix("/") ? s : directory + "/" + s)
            }
        }
    }
}

extension Spec {
    /// Parses `OS/ARCH[/VARIANT]` (GOOS and GOARCH names, as `--platform` and the spec's
    /// `platforms` take them); the error says what is wrong and suggests a spelling.
    public static func parsePlatform(_ s: String) throws -> Platform {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            var hint = ""
            if !s.contains("/"), SpecParser.goarch.contains(s) || SpecParser.archAliases[s.lowercased()] != nil {
                let (arch, variant) = SpecParser.goarch.contains(s) ? (s, nil) : SpecParser.archAliases[s.lowercased()]!
                hint = "; did you mean `linux/\(arch)\(variant.map { "/\($0)" } ?? "")`?"
            }
            throw BuildError("`\(s)` is not a platform: expected OS/ARCH[/VARIANT], such as linux/amd64 or linux/arm64/v8\(hint)")
        }
        let (os, arch) = (parts[0], parts[1])
        guard SpecParser.goos.contains(os) else {
            throw BuildError("`\(s)`: unknown operating system `\(os)` (expected a GOOS name such as linux)"
                + (SpecPaths.didYouMean(os, SpecParser.goos).map { "; did you mean `\($0)`?" } ?? ""))
        }
        guard SpecParser.goarch.contains(arch) else {
            var suggestion = SpecPaths.didYouMean(arch, SpecParser.goarch).map { "; did you mean `\($0)`?" } ?? ""
            if let (a, v) = SpecParser.archAliases[arch.lowercased()] {
                suggestion = "; did you mean `\(os)/\(a)\((parts.count == 3 ? parts[2] : v).map { "/\($0)" } ?? "")`?"
            }
            throw BuildError("`\(s)`: unknown architecture `\(arch)` (expected a GOARCH name such as amd64, arm64, arm, 386, ppc64le, s390x, riscv64)"
                + suggestion)
        }
        return Platform(architecture: arch, os: os, variant: parts.count == 3 ? parts[2] : nil)
    }

    /// Whether two platforms name the same thing: equal, or arm64 with and without its
    /// default variant v8 (as containerd's matcher and `PlatformSelection` treat them).
    public static func samePlatform(_ a: Platform, _ b: Platform) -> Bool {
        func norm(_ p: Platform) -> Platform {
            var p = p
            if p.architecture == "arm64", p.variant == nil { p.variant = "v8" }
            return p
        }
        return norm(a) == norm(b)
    }
}
