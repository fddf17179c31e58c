import KilnOCI

/// An image in a registry: `docker://HOST[:PORT]/REPO[:TAG][@DIGEST]` (containers-transports(5)).
///
/// Names without a registry host are Docker Hub's: `docker://alpine` is
/// `docker.io/library/alpine:latest`, as Docker and skopeo read it. The name and the
/// tag follow the distribution spec's grammar (spec.md "Pulling manifests": `<name>`
/// matches `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`,
/// a tag `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
public struct RegistryReference: Sendable, Hashable, CustomStringConvertible {
    /// The registry as named: `docker.io`, `quay.io`, `127.0.0.1:5000`, `[::1]:5000`.
    public var registry: String
    /// The repository inside it: `library/alpine`.
    public var repository: String
    public var tag: String?
    public var digest: Digest?

    public static let dockerHub = "docker.io"

    public init(registry: String, repository: String, tag: String? = nil, digest: Digest? = nil) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses `docker://…`, or a bare `[HOST/]REPO[:TAG][@DIGEST]` as `docker pull` takes it.
    public init(parsing input: String) throws {
        var s = Substring(input)
        if s.hasPrefix("docker://") {
            s = s.dropFirst("docker://".count)
        } else if s.hasPrefix("docker:") {
            throw RegistryError.invalidReference(input, reason: "the docker transport is written docker://HOST/REPO[:TAG]")
        }
        guard !s.isEmpty else { throw RegistryError.invalidReference(input, reason: "no image name") }

        var digest: Digest?
        if let at = s.firstIndex(of: "@") {
            let d = String(s[s.index(after: at)...])
            do { digest = try Digest(parsing: d) } catch {
                throw RegistryError.invalidReference(input, reason: "\"\(d)\" is not a digest (expected sha256:<64 lowercase hex digits>)")
            }
            s = s[..<at]
        }
        var tag: String?
        if let colon = s.lastIndex(of: ":"), !s[s.index(after: colon)...].contains("/") {
            let t = String(s[s.index(after: colon)...])
            do { try ReferenceGrammar.validateTag(t) } catch {
                throw RegistryError.invalidReference(input, reason: "invalid tag \"\(t)\": a tag is 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'")
            }
            tag = t
            s = s[..<colon]
        }
        var parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        var registry = RegistryReference.dockerHub
        if parts.count > 1, RegistryReference.looksLikeHost(parts[0]) {
            registry = parts.removeFirst()
            do { try ReferenceGrammar.validateName(registry + "/x") } catch {
                throw RegistryError.invalidReference(input, reason: "invalid registry host \"\(registry)\"")
            }
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" { registry = RegistryReference.dockerHub }
        if registry == RegistryReference.dockerHub && parts.count == 1 { parts.insert("library", at: 0) }
        let repository = parts.joined(separator: "/")
        guard !repository.isEmpty, !parts.contains(where: \.isEmpty) else {
            throw RegistryError.invalidReference(input, reason: "no repository name")
        }
        for p in parts where !ReferenceGrammar.isRepositoryComponent(p) {
            let hint = p.contains(where: \.isUppercase) ? " (repository names must be lowercase)" : ""
            throw RegistryError.invalidReference(input, reason: "path component \"\(p)\" must be lowercase letters and digits separated by '.', '_', '__' or '-'\(hint)")
        }
        guard (registry + "/" + repository).utf8.count <= 255 else {
            throw RegistryError.invalidReference(input, reason: "a name has at most 255 characters")
        }
        self.init(registry: registry, repository: repository, tag: tag ?? (digest == nil ? "latest" : nil), digest: digest)
    }

    /// A first component is a host when it has a dot or a port, or is `localhost`,
    /// or has uppercase letters (which a repository cannot), as distribution/reference decides.
    static func looksLikeHost(_ s: String) -> Bool {
        s.contains(".") || s.contains(":") || s == "localhost" || s.contains(where: \.isUppercase)
    }

    /// What `GET /v2/<name>/manifests/<reference>` takes: the digest when pinned, else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// The host and port HTTP requests go to: Docker Hub's API lives at `registry-1.docker.io`.
    public var apiHost: String { registry == RegistryReference.dockerHub ? "registry-1.docker.io" : registry }

    /// The host name without port or brackets.
    public var hostName: String { RegistryReference.hostName(of: registry) }

    static func hostName(of registry: String) -> String {
        if registry.hasPrefix("["), let close = registry.firstIndex(of: "]") {
            return String(registry[registry.index(after: registry.startIndex)..<close])
        }
        if let c = registry.lastIndex(of: ":") { return String(registry[..<c]) }
        return registry
    }

    /// True for registries on this machine, which may be spoken to over plain HTTP.
    public var isLoopback: Bool { ["localhost", "127.0.0.1", "::1"].contains(hostName) }

    /// The same image in another repository or under another tag.
    public func with(tag: String?, digest: Digest?) -> RegistryReference {
        RegistryReference(registry: registry, repository: repository, tag: tag, digest: digest)
    }

    /// `registry/repository`, the name an image is known by.
    public var name: String { "\(registry)/\(repository)" }

    public var description: String {
        "docker://\(name)" + (tag.map { ":\($0)" } ?? "") + (digest.map { "@\($0)" } ?? "")
    }
}

extension ReferenceGrammar {
    /// One `/`-separated component of a repository name. (Checked as the second part of
    /// a dummy name, so a component with a dot is not taken for a registry host.)
    static func isRepositoryComponent(_ s: String) -> Bool {
        !s.isEmpty && !s.contains("/") && (try? ReferenceGrammar.validateName("x/" + s)) != nil
    }
}
