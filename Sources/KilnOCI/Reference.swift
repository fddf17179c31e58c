/// Image names and tags as the distribution spec's reference grammar defines them
/// (distribution/reference `reference.go`):
///   name      := [domain '/'] component ('/' component)*
///   component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := '.' | '_' | '__' | '-'+
///   tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
public enum ReferenceGrammar {
    public static func validateTag(_ tag: String) throws {
        let chars = Array(tag.utf8)
        guard !chars.isEmpty, chars.count <= 128 else {
            throw OCIError.invalidReference(tag, reason: "a tag has 1 to 128 characters")
        }
        func word(_ c: UInt8) -> Bool { isAlnum(c) || c == UInt8(ascii: "_") }
        guard word(chars[0]), chars.dropFirst().allSatisfy({ word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }) else {
            throw OCIError.invalidReference(tag, reason: "a tag is letters, digits, '_', '.' and '-', not starting with '.' or '-'")
        }
    }

    /// Validates a repository name, optionally with a registry domain (`host[:port]/`).
    public static func validateName(_ name: String) throws {
        guard !name.isEmpty, name.utf8.count <= 255 else {
            throw OCIError.invalidReference(name, reason: "a name has 1 to 255 characters")
        }
        var parts = name.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.count > 1, looksLikeDomain(parts[0]) {
            try validateDomain(parts[0], in: name)
            parts.removeFirst()
        }
        for p in parts where !isComponent(p) {
            throw OCIError.invalidReference(name, reason: "path component \"\(p)\" must be lowercase letters and digits separated by '.', '_', '__' or '-'")
        }
    }

    static func looksLikeDomain(_ s: String) -> Bool {
        s.contains(".") || s.contains(":") || s == "localhost" || s.contains(where: { $0.isUppercase })
    }

    static func validateDomain(_ s: String, in name: String) throws {
        var host = Substring(s)
        if let colon = s.lastIndex(of: ":"), !s.hasPrefix("[") || s[..<colon].hasSuffix("]") {
            let port = s[s.index(after: colon)...]
            guard !port.isEmpty, port.allSatisfy(\.isASCII), port.allSatisfy(\.isNumber) else {
                throw OCIError.invalidReference(name, reason: "invalid registry port in \"\(s)\"")
            }
            host = s[..<colon]
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { return }  // IPv6 literal
        let ok = !host.isEmpty && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.utf8.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "-") }
                && label.first != "-" && label.last != "-"
        }
        guard ok else { throw OCIError.invalidReference(name, reason: "invalid registry host \"\(host)\"") }
    }

    static func isComponent(_ s: String) -> Bool {
        let c = Array(s.utf8)
        guard let first = c.first, let last = c.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
        var i = 0
        while i < c.count {
            if isLowerAlnum(c[i]) { i += 1; continue }
            // A separator: '.', '_', '__' or a run of '-'.
            let start = i
            if c[i] == UInt8(ascii: "-") {
                while i < c.count, c[i] == UInt8(ascii: "-") { i += 1 }
            } else if c[i] == UInt8(ascii: ".") {
                i += 1
            } else if c[i] == UInt8(ascii: "_") {
                i += 1
                if i < c.count, c[i] == UInt8(ascii: "_") { i += 1 }
            } else {
                return false
            }
            if i == start || i >= c.count || !isLowerAlnum(c[i]) { return false }
        }
        return true
    }

    static func isLowerAlnum(_ c: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c)
    }
    static func isAlnum(_ c: UInt8) -> Bool {
        isLowerAlnum(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
    }
}
