import AsyncHTTPClient
import Foundation
import KilnArchive
import NIOCore
import NIOHTTP1

/// Authentication (distribution's token authentication specification, docs/spec/auth/token.md,
/// and RFC 7617 Basic). A 401 names the scheme; a Bearer challenge sends us to its realm
/// for a token covering the scopes (`repository:NAME:pull,push`), sent as one `scope=`
/// parameter each, with Basic credentials when we have them, or an identity token by
/// the OAuth2 refresh-token grant (docs/spec/auth/oauth.md). Tokens are cached per scope
/// set until they expire. Neither tokens nor credentials ever appear in errors.
extension RegistryClient {
    /// The scope set's cache key: sorted, so the same scopes in any order share a token.
    static func scopeKey(_ scopes: [String]) -> String { Set(scopes).sorted().joined(separator: " ") }

    /// `repository:NAME:ACTIONS` (token.md "Requesting a Token").
    public static func repositoryScope(_ repository: String, push: Bool) -> String {
        "repository:\(repository):" + (push ? "pull,push" : "pull")
    }

    /// The credentials last used (for error messages), else those for the registry as
    /// a whole: `--creds`, else the auth files.
    func credentials() throws -> Credentials? {
        if let c = state.get().credentials { return c }
        return try credentials(scopes: [])
    }

    /// The credentials for a request needing `scopes`: `--creds`, else the auth files'
    /// entry for the scopes' repository, the most specific key first
    /// (containers-auth.json(5): `registry/ns/repo`, `registry/ns`, `registry`). A push
    /// scope names the repository (a cross-repository mount also asks to pull from the
    /// source; the destination's credentials are the ones that count).
    func credentials(scopes: [String]) throws -> Credentials? {
        let found = try options.credentials
            ?? options.credentialStore.cachedLookup(registry: registry, repository: Self.repository(of: scopes))
        state.update { $0.credentials = .some(found) }
        return found
    }

    /// The repository a request is about: the first `repository:NAME:ACTIONS` scope
    /// that pushes, else the first one (token.md "Requesting a Token").
    static func repository(of scopes: [String]) -> String? {
        let repos: [(name: String, push: Bool)] = scopes.compactMap { scope in
            let parts = scope.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[0] == "repository" else { return nil }
            let name = parts[1..<(parts.count - 1)].joined(separator: ":")
            return name.isEmpty ? nil : (name, parts.last!.split(separator: ",").contains("push"))
        }
        return (repos.first { $0.push } ?? repos.first)?.name
    }

    /// The `Authorization` header for a request needing `scopes`, or nil when the
    /// registry has not asked for any (or access is anonymous and Basic).
    func authorization(scopes: [String], what: String) async throws -> String? {
        guard let challenge = state.get().challenge else { return nil }
        switch challenge.scheme {
        case "basic":
            return try credentials(scopes: scopes)?.basicHeader
        case "bearer":
            let key = Self.scopeKey(scopes)
            if let cached = state.get().tokens[key], cached.expires > Date() { return "Bearer " + cached.token }
            let (token, lifetime) = try await fetchToken(challenge: challenge, scopes: scopes, what: what)
            // Renew a little early so a token does not expire in flight.
            let expires = Date().addingTimeInterval(max(1, lifetime - min(10, lifetime / 4)))
            state.update { $0.tokens[key] = (token, expires) }
            return "Bearer " + token
        default:
            throw RegistryError.unsupported("\(what): the registry asks for \"\(challenge.scheme)\" authentication, which Kiln does not support")
        }
    }

    struct TokenResponse: Decodable {
        var token: String?
        var access_token: String?
        var expires_in: Double?
    }

