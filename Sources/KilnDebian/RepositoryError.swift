/// What can go wrong reading apt sources, verifying a repository and downloading from it.
/// Each description is one line naming the file or URL concerned.
public enum RepositoryError: Error, CustomStringConvertible, Sendable {
    /// gpgv rejected the signature (`what` is the URL or file; `reason` gpgv's own line).
    case badSignature(String, reason: String)
    /// Neither InRelease nor Release.gpg: apt refuses such repositories by default.
    case unsigned(String)
    /// `Valid-Until` has passed (apt: "Release file … is expired").
    case expired(String, validUntil: String)
    /// Content whose SHA256 differs from the one its signed index gives.
    case hashMismatch(String, expected: String, got: String)
    /// Content whose size differs from the one its signed index gives.
    case sizeMismatch(String, expected: Int64, got: Int64)
    /// A connection error, a timeout or a server error that retries did not cure.
    case unreachable(String, reason: String)
    /// 404/410, or a `file:` path that does not exist.
    case notFound(String)
    /// A sources file, Release or key that does not parse.
    case malformed(String, line: Int, reason: String)
    /// A repository that asks for something Kiln does not do (an unknown URI scheme, say).
    case unsupported(String, reason: String)
    /// A local file operation failed.
    case io(String, reason: String)

    public var description: String {
        switch self {
        case .badSignature(let what, let reason):
            return "\(what): bad signature (\(reason))"
        case .unsigned(let what):
            return "\(what): the repository is not signed (no InRelease, no Release.gpg); refusing it"
        case .expired(let what, let until):
            return "\(what): the Release file expired (Valid-Until: \(until))"
        case .hashMismatch(let what, let expected, let got):
            return "\(what): SHA256 mismatch, expected \(expected), got \(got)"
        case .sizeMismatch(let what, let expected, let got):
            return "\(what): size mismatch, expected \(expected) bytes, got \(got)"
        case .unreachable(let what, let reason):
            return "\(what): unreachable: \(reason)"
        case .notFound(let what):
            return "\(what): not found"
        case .malformed(let what, let line, let reason):
            return line > 0 ? "\(what):\(line): \(reason)" : "\(what): \(reason)"
        case .unsupported(let what, let reason):
            return "\(what): \(reason)"
        case .io(let what, let reason):
            return "\(what): \(reason)"
        }
    }
}
