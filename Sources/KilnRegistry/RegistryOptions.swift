import Foundation

/// How Kiln talks to registries: TLS, credentials, timeouts, retries, uploads.
public struct RegistryOptions: Sendable {
    /// Verify HTTPS certificates (`--tls-verify=false` turns it off, and also allows
    /// falling back to plain HTTP, like Docker's insecure registries).
    public var tlsVerify = true
    /// Extra CA certificates: every `*.crt` and `*.pem` file in this directory (`--cert-dir`).
    public var certDirectory: String?
    /// Where credentials are looked up.
    public var credentialStore: CredentialStore = .standard()
    /// Credentials given on the command line (`--creds`), used for every registry.
    public var credentials: Credentials?
    public var connectTimeout: Double = 30
    /// Longest silence while a response is awaited or its body read.
    public var readTimeout: Double = 120
    /// Attempts per request on connection errors, 5xx and 429.
    public var maxAttempts = 5
    /// First retry delay in seconds; doubled each time (with jitter), capped at `maxRetryDelay`.
    public var retryBaseDelay: Double = 0.5
    public var maxRetryDelay: Double = 30
    /// Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks.
    public var monolithicUploadLimit: Int64 = 16 << 20
    public var chunkSize = 32 << 20
    /// Blobs transferred at once.
    public var parallelism = 4
    public var progress: any TransferProgress = SilentProgress()

    public init() {}

    /// Tuning knobs read from the environment, for tests and unusual networks:
    /// `KILN_REGISTRY_READ_TIMEOUT`, `KILN_REGISTRY_RETRIES`, `KILN_REGISTRY_RETRY_DELAY`,
    /// `KILN_REGISTRY_CHUNK_SIZE` (also lowers the monolithic limit to one chunk when smaller),
    /// `KILN_REGISTRY_PARALLELISM` (blobs transferred at once).
    public mutating func applyEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) {
        if let v = env["KILN_REGISTRY_READ_TIMEOUT"].flatMap(Double.init), v > 0 { readTimeout = v }
        if let v = env["KILN_REGISTRY_CONNECT_TIMEOUT"].flatMap(Double.init), v > 0 { connectTimeout = v }
        if let v = env["KILN_REGISTRY_RETRIES"].flatMap(Int.init), v >= 1 { maxAttempts = v }
        if let v = env["KILN_REGISTRY_RETRY_DELAY"].flatMap(Double.init), v >= 0 { retryBaseDelay = v }
        if let v = env["KILN_REGISTRY_PARALLELISM"].flatMap(Int.init), v > 0 { parallelism = v }
        if let v = env["KILN_REGISTRY_CHUNK_SIZE"].flatMap(Int.init), v > 0 {
            chunkSize = v
            monolithicUploadLimit = min(monolithicUploadLimit, Int64(v))
        }
    }
}
