/// One challenge of a `WWW-Authenticate` header (RFC 7235 §4.1), as registries send
/// them (distribution's token authentication specification, "How to authenticate"):
/// `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`.
public struct AuthChallenge: Sendable, Equatable {
    /// Lowercased: `bearer` or `basic`.
    public var scheme: String
    /// Parameter names lowercased; values unquoted.
    public var parameters: [String: String]

    public init(scheme: String, parameters: [String: String]) {
        self.scheme = scheme.lowercased()
        self.parameters = parameters
    }

    public var realm: String? { parameters["realm"] }
    public var service: String? { parameters["service"] }
    /// The scopes the challenge asks for: `scope` holds several, space-separated.
    public var scopes: [String] {
        (parameters["scope"] ?? "").split(separator: " ").map(String.init)
    }

    /// Parses a header value into its challenges; unparseable input gives none.
    /// Several challenges may share one header (`Basic realm="x", Bearer realm="y"`).
    public static func parse(_ header: String) -> [AuthChallenge] {
        var p = Parser(Array(header.utf8))
        var out: [AuthChallenge] = []
        var current: AuthChallenge?
        while true {
            p.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: ",") }
            guard !p.atEnd else { break }
            let token = p.token()
            guard !token.isEmpty else { break }
            p.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
            if p.peek == UInt8(ascii: "="), current != nil {
                // An auth-param of the current challenge.
                p.advance()
                p.skip { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
                let value = p.peek == UInt8(ascii: "\"") ? p.quoted() : p.token()
                current!.parameters[token.lowercased()] = value
            } else {
                if let c = current { out.append(c) }
                current = AuthChallenge(scheme: token, parameters: [:])
                // token68 (`Basic abc==`) is not used by registries; skip it if present.
            }
        }
        if let c = current { out.append(c) }
        return out
    }

    private struct Parser {
        let bytes: [UInt8]
        var i = 0
        init(_ b: [UInt8]) { bytes = b }
        var atEnd: Bool { i >= bytes.count }
        var peek: UInt8? { atEnd ? nil : bytes[i] }
        mutating func advance() { i += 1 }
        mutating func skip(_ f: (UInt8) -> Bool) { while let c = peek, f(c) { i += 1 } }
        mutating func token() -> String {
            let start = i
            while let c = peek, c > 32, c < 127, !"=,\" \t".utf8.contains(c) { i += 1 }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }
        mutating func quoted() -> String {
            advance()  // opening quote
            var out: [UInt8] = []
            while let c = peek {
                advance()
                if c == UInt8(ascii: "\\"), let n = peek { out.append(n); advance(); continue }
                if c == UInt8(ascii: "\"") { break }
                out.append(c)
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
