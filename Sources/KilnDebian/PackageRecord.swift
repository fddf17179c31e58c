/// One binary package of a `Packages` index (or a `status` file), with the fields the
/// resolver and the downloader need already parsed (Debian Policy §5.3, §7).
public struct PackageRecord: Sendable, Hashable {
    public var name: String
    public var version: DebianVersion
    public var architecture: String
    /// The source package, from `Source: name (version)`, or the binary's name and version
    /// when absent or unversioned (Policy §5.6.1).
    public var source: String
    public var sourceVersion: String
    /// `Filename`, `Size` and `SHA256` of a Packages index; `""`/`0`/`""` in a status file.
    public var filename: String
    public var size: Int64
    public var sha256: String
    public var depends: [[PackageDependency]]
    public var preDepends: [[PackageDependency]]
    public var recommends: [[PackageDependency]]
    /// Provided virtual packages, each with an optional `(= version)` (Policy §7.5).
    public var provides: [PackageDependency]
    public var conflicts: [PackageDependency]
    public var breaks: [PackageDependency]
    /// `Essential: yes` (Policy §3.8). The resolver does not add essential packages
    /// implicitly; the flag is informational.
    public var essential: Bool
    /// `same`, `foreign`, `allowed` or nil (multiarch spec).
    public var multiArch: String?
    /// The paragraph as read.
    public var paragraph: ControlParagraph
    /// Which repository it came from (0-based, in the spec's order); ties between equal
    /// versions go to the lower index.
    public var repositoryIndex: Int

    /// Reads a record from an index paragraph. `Package`, `Version` and `Architecture` are
    /// required; errors name the package and the field.
    public init(paragraph: ControlParagraph, repositoryIndex: Int) throws(ResolveError) {
        var name: String?, version: String?, arch: String?, source: String?
        var filename = "", size = "", sha256 = ""
        var depends = "", preDepends = "", recommends = "", provides = "", conflicts = "", breaks = ""
        var essential = false
        var multiArch: String?
        // One pass over the fields. Candidates are found by the name's length first, which
        // rejects most of an index's other fields (Description, Maintainer, …) at once, and
        // then compared case-insensitively (Policy §5.1).
        for f in paragraph.fields {
            let length = f.name.utf8.count
            guard length < Self.knownByLength.count,
                  let field = Self.knownByLength[length].first(where: { ControlParagraph.sameName($0.name, f.name) })?.field
            else { continue }
            switch field {
            case .package: name = f.value
            case .version: version = f.value
            case .architecture: arch = f.value
            case .source: source = f.value
            case .filename: filename = f.value
            case .size: size = f.value
            case .sha256: sha256 = f.value
            case .depends: depends = f.value
            case .preDepends: preDepends = f.value
            case .recommends: recommends = f.value
            case .provides: provides = f.value
            case .conflicts: conflicts = f.value
            case .breaks: breaks = f.value
            case .essential: essential = f.value.lowercased() == "yes"
            case .multiArch: multiArch = f.value
            }
        }
        guard let name, !name.isEmpty else {
            throw .invalidRecord(package: "", reason: "no Package field (fields: \(paragraph.fields.prefix(3).map(\.name).joined(separator: ", ")))")
        }
        guard let versionText = version else { throw .invalidRecord(package: name, reason: "no Version field") }
        guard let arch, !arch.isEmpty else { throw .invalidRecord(package: name, reason: "no Architecture field") }
        do {
            self.version = try DebianVersion(versionText)
        } catch {
            throw .invalidRecord(package: name, reason: "Version: \(error)")
        }
        self.name = name
        self.architecture = arch
        if let source, !source.isEmpty {
            // "Source: name (version)" when the source version differs from the binary's.
            if let open = source.firstIndex(of: "("), let close = source.lastIndex(of: ")"), open < close {
                self.source = trimSpaces(source[..<open])
                self.sourceVersion = trimSpaces(source[source.index(after: open)..<close])
            } else {
                self.source = trimSpaces(source)
                self.sourceVersion = self.version.description
            }
        } else {
            self.source = name
            self.sourceVersion = self.version.description
        }
        self.filename = filename
        if size.isEmpty {
            self.size = 0
        } else {
            guard let n = Int64(size), n >= 0 else { throw .invalidRecord(package: name, reason: "Size \"\(size)\" is not a byte count") }
            self.size = n
        }
        self.sha256 = sha256
        func relations(_ field: String, _ text: String) throws(ResolveError) -> [[PackageDependency]] {
            if text.isEmpty { return [] }
            do { return try Relations.parse(text, architecture: arch) } catch {
                throw .invalidRecord(package: name, reason: "\(field): \(error)")
            }
        }
        func list(_ field: String, _ text: String) throws(ResolveError) -> [PackageDependency] {
            if text.isEmpty { return [] }
            do { return try Relations.parseList(text, architecture: arch) } catch {
                throw .invalidRecord(package: name, reason: "\(field): \(error)")
            }
        }
        self.depends = try relations("Depends", depends)
        self.preDepends = try relations("Pre-Depends", preDepends)
        self.recommends = try relations("Recommends", recommends)
        self.provides = try list("Provides", provides)
        for p in self.provides where p.constraint.map({ $0.op != .eq }) ?? false {
            throw .invalidRecord(package: name, reason: "Provides: \(p) (only \"=\" is allowed, Policy §7.5)")
        }
        self.conflicts = try list("Conflicts", conflicts)
        self.breaks = try list("Breaks", breaks)
        self.essential = essential
        self.multiArch = multiArch
        self.paragraph = paragraph
        self.repositoryIndex = repositoryIndex
    }

