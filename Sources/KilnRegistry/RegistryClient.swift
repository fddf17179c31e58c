import AsyncHTTPClient
import Foundation
import KilnArchive
import KilnOCI
import NIOCore
import NIOHTTP1
import NIOSSL

/// A client of one registry, speaking the OCI distribution spec (spec.md) over
/// AsyncHTTPClient. It finds the scheme (HTTPS, or plain HTTP for loopback and
/// `--tls-verify=false`), authenticates (RegistryClient+Auth.swift), retries
/// connection errors, 5xx and 429 with backoff, and leaves digest checks to the
/// blob and manifest operations built on `send`.
public final class RegistryClient: Sendable {
    /// As written in references: `127.0.0.1:5000`, `docker.io`.
    public let registry: String
    /// Where requests go (Docker Hub's API host differs from its name).
    public let host: String
    public let options: RegistryOptions
    let http: HTTPClient
    let state = LockedBox(State())

    struct State {
        /// `https://host` or `http://host`, once known.
        var base: String?
        /// The scheme probe in flight, shared by concurrent first requests.
        var probing: Task<(String, AuthChallenge?), any Error>?
        /// The challenge `/v2/` (or any 401) answered with.
        var challenge: AuthChallenge?
        /// Bearer tokens by scope set.
        var tokens: [String: (token: String, expires: Date)] = [:]
        /// Credentials, once looked up (nil inside: anonymous).
        var credentials: Credentials??
    }

    public init(registry: String, options: RegistryOptions) throws {
        self.registry = registry
        self.host = registry == RegistryReference.dockerHub ? "registry-1.docker.io" : registry
        self.options = options
        self.http = try HTTPClientPool.client(for: options)
    }

    var isLoopback: Bool { ["localhost", "127.0.0.1", "::1"].contains(RegistryReference.hostName(of: registry)) }

    // MARK: Requests

    /// What to do when a request fails before or with a response.
    enum RetryPolicy { case standard, never }

