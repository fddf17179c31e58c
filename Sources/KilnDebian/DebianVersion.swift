/// A Debian version, `[epoch:]upstream_version[-debian_revision]` (Debian Policy §5.6.12),
/// ordered and compared exactly as dpkg does.
///
/// Equality is dpkg's: `1.0` == `0:1.0` == `1.0-0` == `1.00`, because dpkg compares the
/// numeric parts numerically and an absent revision or part compares as zero. `hash(into:)`
/// hashes the same canonical form, so `Hashable` agrees with `==`.
public struct DebianVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let epoch: Int
    public let upstream: String
    public let revision: String
    /// The text as given (surrounding whitespace removed).
    public let description: String

    /// Parses and validates a version. Rejects what Policy §5.6.12 forbids: a non-numeric
    /// epoch, an empty upstream version or one not starting with a digit, characters
    /// other than alphanumerics and `. + ~ -` in the upstream version (`-` only when a
    /// revision follows) and other than alphanumerics and `. + ~` in the revision, and an
    /// empty revision after a hyphen.
    public init(_ text: String) throws(ResolveError) {
        var trimmed = Self.trimmed(text)
        var epoch = 0
        var upstream = "", revision = ""
        var failure: ResolveError? = .invalidVersion(text, reason: "empty")
        trimmed.withUTF8 { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
            failure = Self.split(base, bytes.count, text, &epoch, &upstream, &revision)
        }
        if let failure { throw failure }
        self.epoch = epoch
        self.upstream = upstream
        self.revision = revision
        self.description = trimmed
    }

    /// Splits and validates `[epoch:]upstream[-revision]`; returns the error, if any.
    /// `text` is for messages. Index loops over a raw pointer keep debug builds fast.
    private static func split(_ p: UnsafePointer<UInt8>, _ n: Int, _ text: String,
                              _ epoch: inout Int, _ upstream: inout String, _ revision: inout String) -> ResolveError? {
        var colon = -1
        var hyphen = -1
        var i = 0
        while i < n {
            if p[i] == 0x3A && colon < 0 { colon = i }
            if p[i] == 0x2D { hyphen = i }
            i += 1
        }
        var start = 0
        if colon >= 0 {
            if colon == 0 { return .invalidVersion(text, reason: "empty epoch") }
            i = 0
            while i < colon {
                guard isDigit(p[i]) else { return .invalidVersion(text, reason: "epoch is not a number") }
                epoch = epoch &* 10 &+ Int(p[i] &- 0x30)
                if epoch > Int(Int32.max) { return .invalidVersion(text, reason: "epoch is too large") }
                i += 1
            }
            start = colon + 1
        }
        var end = n
        if hyphen >= start {
            if hyphen == n - 1 { return .invalidVersion(text, reason: "empty revision after '-'") }
            i = hyphen + 1
            while i < n {
                let b = p[i]
                if !(isAlnum(b) || b == 0x2E || b == 0x2B || b == 0x7E) {
                    return .invalidVersion(text, reason: "invalid character '\(show(b))' in revision")
                }
                i += 1
            }
            revision = String(decoding: UnsafeBufferPointer(start: p + hyphen + 1, count: n - hyphen - 1), as: UTF8.self)
            end = hyphen
        }
        if start == end { return .invalidVersion(text, reason: "empty upstream version") }
        guard isDigit(p[start]) else {
            return .invalidVersion(text, reason: "upstream version does not start with a digit")
        }
        i = start
        while i < end {
            let b = p[i]
            if !(isAlnum(b) || b == 0x2E || b == 0x2B || b == 0x7E || b == 0x2D) {
                return .invalidVersion(text, reason: "invalid character '\(show(b))' in upstream version")
            }
            i += 1
        }
        upstream = String(decoding: UnsafeBufferPointer(start: p + start, count: end - start), as: UTF8.self)
        return nil
    }

    // MARK: dpkg ordering

    public static func < (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) < 0 }
    public static func == (a: DebianVersion, b: DebianVersion) -> Bool { compare(a, b) == 0 }

    /// dpkg's `dpkg_version_compare`: epochs numerically, then upstream and revision with
    /// `verrevcmp`. Returns a negative, zero or positive number.
    public static func compare(_ a: DebianVersion, _ b: DebianVersion) -> Int {
        if a.epoch != b.epoch { return a.epoch < b.epoch ? -1 : 1 }
        let u = verrevcmp(a.upstream, b.upstream)
        if u != 0 { return u }
        return verrevcmp(a.revision, b.revision)
    }

    /// dpkg's `verrevcmp`: alternate runs of non-digits (compared character by character,
    /// `~` before the end, the end before letters, letters before other characters) and
    /// runs of digits (compared numerically; an absent run counts as 0).
    static func verrevcmp(_ a: String, _ b: String) -> Int {
        var a = a, b = b
        return a.withUTF8 { x in b.withUTF8 { y in verrevcmp(x, y) } }
    }

    private static func verrevcmp(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
        var i = 0, j = 0
        while i < a.count || j < b.count {
            var firstDiff = 0
            while (i < a.count && !isDigit(a[i])) || (j < b.count && !isDigit(b[j])) {
                let ac = i < a.count ? order(a[i]) : 0
                let bc = j < b.count ? order(b[j]) : 0
                if ac != bc { return ac - bc }
                i += 1; j += 1
            }
            while i < a.count && a[i] == 0x30 { i += 1 }
            while j < b.count && b[j] == 0x30 { j += 1 }
            while i < a.count && isDigit(a[i]) && j < b.count && isDigit(b[j]) {
                if firstDiff == 0 { firstDiff = Int(a[i]) - Int(b[j]) }
                i += 1; j += 1
            }
            if i < a.count && isDigit(a[i]) { return 1 }
            if j < b.count && isDigit(b[j]) { return -1 }
            if firstDiff != 0 { return firstDiff }
        }
        return 0
    }

    /// dpkg's `order()`: digits (and the end) 0, letters their code, `~` -1, others code+256.
    private static func order(_ c: UInt8) -> Int {
        if isDigit(c) { return 0 }
        if isAlpha(c) { return Int(c) }
        if c == 0x7E { return -1 }
        return Int(c) + 256
    }

    // MARK: hashing consistent with dpkg equality

    public func hash(into hasher: inout Hasher) {
        hasher.combine(epoch)
        Self.hashCanonical(upstream, into: &hasher)
        hasher.combine(0xFF as UInt8)
        Self.hashCanonical(revision, into: &hasher)
    }

    /// Hashes the `verrevcmp` equivalence class of `s`: the (non-digit run, number) pairs
    /// with leading zeros dropped and trailing ("", 0) pairs (which compare as absent)
    /// removed. Only the first and last pairs can have an empty non-digit run.
    private static func hashCanonical(_ s: String, into hasher: inout Hasher) {
        var pairs: [(Substring.UTF8View, Substring.UTF8View)] = []
        let u = Substring(s).utf8
        var i = u.startIndex
        while i < u.endIndex {
            let ndStart = i
            while i < u.endIndex && !isDigit(u[i]) { i = u.index(after: i) }
            let nd = u[ndStart..<i]
            while i < u.endIndex && u[i] == 0x30 { i = u.index(after: i) }
            let dStart = i
            while i < u.endIndex && isDigit(u[i]) { i = u.index(after: i) }
            pairs.append((nd, u[dStart..<i]))
        }
        while let last = pairs.last, last.0.isEmpty, last.1.isEmpty { pairs.removeLast() }
        for (nd, d) in pairs {
            hasher.combine(nd.count)
            for b in nd { hasher.combine(b) }
            hasher.combine(d.count)
            for b in d { hasher.combine(b) }
        }
    }

    // MARK: character classes

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    @inline(__always) static func isAlpha(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
    @inline(__always) static func isAlnum(_ c: UInt8) -> Bool { isDigit(c) || isAlpha(c) }

    private static func show(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private static func trimmed(_ s: String) -> String {
        let u = s.utf8
        if let f = u.first, let l = u.last, f > 0x20, l > 0x20 { return s }  // the usual case
        guard let first = u.firstIndex(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }) else { return "" }
        let last = u.lastIndex(where: { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D })!
        if first == u.startIndex && u.index(after: last) == u.endIndex { return s }
        return String(s[first...last])
    }
}
