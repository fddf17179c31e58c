import KilnOCI

/// Errors from talking to a registry. Descriptions never include credentials or tokens.
public enum RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidReference(String, reason: String)
    case http(status: Int, what: String, detail: String)
    case unauthorized(String)
    case transport(String)
    /// The registry could not be reached at all (not retried: every request would fail).
    case unreachable(String)
    case digestMismatch(what: String, expected: Digest, actual: Digest)
    case sizeMismatch(what: String, expected: Int64, actual: Int64)
    case notFound(String)
    case unsupported(String)
    case protocolViolation(String)
    case credentials(String)

    public var description: String {
        switch self {
        case .invalidReference(let s, let reason): return "invalid image reference \"\(s)\": \(reason)"
        case .http(let status, let what, let detail):
            return "\(what): HTTP \(status)" + (detail.isEmpty ? "" : " (\(detail))")
        case .unauthorized(let s), .transport(let s), .unreachable(let s), .notFound(let s), .unsupported(let s),
             .protocolViolation(let s), .credentials(let s):
            return s
        case .digestMismatch(let what, let expected, let actual):
            return "\(what): digest mismatch (expected \(expected), got \(actual))"
        case .sizeMismatch(let what, let expected, let actual):
            return "\(what): size mismatch (expected \(expected) bytes, got \(actual))"
        }
    }
}
