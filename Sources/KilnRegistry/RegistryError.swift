import KilnOCI

/// Errors from talking to a registry. Descriptions never include credentials or tokens.
public enum RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidReference(String, reason: String)
    /// A platform that is not `OS/ARCH[/VARIANT]`.
    case invalidPlatform(String)
    /// An HTTP status the operation did not expect, with the registry's error codes
    /// from the body (spec.md "Error Codes"), kept typed so retries can depend on them.
    case http(status: Int, what: String, detail: String, codes: [RegistryErrorCode] = [])
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
    /// A synchronous reader asked for a blob that was never downloaded (a Kiln bug: the
    /// caller must `fetch` before its pipeline starts).
    case notDownloaded(Digest)
    /// An interrupted chunked upload the registry no longer knows (spec.md "Get upload
    /// status" answered 404 `BLOB_UPLOAD_UNKNOWN`): the upload starts again.
    case uploadLost(String)

    public var description: String {
        switch self {
        case .invalidReference(let s, let reason): return "invalid image reference \"\(s)\": \(reason)"
        case .invalidPlatform(let s): return "invalid platform \"\(s)\": a platform is OS/ARCH[/VARIANT], such as linux/amd64 or linux/arm64/v8"
        case .notDownloaded(let d): return "blob \(d) was read before it was downloaded"
        case .http(let status, let what, let detail, _):
            return "\(what): HTTP \(status)" + (detail.isEmpty ? "" : " (\(detail))")
        case .unauthorized(let s), .transport(let s), .unreachable(let s), .notFound(let s), .unsupported(let s),
             .protocolViolation(let s), .credentials(let s), .uploadLost(let s):
            return s
        case .digestMismatch(let what, let expected, let actual):
            return "\(what): digest mismatch (expected \(expected), got \(actual))"
        case .sizeMismatch(let what, let expected, let actual):
            return "\(what): size mismatch (expected \(expected) bytes, got \(actual))"
        }
    }
}

/// The error codes of the distribution spec (spec.md "Error Codes"), as registries send
/// them in `{"errors":[{"code": …}]}`; unknown codes are kept as they are.
public struct RegistryErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let blobUnknown = Self(rawValue: "BLOB_UNKNOWN")
    public static let blobUploadInvalid = Self(rawValue: "BLOB_UPLOAD_INVALID")
    public static let blobUploadUnknown = Self(rawValue: "BLOB_UPLOAD_UNKNOWN")
    public static let digestInvalid = Self(rawValue: "DIGEST_INVALID")
    public static let manifestBlobUnknown = Self(rawValue: "MANIFEST_BLOB_UNKNOWN")
    public static let manifestInvalid = Self(rawValue: "MANIFEST_INVALID")
    public static let manifestUnknown = Self(rawValue: "MANIFEST_UNKNOWN")
    public static let nameInvalid = Self(rawValue: "NAME_INVALID")
    public static let nameUnknown = Self(rawValue: "NAME_UNKNOWN")
    public static let sizeInvalid = Self(rawValue: "SIZE_INVALID")
    public static let unauthorized = Self(rawValue: "UNAUTHORIZED")
    public static let denied = Self(rawValue: "DENIED")
    public static let unsupported = Self(rawValue: "UNSUPPORTED")
    public static let tooManyRequests = Self(rawValue: "TOOMANYREQUESTS")
}

extension RegistryError {
    /// The registry's error codes, when it sent any.
    public var codes: [RegistryErrorCode] {
        if case .http(_, _, _, let codes) = self { return codes }
        return []
    }

    /// Whether trying the same request again may succeed: a cut connection, a server
    /// error or rate limiting (HTTP 429 or `TOOMANYREQUESTS`, which some registries send
    /// with other statuses), never a refusal (`DENIED`, `UNAUTHORIZED`) or a bad request.
    public var isRetryable: Bool {
        switch self {
        case .transport: return true
        case .http(let status, _, _, let codes):
            if codes.contains(.denied) || codes.contains(.unauthorized) { return false }
            return status >= 500 || status == 429 || codes.contains(.tooManyRequests)
        default: return false
        }
    }

    /// Whether the bytes received were not those the descriptor names (a digest or
    /// size mismatch): corrupt on the way or in the registry's storage.
    public var isVerificationFailure: Bool {
        switch self {
        case .digestMismatch, .sizeMismatch: return true
        default: return false
        }
    }

    /// Whether a blob upload should start again with a new session.
    var restartsUpload: Bool {
        if case .uploadLost = self { return true }
        return false
    }
}
