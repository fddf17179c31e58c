import Foundation

/// Kiln's one JSON encoding. Every document Kiln writes goes through here, so equal
/// values give equal bytes and therefore equal digests, whatever the toolchain.
///
/// The bytes are Kiln's own, not Foundation's: values are encoded with `JSONEncoder`
/// (for `Codable`), then re-serialised by ``canonical(_:)``:
/// - object keys sorted by their UTF-8 bytes, as Go's `encoding/json` sorts map keys
///   (not by `String` comparison, UTF-16 units or locale, which differ for combining
///   marks and characters beyond the BMP, and which `.sortedKeys` has not always used);
/// - no insignificant whitespace;
/// - strings escaped as Kiln has always written them (Go's escaping with
///   `SetEscapeHTML(false)`, except that U+2028/U+2029 stay raw): `\"`, `\\`, `\b`,
///   `\f`, `\n`, `\r`, `\t`, other C0 controls as `\u00xx` in lower-case hex; `/`, `<`,
///   `>`, `&`, DEL and all non-ASCII characters as raw UTF-8. Changing any of this would
///   change the digest of every image whose config holds such a character;
/// - numbers exactly as `JSONEncoder` wrote their decimal tokens (Kiln's documents hold
///   integers only; their decimal form does not vary).
public enum CanonicalJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return try canonical(Array(try e.encode(value)))
    }

    /// Re-serialises one JSON document in Kiln's canonical form (see the type's docs).
    /// Throws `OCIError.invalidDocument` for malformed JSON or an object with a key twice.
    public static func canonical(_ json: [UInt8]) throws -> [UInt8] {
        var reader = JSONTokenReader(bytes: json)
        let value = try reader.document()
        var out: [UInt8] = []
        out.reserveCapacity(json.count)
        write(value, to: &out)
        return out
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let DecodingError.dataCorrupted(ctx) {
            throw OCIError.invalidDocument("\(what): malformed JSON (\(ctx.debugDescription))")
        } catch let DecodingError.keyNotFound(key, ctx) {
            throw OCIError.invalidDocument("\(what): missing field \(path(ctx.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw OCIError.invalidDocument("\(what): wrong type at \(path(ctx.codingPath))")
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw OCIError.invalidDocument("\(what): missing value at \(path(ctx.codingPath))")
        } catch let e as OCIError {
            throw OCIError.invalidDocument("\(what): \(e)")
        }
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }

    // MARK: - Writing

    private static func write(_ value: JSONValue, to out: inout [UInt8]) {
        switch value {
        case .literal(let bytes):
            out.append(contentsOf: bytes)
        case .string(let bytes):
            writeString(bytes, to: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, member) in members.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, to: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, to: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// `bytes` is the string's UTF-8; only `"`, `\` and C0 controls are escaped.
    private static func writeString(_ bytes: [UInt8], to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for b in bytes {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0c: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0a: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0d: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xf)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A parsed JSON value that keeps what canonical output needs: strings as their
/// unescaped UTF-8 bytes (so no `String` normalisation or comparison touches them),
/// numbers and literals as their exact tokens, object members sorted by key bytes.
private indirect enum JSONValue {
    case literal([UInt8])
    case string([UInt8])
    case array([JSONValue])
    case object([(key: [UInt8], value: JSONValue)])
}

/// A strict RFC 8259 reader over bytes, enough for `JSONEncoder`'s output and any
/// other well-formed document.
private struct JSONTokenReader {
    let bytes: [UInt8]
    var i = 0
    /// Deeper nesting than this is refused rather than recursed into.
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func document() throws -> JSONValue {
        let v = try value(depth: 0)
        skipSpace()
        guard i == bytes.count else { throw fail("trailing bytes") }
        return v
    }

    private func fail(_ what: String) -> OCIError {
        OCIError.invalidDocument("canonical JSON: \(what) at byte \(i)")
    }

    private mutating func skipSpace() {
        while i < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[i]) { i += 1 }
    }

    private mutating func expect(_ c: Character) throws {
        skipSpace()
        guard i < bytes.count, bytes[i] == c.asciiValue! else { throw fail("expected '\(c)'") }
        i += 1
    }

    private mutating func value(depth: Int) throws -> JSONValue {
        guard depth < Self.maxDepth else { throw fail("nesting deeper than \(Self.maxDepth)") }
        skipSpace()
        guard i < bytes.count else { throw fail("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            i += 1
            var members: [(key: [UInt8], value: JSONValue)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                let key = try string()
                try expect(":")
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end in an object") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; break }
                throw fail("expected ',' or '}'")
            }
            members.sort { $0.key.lexicographicallyPrecedes($1.key) }
            for (a, b) in zip(members, members.dropFirst()) where a.key == b.key {
                throw OCIError.invalidDocument("canonical JSON: key \"\(String(decoding: a.key, as: UTF8.self))\" appears twice in an object")
            }
            return .object(members)
        case UInt8(ascii: "["):
            i += 1
            var items: [JSONValue] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end in an array") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; break }
                throw fail("expected ',' or ']'")
            }
            return .array(items)
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            for word in ["true", "false", "null"] where bytes[i...].starts(with: word.utf8) {
                i += word.utf8.count
                return .literal(Array(word.utf8))
            }
            throw fail("unknown literal")
        default:
            return .literal(try number())
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as written.
    private mutating func number() throws -> [UInt8] {
        let start = i
        func digits() -> Int {
            let s = i
            while i < bytes.count, (0x30...0x39).contains(bytes[i]) { i += 1 }
            return i - s
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let n = digits()
        guard n > 0, !(n > 1 && bytes[intStart] == 0x30) else { throw fail("malformed number") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("malformed number") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("malformed number") }
        }
        return Array(bytes[start..<i])
    }

    /// A string's content, unescaped, as UTF-8 (checked to be valid).
    private mutating func string() throws -> [UInt8] {
        guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        i += 1
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let b = bytes[i]
            i += 1
            switch b {
            case UInt8(ascii: "\""):
                guard String(validating: out, as: UTF8.self) != nil else { throw fail("string is not valid UTF-8") }
                return out
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xd800..<0xdc00).contains(scalar) {
                        guard bytes[i...].starts(with: "\\u".utf8) else { throw fail("lone surrogate") }
                        i += 2
                        let low = try hex4()
                        guard (0xdc00..<0xe000).contains(low) else { throw fail("lone surrogate") }
                        scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                    } else if (0xdc00..<0xe000).contains(scalar) {
                        throw fail("lone surrogate")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad \\u escape") }
                    out.append(contentsOf: Array(String(u).utf8))
                default:
                    throw fail("unknown escape")
                }
            case 0x00..<0x20:
                throw fail("raw control character in a string")
            default:
                out.append(b)
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            i += 1
            switch c {
            case 0x30...0x39: v = v << 4 | UInt32(c - 0x30)
            case 0x61...0x66: v = v << 4 | UInt32(c - 0x61 + 10)
            case 0x41...0x46: v = v << 4 | UInt32(c - 0x41 + 10)
            default: throw fail("bad \\u escape")
            }
        }
        return v
    }
}
