/// A version relation in a dependency field, `(>= 1.2-3)` (Debian Policy §7.1).
public struct VersionConstraint: Sendable, Hashable, CustomStringConvertible {
    /// The relation operators of Policy §7.1. The obsolete `<` and `>` are read as `<=`
    /// and `>=`, as Policy and dpkg do.
    public enum Op: String, Sendable {
        case lt = "<<", le = "<=", eq = "=", ge = ">=", gt = ">>"
    }

    public var op: Op
    public var version: DebianVersion

    public init(op: Op, version: DebianVersion) {
        self.op = op
        self.version = version
    }

    /// Whether `v` satisfies `v op version`, compared with dpkg's ordering.
    public func allows(_ v: DebianVersion) -> Bool {
        let c = DebianVersion.compare(v, version)
        switch op {
        case .lt: return c < 0
        case .le: return c <= 0
        case .eq: return c == 0
        case .ge: return c >= 0
        case .gt: return c > 0
        }
    }

    /// `>= 1.2-3`
    public var description: String { "\(op.rawValue) \(version)" }
}

/// One alternative of a relation: `name[:arch] [(op version)]`.
public struct PackageDependency: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    /// `any`, `native` or an architecture name (Policy §7.1, multiarch).
    public var archQualifier: String?
    public var constraint: VersionConstraint?

    public init(name: String, archQualifier: String? = nil, constraint: VersionConstraint? = nil) {
        self.name = name
        self.archQualifier = archQualifier
        self.constraint = constraint
    }

    /// `libc6 (>= 2.36)`, `python3:any`
    public var description: String {
        var s = name
        if let a = archQualifier { s += ":" + a }
        if let c = constraint { s += " (\(c))" }
        return s
    }
}

/// Parsing of relation fields (Depends, Pre-Depends, Recommends, Provides, Conflicts,
/// Breaks, Build-Depends; Debian Policy §7.1).
public enum Relations {
    /// Parses a relation field into groups of alternatives:
    /// `"a (>= 1) | b, c:any"` → `[[a (>= 1), b], [c:any]]`.
    ///
    /// Architecture restrictions `[amd64 !i386 linux-any]` are honoured when
    /// `architecture` is given: an alternative whose list excludes it is dropped, and a
    /// group left empty is dropped (Policy §7.1). Build-profile lists `<!nocheck>` are
    /// skipped. An empty field gives no groups. Errors name the field text.
    public static func parse(_ field: String, architecture: String? = nil) throws(ResolveError) -> [[PackageDependency]] {
        var text = field
        var result: Result<[[PackageDependency]], ResolveError> = .success([])
        text.withUTF8 { buf in
            guard let base = buf.baseAddress, !buf.isEmpty else { return }
            var p = RelationParser(p: base, n: buf.count, architecture: architecture)
            do throws(ResolveError) { result = .success(try p.parseField()) } catch { result = .failure(error) }
        }
        switch result {
        case .success(let groups): return groups
        case .failure(.invalidRelation(_, let reason)): throw .invalidRelation(field, reason: reason)
        case .failure(let e): throw e
        }
    }

    /// A field that allows no alternatives (Provides, Conflicts, Breaks; Policy §7.3–7.5),
    /// flattened. A `|` in it is an error.
    public static func parseList(_ field: String, architecture: String? = nil) throws(ResolveError) -> [PackageDependency] {
        let groups = try parse(field, architecture: architecture)
        var out: [PackageDependency] = []
        out.reserveCapacity(groups.count)
        for g in groups {
            guard g.count == 1 else { throw .invalidRelation(field, reason: "alternatives (|) are not allowed in this field") }
            out.append(g[0])
        }
        return out
    }

    /// Whether an architecture restriction entry (`amd64`, `any`, `linux-any`,
    /// `any-amd64`) matches `arch`. A bare architecture means Linux on that CPU
    /// (dpkg-architecture's tuple rules, simplified to os-cpu).
    static func archMatches(_ spec: String, _ arch: String) -> Bool {
        if spec == arch || spec == "any" || spec == "all" && arch == "all" { return true }
        func split(_ a: String) -> (os: Substring, cpu: Substring) {
            guard let dash = a.firstIndex(of: "-") else { return ("linux", Substring(a)) }
            return (a[..<dash], a[a.index(after: dash)...])
        }
        let s = split(spec), a = split(arch)
        return (s.os == "any" || s.os == a.os) && (s.cpu == "any" || s.cpu == a.cpu)
    }
}

/// A byte scanner for one relation field. Whitespace (including the newlines of folded
/// fields) may appear between every token.
private struct RelationParser {
    /// The field's bytes; index loops over a raw pointer keep debug builds fast.
    let p: UnsafePointer<UInt8>
    let n: Int
    let architecture: String?
    var i = 0

    init(p: UnsafePointer<UInt8>, n: Int, architecture: String?) {
        self.p = p
        self.n = n
        self.architecture = architecture
    }