    private enum Known: CaseIterable {
        case package, version, architecture, source, filename, size, sha256, depends, preDepends
        case recommends, provides, conflicts, breaks, essential, multiArch

        var name: String {
            switch self {
            case .package: "Package"
            case .version: "Version"
            case .architecture: "Architecture"
            case .source: "Source"
            case .filename: "Filename"
            case .size: "Size"
            case .sha256: "SHA256"
            case .depends: "Depends"
            case .preDepends: "Pre-Depends"
            case .recommends: "Recommends"
            case .provides: "Provides"
            case .conflicts: "Conflicts"
            case .breaks: "Breaks"
            case .essential: "Essential"
            case .multiArch: "Multi-Arch"
            }
        }
    }

    private struct KnownName {
        let name: String
        let field: Known
    }

    /// The fields read above, indexed by the length of their name.
    private static let knownByLength: [[KnownName]] = {
        var table = [[KnownName]](repeating: [], count: 13)
        for k in Known.allCases { table[k.name.utf8.count].append(KnownName(name: k.name, field: k)) }
        return table
    }()
}

/// A package installed in a base image, from its `/var/lib/dpkg/status`.
public struct InstalledPackage: Sendable, Hashable {
    public var name: String
    public var version: DebianVersion
    public var architecture: String
    public var provides: [PackageDependency]

    public init(name: String, version: DebianVersion, architecture: String, provides: [PackageDependency] = []) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.provides = provides
    }

    /// Parses a whole dpkg status file and keeps the packages whose files are on disk:
    /// `Status: install ok installed` and also `hold ok installed` (a held package is
    /// installed all the same). Removed, half-installed and config-files entries are skipped
    /// before their fields are checked.
    public static func parseStatus(_ text: String) throws(ResolveError) -> [InstalledPackage] {
        var out: [InstalledPackage] = []
        for p in try ControlParagraph.parseAll(text) {
            let status = (p["Status"] ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard status.count == 3, status[0] == "install" || status[0] == "hold",
                  status[1] == "ok", status[2] == "installed" else { continue }
            let r = try PackageRecord(paragraph: p, repositoryIndex: -1)
            out.append(InstalledPackage(name: r.name, version: r.version, architecture: r.architecture, provides: r.provides))
        }
        return out
    }
}

/// A package asked for by the spec: `name` or `name=version` (apt's syntax).
public struct PackageRequest: Sendable, Hashable {
    public var name: String
    /// The exact version pinned by `name=version`, or nil for the candidate.
    public var version: String?
    /// Where it was asked for, e.g. `image.yaml:12: packages[0]`; used in messages.
    public var origin: String

    public init(name: String, version: String?, origin: String) {
        self.name = name
        self.version = version
        self.origin = origin
    }

    /// Parses `tzdata` or `tzdata=2025b-0+deb12u1`; the version must be valid (Policy §5.6.12).
    public init(parsing spec: String, origin: String) throws(ResolveError) {
        let text = trimSpaces(spec)
        var name = text
        var version: String?
        if let eq = text.firstIndex(of: "=") {
            name = String(text[..<eq])
            let v = String(text[text.index(after: eq)...])
            do { _ = try DebianVersion(v) } catch {
                throw .invalidRequest(spec, origin: origin, reason: "\(error)")
            }
            version = v
        }
        guard !name.isEmpty else { throw .invalidRequest(spec, origin: origin, reason: "empty package name") }
        guard name.utf8.allSatisfy({ DebianVersion.isAlnum($0) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E }) else {
            throw .invalidRequest(spec, origin: origin, reason: "a package name has only letters, digits and + - . (Policy §5.6.1)")
        }
        self.init(name: name, version: version, origin: origin)
    }
}

/// The text without leading and trailing spaces, tabs and newlines.
private func trimSpaces<S: StringProtocol>(_ s: S) -> String {
    let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
    guard let first = s.firstIndex(where: { !isSpace($0) }) else { return "" }
    let last = s.lastIndex(where: { !isSpace($0) })!
    return String(s[first...last])
}
