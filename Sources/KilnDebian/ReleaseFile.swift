#if canImport(Glibc)
import Glibc
#endif
import KilnOCI

/// A repository's Release file (https://wiki.debian.org/DebianRepository/Format#A.22Release.22_files):
/// one deb822 paragraph describing a suite, with the SHA256 of every index below
/// `dists/SUITE/`. Only SHA256 entries are kept: apt treats MD5Sum and SHA1 as too weak
/// to trust on their own, and so does Kiln.
public struct ReleaseFile: Sendable {
    /// One line of the `SHA256` field: ` <hex> <size> <path>`.
    public struct Entry: Sendable, Hashable {
        public var size: Int64
        public var sha256: String
        public init(size: Int64, sha256: String) {
            self.size = size
            self.sha256 = sha256
        }
    }

    /// Every field as written (multi-line fields joined with newlines), by canonical name
    /// as it appears in the file: Origin, Suite, Codename, Date, Valid-Until, Architectures,
    /// Components, Acquire-By-Hash …
    public var fields: [String: String]
    /// Path relative to the suite's directory (`main/binary-amd64/Packages.xz`) → entry.
    public var sha256: [String: Entry]
    public var date: String?
    public var validUntil: String?
    /// `sha256:<hex>` identifying this Release. `parse` hashes the text it is given;
    /// `AptFetcher` replaces it with the hash of the InRelease (or Release) bytes as
    /// fetched, which is what lock files record.
    public var digest: String

    /// A field by name, case-insensitively (deb822 field names are case-insensitive).
    public subscript(_ name: String) -> String? {
        if let v = fields[name] { return v }
        let lower = name.lowercased()
        return fields.first { $0.key.lowercased() == lower }?.value
    }

    /// `Acquire-By-Hash: yes`: indexes can also be fetched from
    /// `…/by-hash/SHA256/<hex>`, which stays valid while a mirror is being updated.
    public var acquireByHash: Bool { self["Acquire-By-Hash"]?.lowercased() == "yes" }

    /// Parses the (already verified) text of a Release file.
    /// - Parameter origin: the URL or path, for errors.
    public static func parse(_ text: String, origin: String) throws -> ReleaseFile {
        let stanzas = try RepositoryFields.parse(text, origin: origin)
        guard let stanza = stanzas.first else {
            throw RepositoryError.malformed(origin, line: 0, reason: "empty Release file")
        }
        var fields: [String: String] = [:]
        var hashes: [String: Entry] = [:]
        for f in stanza.fields {
            fields[f.name] = f.value
            guard f.name.lowercased() == "sha256" else { continue }
            for (i, line) in f.value.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.isEmpty { continue }
                let lineNo = f.valueLine + i
                guard parts.count == 3, let size = Int64(parts[1]), size >= 0,
                      parts[0].count == 64, parts[0].allSatisfy(\.isHexDigit) else {
                    throw RepositoryError.malformed(origin, line: lineNo, reason: "bad SHA256 entry '\(line)'")
                }
                hashes[String(parts[2])] = Entry(size: size, sha256: parts[0].lowercased())
            }
        }
        var r = ReleaseFile(fields: fields, sha256: hashes, date: nil, validUntil: nil,
                            digest: Digest.sha256(Array(text.utf8)).description)
        r.date = r["Date"]
        r.validUntil = r["Valid-Until"]
        return r
    }

    /// Seconds since the epoch of a Release date, `Sat, 10 Jun 2023 08:54:40 UTC`
    /// (RFC 2822 as the repository format requires; the weekday is optional, the zone
    /// may be `UTC`, `GMT`, `Z` or `±hhmm`). Nil when it does not parse.
    public static func parseDate(_ s: String) -> Int64? {
        var words = s.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if let first = words.first, first.hasSuffix(",") { words.removeFirst() }
        guard words.count == 4 || words.count == 5 else { return nil }
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        guard let day = Int(words[0]), let month = months.firstIndex(of: words[1].lowercased()),
              let year = Int(words[2]) else { return nil }
        let hms = words[3].split(separator: ":").map { Int($0) }
        guard hms.count == 3, let h = hms[0], let m = hms[1], let sec = hms[2] else { return nil }
        var offset = 0
        if words.count == 5 {
            let z = words[4]
            if ["UTC", "GMT", "Z", "UT"].contains(z.uppercased()) {
                offset = 0
            } else if z.count == 5, let sign = z.first, sign == "+" || sign == "-", let n = Int(z.dropFirst()) {
                offset = (n / 100 * 3600 + n % 100 * 60) * (sign == "-" ? -1 : 1)
            } else {
                return nil
            }
        }
        var t = tm()
        t.tm_year = Int32(year - 1900)
        t.tm_mon = Int32(month)
        t.tm_mday = Int32(day)
        t.tm_hour = Int32(h)
        t.tm_min = Int32(m)
        t.tm_sec = Int32(sec)
        return Int64(timegm(&t)) - Int64(offset)
    }
}

/// A minimal deb822 reader (Debian Policy §5.1) for the files this area reads: Release
/// and `.sources`. It keeps the line of every field for error messages; continuation
/// lines lose their first space, and a lone ` .` stands for an empty line (how an inline
/// key block keeps its blank line). Lines starting with `#` are comments, as apt allows
/// in sources files.
struct RepositoryFields {
    struct Field {
        var name: String
        var value: String
        var line: Int
        /// Whether continuation lines followed (a multi-line field, even if its first line was empty).
        var continued = false
        /// The line of the value's first line (the next line when the field's own line has none).
        var valueLine: Int
        init(name: String, value: String, line: Int) {
            self.name = name
            self.value = value
            self.line = line
            self.valueLine = line
        }
    }
    struct Stanza {
        var line: Int
        var fields: [Field]

        func value(_ name: String) -> String? { field(name)?.value }
        func field(_ name: String) -> Field? {
            let lower = name.lowercased()
            return fields.first { $0.name.lowercased() == lower }
        }
    }

    static func parse(_ text: String, origin: String) throws -> [Stanza] {
        var stanzas: [Stanza] = []
        var current: Stanza?
        var lineNo = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            var line = Substring(raw)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.hasPrefix("#") { continue }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) {
                if let c = current { stanzas.append(c) }
                current = nil
                continue
            }
            if line.first == " " || line.first == "\t" {
                guard var c = current, !c.fields.isEmpty else {
                    throw RepositoryError.malformed(origin, line: lineNo, reason: "continuation line without a field")
                }
                var rest = line.dropFirst()
                if rest.repoTrimmed() == "." { rest = "" }
                let last = c.fields.count - 1
                let piece = rest.repoTrimmed()
                if c.fields[last].value.isEmpty && !c.fields[last].continued {
                    c.fields[last].value = piece
                    c.fields[last].valueLine = lineNo
                } else {
                    c.fields[last].value += "\n" + piece
                }
                c.fields[last].continued = true
                current = c
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw RepositoryError.malformed(origin, line: lineNo, reason: "expected 'Field: value', got '\(line)'")
            }
            let name = line[..<colon].repoTrimmed()
            guard !name.isEmpty, !name.contains(" ") else {
                throw RepositoryError.malformed(origin, line: lineNo, reason: "bad field name '\(name)'")
            }
            let value = line[line.index(after: colon)...].repoTrimmed()
            if current == nil { current = Stanza(line: lineNo, fields: []) }
            current!.fields.append(Field(name: String(name), value: String(value), line: lineNo))
        }
        if let c = current { stanzas.append(c) }
        return stanzas
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs.
    func repoTrimmed() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
