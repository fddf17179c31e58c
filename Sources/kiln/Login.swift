import ArgumentParser
import Foundation
import KilnRegistry

struct Login: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log in to a registry, saving the credentials as Docker's config.json says.",
        discussion: """
            The credentials are checked against the registry first, then saved. When \
            $DOCKER_CONFIG/config.json (or ~/.docker/config.json) names a credential \
            helper for the registry ("credHelpers") or for all registries ("credsStore"), \
            they go to docker-credential-NAME (its "store" command, the secret on its \
            stdin) and any plain entry for the registry is removed from the file; \
            otherwise they are written in the file's "auths" with mode 0600. Other \
            settings in the file are kept. Prefer --password-stdin: a password in the \
            arguments is visible to other users of the machine.

            Example: printf '%s' "$PASS" | kiln login 127.0.0.1:5000 -u alice --password-stdin
            """)

    @Argument(help: "The registry: HOST[:PORT] (default: docker.io).")
    var registry: String = RegistryReference.dockerHub

    @Option(name: .shortAndLong, help: "The user name.")
    var username: String?

    @Option(name: .shortAndLong, help: "The password (visible in the process list: prefer --password-stdin).")
    var password: String?

    @Flag(help: "Read the password from stdin.")
    var passwordStdin = false

    @Option(name: .customLong("tls-verify"), help: "Verify HTTPS certificates.")
    var tlsVerify: Bool = true

    @Option(name: .customLong("cert-dir"), help: "A directory of extra CA certificates to trust.")
    var certDir: String?

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let host = normalizedRegistry(registry)
            guard let username, !username.isEmpty else { throw ValidationError("give the user name with -u") }
            let secret: String
            if passwordStdin {
                secret = readPasswordLine()
            } else if let password {
                secret = password
            } else {
                throw ValidationError("give the password with --password-stdin (or -p)")
            }
            var options = RegistryOptions()
            options.applyEnvironment()
            options.tlsVerify = tlsVerify
            options.certDirectory = certDir
            options.credentials = Credentials(username: username, password: secret)
            let client = try RegistryClient(registry: host, options: options)
            try await client.verifyLogin()
            let path = CredentialStore.dockerConfigPath()
            switch try DockerConfigFile(path: path).login(registry: host, credentials: Credentials(username: username, password: secret)) {
            case .file(let file): print("Login succeeded: \(host) (credentials saved in \(file))")
            case .helper(let name): print("Login succeeded: \(host) (credentials saved by docker-credential-\(name))")
            }
        }
    }
}

struct Logout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a registry's saved credentials (Docker's config.json, or its credential helper).")

    @Argument(help: "The registry: HOST[:PORT] (default: docker.io).")
    var registry: String = RegistryReference.dockerHub

    @OptionGroup var global: GlobalOptions

    mutating func run() throws {
        try reportingErrors {
            let host = normalizedRegistry(registry)
            let path = CredentialStore.dockerConfigPath()
            switch try DockerConfigFile(path: path).logout(registry: host) {
            case .file(let file): print("Removed the credentials for \(host) from \(file)")
            case .helper(let name): print("Removed the credentials for \(host) from docker-credential-\(name)")
            case nil: print("Not logged in to \(host)")
            }
        }
    }
}

/// `https://index.docker.io/v1/`, `docker.io`, `host:5000/` → the registry as references name it.
func normalizedRegistry(_ s: String) -> String {
    var h = s
    for p in ["https://", "http://", "docker://"] where h.hasPrefix(p) { h.removeFirst(p.count) }
    if let slash = h.firstIndex(of: "/") { h = String(h[..<slash]) }
    if ["index.docker.io", "registry-1.docker.io"].contains(h) { return RegistryReference.dockerHub }
    return h
}