    /// Asks the challenge's realm for a token (token.md "Requesting a Token").
    func fetchToken(challenge: AuthChallenge, scopes: [String], what: String) async throws -> (String, Double) {
        guard let realm = challenge.realm, var components = URLComponents(string: realm),
              let scheme = components.scheme, scheme == "https" || scheme == "http" else {
            throw RegistryError.unauthorized("\(what): the registry's Bearer challenge has no usable realm")
        }
        let creds = try credentials(scopes: scopes)
        var request: HTTPClientRequest
        if let refresh = creds?.identityToken {
            // OAuth2 refresh-token grant (oauth.md): POST form, scopes space-separated.
            request = HTTPClientRequest(url: realm)
            request.method = .POST
            var form = URLComponents()
            form.queryItems = [
                URLQueryItem(name: "grant_type", value: "refresh_token"),
                URLQueryItem(name: "client_id", value: "kiln"),
                URLQueryItem(name: "refresh_token", value: refresh),
            ]
            if let s = challenge.service { form.queryItems!.append(URLQueryItem(name: "service", value: s)) }
            if !scopes.isEmpty { form.queryItems!.append(URLQueryItem(name: "scope", value: scopes.joined(separator: " "))) }
            let body = (form.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: body))
        } else {
            var items = components.queryItems ?? []
            if let s = challenge.service { items.append(URLQueryItem(name: "service", value: s)) }
            for s in scopes { items.append(URLQueryItem(name: "scope", value: s)) }
            components.queryItems = items.isEmpty ? nil : items
            guard let url = components.url?.absoluteString else {
                throw RegistryError.unauthorized("\(what): cannot form the token request for \(realm)")
            }
            request = HTTPClientRequest(url: url)
            if let creds, !creds.username.isEmpty {
                request.headers.add(name: "Authorization", value: creds.basicHeader)
            }
        }
        request.headers.add(name: "User-Agent", value: "kiln")
        let realmHost = components.host ?? realm
        var attempt = 1
        while true {
            let response: HTTPClientResponse
            let started = HTTPLog.now()
            do {
                response = try await http.execute(request, timeout: .seconds(Int64(options.readTimeout + options.connectTimeout)))
                HTTPLog.response(request.method.rawValue, request.url, status: Int(response.status.code), responseBytes: response.headers.first(name: "Content-Length").flatMap { Int64($0) }, started: started)
            } catch {
                HTTPLog.failure(request.method.rawValue, request.url, error: describeTransportError(error, url: nil), started: started)
                guard attempt < options.maxAttempts else {
                    throw RegistryError.transport("\(what): token server \(realmHost): \(describeTransportError(error, url: nil))")
                }
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
                continue
            }
            let status = Int(response.status.code)
            if (status == 429 || status >= 500), attempt < options.maxAttempts {
                await drain(response)
                try await backoff(attempt: attempt, retryAfter: response.headers.first(name: "Retry-After").flatMap(Self.parseRetryAfter))
                attempt += 1
                continue
            }
            let body = try await collect(response, limit: 1 << 20, what: "\(what): token server \(realmHost)")
            if status == 401 || status == 403 {
                throw RegistryError.unauthorized(creds == nil
                    ? "\(what): the token server \(realmHost) refused anonymous access (log in with kiln login \(registry))"
                    : "\(what): the token server \(realmHost) rejected the credentials for \(registry)")
            }
            guard status == 200 else {
                throw RegistryError.unauthorized("\(what): the token server \(realmHost) answered HTTP \(status)")
            }
            guard let t = try? JSONDecoder().decode(TokenResponse.self, from: Data(body)),
                  let token = t.token ?? t.access_token, !token.isEmpty else {
                throw RegistryError.unauthorized("\(what): the token server \(realmHost) sent no token")
            }
            // token.md: expires_in defaults to 60 seconds.
            return (token, t.expires_in.flatMap { $0 > 0 ? $0 : nil } ?? 60)
        }
    }

    /// Checks that the registry accepts the current credentials (`kiln login`):
    /// `GET /v2/` with Basic, or a token for no scope from the Bearer realm.
    public func verifyLogin() async throws {
        _ = try await sendCollect(.GET, "/v2/", scopes: [], what: "login to \(registry)", expect: [200])
    }
}
