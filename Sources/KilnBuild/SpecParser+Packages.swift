import Yams

/// The Debian package keys: `repositories`, `packages`, `recommends` and `configure`, and
/// the `packages` layering they imply.
///
/// Only the syntax is checked here. The repositories are read, their Release files'
/// signatures verified against the keyrings and the packages resolved when the image is
/// built, so a spec parses without network access or the keyrings at hand.
extension SpecParser {
    /// The keys of an explicit repository: a deb822 source (sources.list(5)) reduced to
    /// one URI and one suite, with its `Signed-By` keyring.
    static let repositoryKeys = ["url", "suite", "components", "keyring"]

    /// Parses the package keys of the top-level map into `spec`. Runs after `layering` and
    /// `layers`, whose absence makes `packages` the default strategy.
    func parsePackageKeys(_ f: Fields, into spec: inout Spec) throws {
        let repositories = try f["repositories"].map { try parseRepositories($0) } ?? []
        let packages = try f["packages"].map { try parsePackages($0) } ?? []
        let recommends = try f["recommends"].map { try bool($0, "recommends") } ?? false
        let configure = try f["configure"].map { try bool($0, "configure") } ?? false

        if packages.isEmpty {
            // Like `runAsRootNetwork` without `runAsRoot`: a key that would silently do
            // nothing is more likely a mistake than a wish.
            for key in ["repositories", "recommends", "configure"] where f[key] != nil {
                throw fail(f.entries[key]!.key, key, "has no effect without `packages`")
            }
            if spec.layering == .packages, let n = f["layering"] {
                throw fail(n, "layering", "`packages` puts each Debian package in its own layer, but the spec has no `packages`")
            }
        } else {
            if repositories.isEmpty {
                throw fail(f.entries["packages"]!.key, "packages",
                           "needs `repositories` to fetch them from (`host` for the host's apt sources, "
                           + "or maps with `url`, `suite`, `components` and `keyring`)")
            }
            if f["layering"] == nil, f["layers"] == nil { spec.layering = .packages }
        }
        spec.repositories = repositories
        spec.packages = packages
        spec.recommends = recommends
        spec.configure = configure
    }

    // MARK: Repositories

    func parseRepositories(_ n: Node) throws -> [RepositorySpec] {
        var result: [RepositorySpec] = []
        var hostLine: Int?
        var explicitLines: [String: Int] = [:]
        let what = "`host` or a map with `url`, `suite`, `components` and `keyring`"
        for (i, item) in try list(n, "repositories", itemHint: "a list of \(what)").enumerated() {
            let kp = "repositories[\(i)]"
            switch item {
            case .scalar where !isNull(item):
                let s = try string(item, kp)
                guard s == "host" else {
                    throw fail(item, kp, "expected \(what), got \(describe(item))"
                        + (didYouMean(s, ["host"]).map { "; did you mean `\($0)`?" } ?? ""))
                }
                if let first = hostLine { throw fail(item, kp, "duplicate `host` (first on line \(first))") }
                hostLine = line(item)
                result.append(.host(location: location(item)))
            case .mapping:
                let repository = try parseRepository(item, kp)
                guard case .explicit(let url, let suite, _, _, _) = repository else { continue }
                // apt merges entries with the same URI and suite; one entry keeps the
                // components (and the keyring) in one place.
                let identity = url + " " + suite
                if let first = explicitLines[identity] {
                    throw fail(item, kp, "`\(url)` suite `\(suite)` is already listed on line \(first); "
                        + "give all its components in one entry")
                }
                explicitLines[identity] = line(item)
                result.append(repository)
            default:
                throw fail(item, kp, "expected \(what), got \(describe(item))")
            }
        }
        return result
    }

    /// An explicit repository. A suite ending in `/` is a flat repository, which has no
    /// components (sources.list(5): "If Suites specifies an exact path, Components must be
    /// omitted"); any other suite needs at least one.
    func parseRepository(_ item: Node, _ kp: String) throws -> RepositorySpec {
        let f = try fields(item, at: kp, allowed: Self.repositoryKeys)
        guard let urlNode = f["url"] else {
            throw f.missing("url", "the repository's base URL: http://, https:// or file:", self)
        }
        let url = try repositoryURL(urlNode, "\(kp).url")
        guard let suiteNode = f["suite"] else {
            throw f.missing("suite", "a suite such as `bookworm`, or a path ending in `/` for a flat repository", self)
        }
        let suite = try sourceWord(suiteNode, "\(kp).suite")
        let flat = suite.hasSuffix("/")
        var components: [String] = []
        if let c = f["components"] {
            var seen = Set<String>()
            for (j, node) in try list(c, "\(kp).components", itemHint: "a list of components such as [main]").enumerated() {
                let component = try sourceWord(node, "\(kp).components[\(j)]")
                guard seen.insert(component).inserted else {
                    throw fail(node, "\(kp).components[\(j)]", "duplicate component `\(component)`")
                }
                components.append(component)
            }
        }
        if flat, !components.isEmpty {
            throw fail(f.entries["components"]!.key, "\(kp).components",
                       "a flat repository (suite `\(suite)` ends in `/`) has no components; remove `components`")
        }
        if !flat, components.isEmpty {
            if let e = f.entries["components"], f["components"] != nil {
                throw fail(e.key, "\(kp).components", "must list at least one component such as `main`")
            }
            throw f.missing("components", "a list such as [main]; only a flat repository, whose suite ends in `/`, has none", self)
        }
        guard let keyringNode = f["keyring"] else {
            throw f.missing("keyring", "the OpenPGP keyring that signs the repository, as apt's Signed-By", self)
        }
        let keyring = try hostPath(keyringNode, "\(kp).keyring")
        return .explicit(url: url, suite: suite, components: components, keyring: keyring, location: location(item))
    }