    /// Sends a request to `path` (below the base URL, or absolute when `absoluteURL`),
    /// authenticating for `scopes`, retrying as `retry` says. Returns the response with
    /// its body unread; any status is returned except those retried.
    func send(_ method: HTTPMethod, _ path: String, absoluteURL: Bool = false, headers: HTTPHeaders = [:],
              body: (@Sendable () throws -> HTTPClientRequest.Body?)? = nil, scopes: [String],
              what: String, retry: RetryPolicy = .standard) async throws -> HTTPClientResponse {
        let base = try await baseURL()
        let url = absoluteURL ? path : base + path
        var attempt = 1
        var authRetried = false
        var extraScopes: [String] = []
        while true {
            var req = HTTPClientRequest(url: url)
            req.method = method
            req.headers = headers
            req.headers.replaceOrAdd(name: "User-Agent", value: "kiln")
            if let body { req.body = try body() }
            if let auth = try await authorization(scopes: scopes + extraScopes, what: what) {
                req.headers.replaceOrAdd(name: "Authorization", value: auth)
            }
            let response: HTTPClientResponse
            let started = HTTPLog.now()
            do {
                response = try await http.execute(req, timeout: .hours(24))
                HTTPLog.response(method.rawValue, url, status: Int(response.status.code), responseBytes: response.headers.first(name: "Content-Length").flatMap { Int64($0) }, requestBytes: req.headers.first(name: "Content-Length").flatMap { Int64($0) }, started: started)
            } catch {
                HTTPLog.failure(method.rawValue, url, error: describeTransportError(error, url: nil), started: started)
                if Task.isCancelled { throw CancellationError() }
                guard retry == .standard, attempt < options.maxAttempts else {
                    throw RegistryError.transport("\(what): \(describeTransportError(error, url: url))")
                }
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
                continue
            }
            let status = Int(response.status.code)
            if status == 401, !authRetried {
                authRetried = true
                await drain(response)
                let challenges = response.headers["WWW-Authenticate"].flatMap(AuthChallenge.parse)
                guard let c = challenges.first(where: { $0.scheme == "bearer" }) ?? challenges.first(where: { $0.scheme == "basic" }) else {
                    throw RegistryError.unauthorized("\(what): the registry refused access and sent no usable authentication challenge")
                }
                extraScopes = c.scopes.filter { !(scopes + extraScopes).contains($0) }
                state.update { $0.challenge = c; $0.tokens[Self.scopeKey(scopes + extraScopes)] = nil }
                continue
            }
            if status == 401 {
                await drain(response)
                let creds = try credentials()
                throw RegistryError.unauthorized(creds == nil
                    ? "\(what): authentication required (log in with kiln login \(registry))"
                    : "\(what): the registry rejected the credentials for \(registry)")
            }
            if retry == .standard, status == 429 || (500...599).contains(status), attempt < options.maxAttempts {
                let after = response.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter)
                await drain(response)
                try await backoff(attempt: attempt, retryAfter: after)
                attempt += 1
                continue
            }
            return response
        }
    }

    /// Sends and reads a small body, failing on any status not in `expect`.
    func sendCollect(_ method: HTTPMethod, _ path: String, absoluteURL: Bool = false, headers: HTTPHeaders = [:],
                     body: (@Sendable () throws -> HTTPClientRequest.Body?)? = nil, scopes: [String], what: String,
                     expect: Set<Int>, limit: Int = 4 << 20,
                     retry: RetryPolicy = .standard) async throws -> (HTTPClientResponse, [UInt8]) {
        let r = try await send(method, path, absoluteURL: absoluteURL, headers: headers, body: body, scopes: scopes, what: what, retry: retry)
        let bytes = try await collect(r, limit: limit, what: what)
        guard expect.contains(Int(r.status.code)) else {
            throw Self.httpError(status: Int(r.status.code), body: bytes, what: what)
        }
        return (r, bytes)
    }

    func collect(_ r: HTTPClientResponse, limit: Int, what: String) async throws -> [UInt8] {
        do {
            var buf = try await r.body.collect(upTo: limit)
            return buf.readBytes(length: buf.readableBytes) ?? []
        } catch let e as NIOTooManyBytesError {
            _ = e
            throw RegistryError.protocolViolation("\(what): response larger than \(limit) bytes")
        } catch {
            throw RegistryError.transport("\(what): \(describeTransportError(error, url: nil))")
        }
    }

    func drain(_ r: HTTPClientResponse) async {
        _ = try? await r.body.collect(upTo: 1 << 20)
    }

    /// A registry error body (spec.md "Error Codes": `{"errors":[{"code","message"}]}`)
    /// as one readable line.
    static func httpError(status: Int, body: [UInt8], what: String) -> RegistryError {
        struct Errors: Decodable { struct E: Decodable { var code: String?; var message: String? }; var errors: [E]? }
        var detail = ""
        var codes: [RegistryErrorCode] = []
        if let e = try? JSONDecoder().decode(Errors.self, from: Data(body)), let list = e.errors, !list.isEmpty {
            detail = list.map { [$0.code, $0.message].compactMap { $0 }.joined(separator: ": ") }.joined(separator: "; ")
            codes = list.compactMap { $0.code.map(RegistryErrorCode.init(rawValue:)) }
        }
        if status == 404 { return .notFound("\(what): not found" + (detail.isEmpty ? "" : " (\(detail))")) }
        return .http(status: status, what: what, detail: detail, codes: codes)
    }

    /// `Retry-After` in seconds (RFC 9110 §10.2.3); an HTTP date is honoured too.
    static func parseRetryAfter(_ s: String) -> Double? {
        if let n = Double(s.trimmingCharacters(in: .whitespaces)), n >= 0 { return n }
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        if let d = f.date(from: s) { return max(0, d.timeIntervalSinceNow) }
        return nil
    }

    /// Waits before attempt `attempt + 1`: `Retry-After` when given (capped), else
    /// exponential backoff with jitter.
    func backoff(attempt: Int, retryAfter: Double?) async throws {
        let delay: Double
        if let retryAfter {
            delay = min(retryAfter, max(options.maxRetryDelay, 60))
        } else {
            let exp = options.retryBaseDelay * pow(2, Double(attempt - 1))
            delay = min(exp, options.maxRetryDelay) * Double.random(in: 0.8...1.2)
        }
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
    }

    // MARK: Scheme

    /// The base URL, found once by asking `GET /v2/` (spec.md "Determining support").
    /// HTTPS only, unless the registry is loopback or TLS verification is off: then
    /// HTTPS and plain HTTP are asked at once and the first real registry answer wins
    /// (a port speaks one or the other; a plain server would otherwise leave a TLS
    /// handshake hanging until its timeout). The answer's challenge is kept for auth.
    func baseURL() async throws -> String {
        if let b = state.get().base { return b }
        let task: Task<(String, AuthChallenge?), any Error> = state.update { st in
            if let t = st.probing { return t }
            let t = Task { try await self.findBase() }
            st.probing = t
            return t
        }
        let chosen = try await task.value
        state.update { $0.base = chosen.0; if $0.challenge == nil { $0.challenge = chosen.1 } }
        return chosen.0
    }

    private func findBase() async throws -> (String, AuthChallenge?) {
        let https = "https://\(host)"
        let plain = "http://\(host)"
        let chosen: (String, AuthChallenge?)
        if isLoopback || !options.tlsVerify {
            chosen = try await withThrowingTaskGroup(of: (String, AuthChallenge?)?.self) { group in
                let httpsError = LockedBox<(any Error)?>(nil)
                group.addTask {
                    do { return (https, try await self.probe(https)) } catch { httpsError.set(error); return nil }
                }
                group.addTask {
                    do { return (plain, try await self.probe(plain)) } catch { return nil }
                }
                while let result = try await group.next() {
                    if let r = result {
                        group.cancelAll()
                        return r
                    }
                }
                throw RegistryError.unreachable("cannot reach \(registry): \(describeTransportError(httpsError.get() ?? RegistryError.transport("no answer"), url: https + "/v2/"))")
            }
        } else {
            do {
                chosen = (https, try await probe(https))
            } catch {
                throw RegistryError.unreachable("cannot reach \(registry): \(describeTransportError(error, url: https + "/v2/"))")
            }
        }
        return chosen
    }

    /// One `GET /v2/`, retried on connection errors and 5xx; returns the auth challenge if any.
    /// A 400 means the scheme is wrong (plain HTTP to a TLS port).
    private func probe(_ base: String) async throws -> AuthChallenge? {
        var attempt = 1
        let tries = base.hasPrefix("https") ? min(2, options.maxAttempts) : options.maxAttempts
        while true {
            var req = HTTPClientRequest(url: base + "/v2/")
            req.headers.add(name: "User-Agent", value: "kiln")
            let started = HTTPLog.now()
            do {
                // AsyncHTTPClient retries failed connections until the deadline, so a TLS
                // failure would only surface then: keep the probe's deadline short.
                let r = try await http.execute(req, timeout: .milliseconds(Int64(probeDeadline * 1000)))
                HTTPLog.response("GET", base + "/v2/", status: Int(r.status.code), responseBytes: r.headers.first(name: "Content-Length").flatMap { Int64($0) }, started: started)
                await drain(r)
                let status = Int(r.status.code)
                if (status == 429 || (500...599).contains(status)) && attempt < tries {
                    try await backoff(attempt: attempt, retryAfter: r.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter))
                    attempt += 1
                    continue
                }
                if status == 400 { throw RegistryError.protocolViolation("\(base): not a registry at this scheme") }
                let challenges = r.headers["WWW-Authenticate"].flatMap(AuthChallenge.parse)
                return challenges.first(where: { $0.scheme == "bearer" }) ?? challenges.first(where: { $0.scheme == "basic" })
            } catch let e as RegistryError {
                throw e
            } catch {
                HTTPLog.failure("GET", base + "/v2/", error: describeTransportError(error, url: nil), started: started)
                if attempt >= tries || isTLSError(error) { throw error }
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
            }
        }
    }

    /// Loopback handshakes are instant; remote ones get up to 10 s (or the connect timeout if shorter).
    private var probeDeadline: Double {
        isLoopback ? min(5, options.connectTimeout) : min(10, options.connectTimeout)
    }

    private func isTLSError(_ e: any Error) -> Bool {
        e is NIOSSLError || String(describing: e).contains("SSL") || String(describing: e).contains("TLS")
    }

    func describeTransportError(_ e: any Error, url: String?) -> String {
        let where_ = url.map { " (\($0))" } ?? ""
        if let h = e as? HTTPClientError {
            switch h {
            case .connectTimeout: return "connection timed out" + where_
            case .readTimeout: return "no data for \(Int(options.readTimeout))s (read timeout)" + where_
            case .remoteConnectionClosed: return "the connection was closed by the registry" + where_
            case .deadlineExceeded: return "no answer in time" + where_
            default: return "\(h)" + where_
            }
        }
        if let s = e as? NIOSSLError {
            if "\(s)".contains("CERTIFICATE_VERIFY_FAILED") {
                return "TLS certificate verification failed" + where_ + "; trust its CA with --cert-dir DIR, or use --tls-verify=false"
            }
            return "TLS error: \(s)" + where_
        }
        if let r = e as? RegistryError { return r.description }
        // NIO's own text for these reads "read(descriptor:pointer:size:): Connection
        // reset by peer) (errno: 104)"; the C library's words read better.
        if let io = e as? IOError { return String(cString: strerror(io.errnoCode)) + where_ }
        return "\(e)" + where_
    }
}

