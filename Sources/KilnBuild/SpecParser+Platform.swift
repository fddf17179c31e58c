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