    /// An `http://`, `https://` or `file:` URL (`file:/path` or `file:///path`), the
    /// methods kiln fetches with. Whitespace is refused: deb822 separates URIs with it.
    func repositoryURL(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard !s.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) else {
            throw fail(n, kp, "\(quoted(s)) contains whitespace or a control character (expected one URL)")
        }
        for scheme in ["http://", "https://"] where s.hasPrefix(scheme) {
            guard let first = s.dropFirst(scheme.count).first, first != "/" else {
                throw fail(n, kp, "`\(s)` names no host")
            }
            return s
        }
        if s.hasPrefix("file:") {
            let path = s.dropFirst("file:".count)
            guard path.hasPrefix("/") else {
                throw fail(n, kp, "`\(s)` needs an absolute path (file:/srv/repo or file:///srv/repo)")
            }
            if path.hasPrefix("//"), !path.hasPrefix("///") {
                throw fail(n, kp, "`\(s)` names a host; a file: URL is local (write file:///path)")
            }
            return s
        }
        throw fail(n, kp, "`\(s)` is not an http://, https:// or file: URL")
    }

    /// A suite or component: non-empty, no whitespace (deb822 fields are whitespace-separated lists).
    func sourceWord(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard !s.isEmpty else { throw fail(n, kp, "must not be empty") }
        guard !s.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f }) else {
            throw fail(n, kp, "\(quoted(s)) contains whitespace or a control character")
        }
        return s
    }

    // MARK: Packages

    func parsePackages(_ n: Node) throws -> [PackageSpec] {
        var result: [PackageSpec] = []
        var firstLine: [String: Int] = [:]
        for (i, item) in try list(n, "packages", itemHint: "a list of package names (`name` or `name=version`)").enumerated() {
            let kp = "packages[\(i)]"
            if case .mapping = item {
                throw fail(item, kp, "expected `name` or `name=version`, got a map (write `- name=version`, not `- name: version`)")
            }
            let s = try string(item, kp)
            var name = s
            var version: String?
            if let eq = s.firstIndex(of: "=") {
                name = String(s[..<eq])
                version = String(s[s.index(after: eq)...])
            }
            guard Self.isPackageName(name) else {
                var why = "invalid package name `\(name)` (Debian Policy §5.6.1: at least two characters, "
                    + "lowercase letters, digits, `+`, `-` and `.`, starting with a letter or digit)"
                if name.contains(":") { why += "; architecture qualifiers are not supported, the image's architecture is used" }
                if name.contains("/") { why += "; apt's `name/suite` is not supported, give an exact `name=version`" }
                throw fail(item, kp, why)
            }
            if let version {
                guard !version.isEmpty else { throw fail(item, kp, "`\(s)` has an empty version after `=`") }
                guard Self.isVersionText(version) else {
                    throw fail(item, kp, "invalid version `\(version)` of `\(name)` (Debian Policy §5.6.12: "
                        + "letters, digits, `.`, `+`, `-`, `~` and an epoch's `:`)")
                }
            }
            if let first = firstLine[name] {
                throw fail(item, kp, "duplicate package `\(name)` (first on line \(first))")
            }
            firstLine[name] = line(item)
            result.append(PackageSpec(name: name, version: version, location: location(item)))
        }
        return result
    }

    /// Debian Policy §5.6.1: "at least two characters long", "only lower case letters
    /// (a-z), digits (0-9), plus (+) and minus (-) signs, and periods (.)", and "must
    /// start with an alphanumeric character".
    static func isPackageName(_ s: String) -> Bool {
        let c = Array(s.utf8)
        guard c.count >= 2 else { return false }
        func alnum(_ b: UInt8) -> Bool {
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
        }
        guard alnum(c[0]) else { return false }
        return c.allSatisfy { alnum($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
    }

    /// The characters of a version (Debian Policy §5.6.12): alphanumerics and `.`, `+`,
    /// `-`, `~` in the upstream version and revision, `:` after an epoch. The structure
    /// (epoch digits, upstream starting with a digit) is checked when versions are compared.
    static func isVersionText(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || ".+-~:".utf8.contains(b)
        }
    }
}
