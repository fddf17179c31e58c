import Foundation

/// Credentials for one registry. Never printed: `description` hides the secret.
public struct Credentials: Sendable, Equatable, CustomStringConvertible {
    public var username: String
    public var password: String
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
    public var identityToken: String?

    public init(username: String, password: String, identityToken: String? = nil) {
        self.username = username
        self.password = password
        self.identityToken = identityToken
    }

    public var description: String { "credentials for \(username.isEmpty ? "<token>" : username)" }

    /// `Basic base64(user:password)` (RFC 7617).
    var basicHeader: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}

/// Where credentials are found, in the order containers/image and Docker look:
/// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, then Docker's
/// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. Each file may hold
/// `auths` (`auth` = base64 of `user:password`, `identitytoken`), `credHelpers`
/// (registry → `docker-credential-NAME`) and `credsStore` (the default helper).
///
/// Answers are remembered per registry and repository for the life of the store (and
/// its copies), so a credential helper runs once per repository, not once per request.
public struct CredentialStore: Sendable {
    public var files: [String]
    /// Runs a credential helper: (program, argument, stdin) → stdout.
    public var runHelper: @Sendable (String, String, String) throws -> String
    private let remembered = LockedBox<[String: Credentials?]>([:])

    public init(files: [String], runHelper: @escaping @Sendable (String, String, String) throws -> String = CredentialStore.execHelper) {
        self.files = files
        self.runHelper = runHelper
    }

    /// `lookup`, asked once per registry and repository; errors are not remembered.
    public func cachedLookup(registry: String, repository: String?) throws -> Credentials? {
        let key = registry + "\u{0}" + (repository ?? "")
        if let known = remembered.get()[key] { return known }
        let found = try lookup(registry: registry, repository: repository)
        remembered.update { $0[key] = .some(found) }
        return found
    }