/// One HTTPClient per distinct configuration, kept for the life of the process
/// (AsyncHTTPClient requires a shutdown before release; a CLI never releases them).
enum HTTPClientPool {
    static let clients = LockedBox<[String: HTTPClient]>([:])

    static func client(for options: RegistryOptions) throws -> HTTPClient {
        let key = "\(options.tlsVerify)|\(options.certDirectory ?? "")|\(options.connectTimeout)|\(options.readTimeout)"
        return try clients.update { all in
            if let c = all[key] { return c }
            var tls = TLSConfiguration.makeClientConfiguration()
            if !options.tlsVerify { tls.certificateVerification = .none }
            if let dir = options.certDirectory {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
                let files = names.filter { $0.hasSuffix(".crt") || $0.hasSuffix(".pem") }.sorted()
                guard !files.isEmpty else { throw RegistryError.transport("--cert-dir \(dir) holds no .crt or .pem file") }
                tls.additionalTrustRoots = files.map { .file(dir + "/" + $0) }
            }
            var config = HTTPClient.Configuration(
                tlsConfiguration: tls,
                redirectConfiguration: .follow(max: 5, allowCycles: false),
                timeout: .init(connect: .milliseconds(Int64(options.connectTimeout * 1000)),
                               read: .milliseconds(Int64(options.readTimeout * 1000))))
            config.httpVersion = .http1Only
            let c = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
            all[key] = c
            return c
        }
    }
}