    mutating func parseField() throws(ResolveError) -> [[PackageDependency]] {
        var groups: [[PackageDependency]] = []
        skipSpace()
        while i < n {
            if p[i] == 0x2C { i += 1; skipSpace(); continue }  // empty group (trailing comma)
            var group: [PackageDependency] = []
            var sawAlternative = false
            while true {
                let (dep, included) = try parseAlternative()
                sawAlternative = true
                if included { group.append(dep) }
                skipSpace()
                if i < n && p[i] == 0x7C { i += 1; skipSpace(); continue }  // '|'
                break
            }
            if i < n {
                guard p[i] == 0x2C else { throw fail("unexpected '\(char(p[i]))'") }
                i += 1
                skipSpace()
            }
            if sawAlternative && !group.isEmpty { groups.append(group) }
        }
        return groups
    }

    /// One alternative and whether its architecture restriction (if any) includes the
    /// target architecture.
    private mutating func parseAlternative() throws(ResolveError) -> (PackageDependency, Bool) {
        let nameStart = i
        while i < n, isNameChar(p[i]) { i += 1 }
        guard i > nameStart else {
            throw fail(i < n ? "expected a package name at '\(char(p[i]))'" : "expected a package name")
        }
        var dep = PackageDependency(name: string(nameStart..<i))
        if i < n && p[i] == 0x3A {  // ':' arch qualifier
            i += 1
            let s = i
            while i < n, isNameChar(p[i]) { i += 1 }
            guard i > s else { throw fail("empty architecture qualifier after \(dep.name):") }
            dep.archQualifier = string(s..<i)
        }
        skipSpace()
        if i < n && p[i] == 0x28 {  // '('
            i += 1
            skipSpace()
            let opStart = i
            while i < n, p[i] == 0x3C || p[i] == 0x3E || p[i] == 0x3D { i += 1 }
            let op: VersionConstraint.Op
            let c0 = i > opStart ? p[opStart] : 0, c1 = i > opStart + 1 ? p[opStart + 1] : 0
            switch (i - opStart, c0, c1) {
            case (2, 0x3C, 0x3C): op = .lt  // <<
            case (2, 0x3C, 0x3D), (1, 0x3C, _): op = .le  // <=, and "<", its obsolete spelling (Policy §7.1)
            case (1, 0x3D, _): op = .eq  // =
            case (2, 0x3E, 0x3D), (1, 0x3E, _): op = .ge  // >=, and ">", its obsolete spelling
            case (2, 0x3E, 0x3E): op = .gt  // >>
            case (0, _, _): throw fail("missing relation operator for \(dep.name)")
            default: throw fail("unknown relation operator \"\(string(opStart..<i))\" for \(dep.name)")
            }
            skipSpace()
            let vStart = i
            while i < n, p[i] != 0x29, !isSpace(p[i]) { i += 1 }
            let vEnd = i
            skipSpace()
            guard i < n, p[i] == 0x29 else { throw fail("missing ')' after the version for \(dep.name)") }
            i += 1
            guard vEnd > vStart else { throw fail("missing version for \(dep.name)") }
            let text = string(vStart..<vEnd)
            do {
                dep.constraint = VersionConstraint(op: op, version: try DebianVersion(text))
            } catch {
                throw fail("\(dep.name): \(error)")
            }
            skipSpace()
        }
        var included = true
        if i < n && p[i] == 0x5B {  // '[' architecture restriction
            i += 1
            let s = i
            while i < n, p[i] != 0x5D { i += 1 }
            guard i < n else { throw fail("missing ']' for \(dep.name)") }
            let list = string(s..<i).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            i += 1
            if let arch = architecture, !list.isEmpty {
                let negated = list.allSatisfy { $0.hasPrefix("!") }
                if negated {
                    included = !list.contains { Relations.archMatches(String($0.dropFirst()), arch) }
                } else {
                    included = list.contains { Relations.archMatches(String($0), arch) }
                }
            }
            skipSpace()
        }
        while i < n && p[i] == 0x3C {  // '<' build-profile restriction formula: skipped
            while i < n, p[i] != 0x3E { i += 1 }
            guard i < n else { throw fail("missing '>' for \(dep.name)") }
            i += 1
            skipSpace()
        }
        return (dep, included)
    }

    private mutating func skipSpace() {
        while i < n, isSpace(p[i]) { i += 1 }
    }

    @inline(__always) private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// Package names are `[a-z0-9][a-z0-9+.-]+` (Policy §5.6.1); upper case and `_` are
    /// accepted for robustness with older or local indexes.
    @inline(__always) private func isNameChar(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x2E || b == 0x2B
            || (b >= 0x41 && b <= 0x5A) || b == 0x5F
    }

    private func char(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private func string(_ r: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(start: p + r.lowerBound, count: r.count), as: UTF8.self)
    }

    private func fail(_ reason: String) -> ResolveError { .invalidRelation("", reason: reason) }
}