    /// The standard search path from the environment; `authFile` (`--authfile`) comes first.
    public static func standard(authFile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) -> CredentialStore {
        var files: [String] = []
        if let authFile { files.append(authFile) }
        if let f = environment["REGISTRY_AUTH_FILE"], !f.isEmpty { files.append(f) }
        if let r = environment["XDG_RUNTIME_DIR"], !r.isEmpty { files.append(r + "/containers/auth.json") }
        files.append(dockerConfigPath(environment: environment))
        return CredentialStore(files: files)
    }

    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: where `kiln login` writes.
    public static func dockerConfigPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let d = environment["DOCKER_CONFIG"], !d.isEmpty { return d + "/config.json" }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return home + "/.docker/config.json"
    }

    /// The keys a registry may be filed under: its name, with `https://`, and for
    /// Docker Hub the legacy `https://index.docker.io/v1/`.
    static func keys(for registry: String) -> [String] {
        var k = [registry, "https://\(registry)", "http://\(registry)", "https://\(registry)/v1/", "https://\(registry)/v2/"]
        if registry == RegistryReference.dockerHub {
            k += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
        }
        return k
    }

    /// Credentials for `registry`, or nil for anonymous access. Each file in turn
    /// (the first with an answer wins): the registry's `credHelpers` entry; then the
    /// `auths` keys from the most specific down, as containers-auth.json(5) says,
    /// `registry/ns/repo`, `registry/ns`, then the registry itself (under any of its
    /// spellings); then `credsStore`.
    public func lookup(registry: String, repository: String? = nil) throws -> Credentials? {
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { continue }
            guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                throw RegistryError.credentials("\(file) is not valid JSON")
            }
            if let helpers = json["credHelpers"] as? [String: String],
               let helper = CredentialStore.keys(for: registry).lazy.compactMap({ helpers[$0] }).first(where: { !$0.isEmpty }) {
                return try fromHelper(helper, registry: registry)
            }
            if let auths = json["auths"] as? [String: Any] {
                var candidates: [String] = []
                if let repository {
                    // Most specific first: registry/a/b, registry/a.
                    var parts = repository.split(separator: "/").map(String.init)
                    while !parts.isEmpty {
                        candidates.append(registry + "/" + parts.joined(separator: "/"))
                        parts.removeLast()
                    }
                }
                candidates += CredentialStore.keys(for: registry)
                for key in candidates {
                    if let entry = auths[key] as? [String: Any], let c = try parseEntry(entry, file: file, key: key) {
                        return c
                    }
                }
            }
            if let store = json["credsStore"] as? String, !store.isEmpty {
                if let c = try? fromHelper(store, registry: registry) { return c }
            }
        }
        return nil
    }

    func parseEntry(_ entry: [String: Any], file: String, key: String) throws -> Credentials? {
        let identity = (entry["identitytoken"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if let auth = entry["auth"] as? String, !auth.isEmpty {
            guard let raw = Data(base64Encoded: auth), let s = String(data: raw, encoding: .utf8),
                  let colon = s.firstIndex(of: ":") else {
                throw RegistryError.credentials("\(file): the \"auth\" of \(key) is not base64 of user:password")
            }
            return Credentials(username: String(s[..<colon]), password: String(s[s.index(after: colon)...]), identityToken: identity)
        }
        if let u = entry["username"] as? String, let p = entry["password"] as? String {
            return Credentials(username: u, password: p, identityToken: identity)
        }
        if let identity { return Credentials(username: "", password: "", identityToken: identity) }
        return nil
    }

    /// The credential-helper protocol (docker-credential-helpers): `get` reads the
    /// server URL on stdin and prints `{"ServerURL","Username","Secret"}`; the username
    /// `<token>` means the secret is an identity token.
    /// A helper that has nothing for the registry answers "credentials not found": nil.
    /// Asked once per helper and registry (a lookup per repository would ask again).
    func fromHelper(_ name: String, registry: String) throws -> Credentials? {
        let key = "helper\u{0}" + name + "\u{0}" + registry
        if let known = remembered.get()[key] { return known }
        let found = try askHelper(name, registry: registry)
        remembered.update { $0[key] = .some(found) }
        return found
    }

    private func askHelper(_ name: String, registry: String) throws -> Credentials? {
        let out: String
        do {
            out = try runHelper("docker-credential-\(name)", "get", DockerConfigFile.key(for: registry))
        } catch is CredentialHelperNotFound {
            return nil
        }
        guard let json = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any],
              let user = json["Username"] as? String, let secret = json["Secret"] as? String else {
            throw RegistryError.credentials("docker-credential-\(name) gave no credentials for \(registry)")
        }
        if user == "<token>" { return Credentials(username: "", password: "", identityToken: secret) }
        return Credentials(username: user, password: secret)
    }

    /// Runs `program argument` with `input` on stdin; its stderr is discarded, since
    /// helpers may echo what they were given, and so is the stdout of a failure, except
    /// that docker-credential-helpers' "credentials not found" message becomes
    /// `CredentialHelperNotFound`.
    public static let execHelper: @Sendable (String, String, String) throws -> String = { program, argument, input in
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [program, argument]
        let stdin = Pipe(), stdout = Pipe()
        p.standardInput = stdin
        p.standardOutput = stdout
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            throw RegistryError.credentials("cannot run \(program): \(error.localizedDescription)")
        }
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let data = stdout.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            let said = String(decoding: data.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if said.hasPrefix(CredentialHelperNotFound.message) { throw CredentialHelperNotFound() }
            if p.terminationStatus == 127 { throw RegistryError.credentials("\(program) is not on PATH (the Docker config names it)") }
            throw RegistryError.credentials("\(program) \(argument) failed (exit \(p.terminationStatus))")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A credential helper's answer that it holds nothing for the server (its stdout is
/// `credentials not found in native keychain`, docker-credential-helpers' ErrCredentialsNotFound).
public struct CredentialHelperNotFound: Error, CustomStringConvertible {
    public static let message = "credentials not found in native keychain"
    public init() {}
    public var description: String { Self.message }
}

/// Edits Docker's `config.json` for `kiln login` / `kiln logout`, keeping every other
/// key as it was. The file is written atomically with mode 0600.
public struct DockerConfigFile: Sendable {
    public var path: String
    /// Runs a credential helper: (program, argument, stdin) → stdout.
    public var runHelper: @Sendable (String, String, String) throws -> String

    public init(path: String, runHelper: @escaping @Sendable (String, String, String) throws -> String = CredentialStore.execHelper) {
        self.path = path
        self.runHelper = runHelper
    }

    /// Where `kiln login` keeps credentials for a registry.
    public enum Place: Sendable, Equatable {
        /// In the file's `auths`, base64-encoded.
        case file(String)
        /// In `docker-credential-NAME`.
        case helper(String)
    }

    /// The helper that holds `registry`'s credentials: its `credHelpers` entry, else
    /// `credsStore`; nil when neither is set (they then go in `auths`), as Docker does.
    public func helper(for registry: String) throws -> String? {
        let json = try load()
        if let helpers = json["credHelpers"] as? [String: String],
           let h = CredentialStore.keys(for: registry).lazy.compactMap({ helpers[$0] }).first, !h.isEmpty {
            return h
        }
        if let store = json["credsStore"] as? String, !store.isEmpty { return store }
        return nil
    }

    /// Saves credentials where `kiln login` should: through the registry's credential
    /// helper (`store`, with `{"ServerURL","Username","Secret"}` on its stdin, never in
    /// its arguments) when one is configured, dropping any plain `auths` entry for the
    /// registry that would otherwise be left behind; else in `auths`.
    public func login(registry: String, credentials: Credentials) throws -> Place {
        guard let helper = try helper(for: registry) else {
            try store(registry: registry, credentials: credentials)
            return .file(path)
        }
        let isToken = credentials.identityToken != nil
        let payload: [String: String] = [
            "ServerURL": DockerConfigFile.key(for: registry),
            "Username": isToken ? "<token>" : credentials.username,
            "Secret": credentials.identityToken ?? credentials.password,
        ]
        let input = String(decoding: try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
        _ = try runHelper("docker-credential-\(helper)", "store", input)
        try removeFromFile(registry: registry)
        return .helper(helper)
    }

    /// Forgets `registry`'s credentials: through its helper (`erase`, the server URL on
    /// stdin) when one is configured, and from `auths`. Returns where they were, or nil
    /// when there were none.
    @discardableResult
    public func logout(registry: String) throws -> Place? {
        var place: Place?
        if let helper = try helper(for: registry) {
            do {
                _ = try runHelper("docker-credential-\(helper)", "erase", DockerConfigFile.key(for: registry))
                place = .helper(helper)
            } catch is CredentialHelperNotFound {}
        }
        if try removeFromFile(registry: registry), place == nil { place = .file(path) }
        return place
    }

    private func load() throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path), !data.isEmpty else { return [:] }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw RegistryError.credentials("\(path) is not valid JSON; not changing it")
        }
        return json
    }

    private func save(_ json: [String: Any]) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        let tmp = path + ".kiln-\(getpid())"
        guard FileManager.default.createFile(atPath: tmp, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw RegistryError.credentials("cannot write \(tmp)")
        }
        guard rename(tmp, path) == 0 else {
            unlink(tmp)
            throw RegistryError.credentials("cannot replace \(path)")
        }
    }

    /// The key `registry` is filed under: Docker Hub keeps its legacy URL.
    static func key(for registry: String) -> String {
        registry == RegistryReference.dockerHub ? "https://index.docker.io/v1/" : registry
    }

    public func store(registry: String, credentials: Credentials) throws {
        var json = try load()
        var auths = json["auths"] as? [String: Any] ?? [:]
        var entry: [String: Any] = [:]
        if let t = credentials.identityToken {
            entry["identitytoken"] = t
        } else {
            entry["auth"] = Data("\(credentials.username):\(credentials.password)".utf8).base64EncodedString()
        }
        auths[DockerConfigFile.key(for: registry)] = entry
        json["auths"] = auths
        try save(json)
    }

    /// Removes the registry's `auths` entry; returns false when there was none.
    @discardableResult
    public func remove(registry: String) throws -> Bool { try removeFromFile(registry: registry) }

    @discardableResult
    func removeFromFile(registry: String) throws -> Bool {
        var json = try load()
        guard var auths = json["auths"] as? [String: Any] else { return false }
        var removed = false
        for k in CredentialStore.keys(for: registry) where auths[k] != nil {
            auths[k] = nil
            removed = true
        }
        guard removed else { return false }
        json["auths"] = auths
        try save(json)
        return true
    }
}
