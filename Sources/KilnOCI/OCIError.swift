/// Errors about OCI values: digests, references, media types, documents.
public enum OCIError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidDigest(String)
    case invalidReference(String, reason: String)
    case invalidDocument(String)

    public var description: String {
        switch self {
        case .invalidDigest(let s): return "invalid digest \"\(s)\" (expected sha256:<64 lowercase hex digits>)"
        case .invalidReference(let s, let reason): return "invalid image reference \"\(s)\": \(reason)"
        case .invalidDocument(let s): return s
        }
    }
}
