import Foundation
import Testing

/// A Bearer token server for the registry's `silly` auth: anonymous callers get pull
/// scopes only, alice (with her password) gets push too. It records what it was asked.
final class TokenServer: @unchecked Sendable {
    struct Call { var user: String?; var scopes: [String]; var service: String? }
    private let lock = NSLock()
    private var _calls: [Call] = []
    private var server: MiniServer!
    var port: Int { server.port }
    var calls: [Call] { lock.lock(); defer { lock.unlock() }; return _calls }
    static let password = "s3cret-pa55"

    init() throws {
        server = try MiniServer { [unowned self] req, c in
            var user: String?
            if let auth = req.header("Authorization"), auth.hasPrefix("Basic "),
               let raw = Data(base64Encoded: String(auth.dropFirst(6))), let s = String(data: raw, encoding: .utf8) {
                let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
                guard parts.count == 2, parts[0] == "alice", parts[1] == TokenServer.password else {
                    MiniServer.respond(c, status: 401, body: Array(#"{"details":"bad credentials"}"#.utf8))
                    return
                }
                user = parts[0]
            }
            let scopes = req.queryItems.filter { $0.name == "scope" }.compactMap(\.value)
            let service = req.queryItems.first { $0.name == "service" }?.value
            self.lock.lock(); self._calls.append(Call(user: user, scopes: scopes, service: service)); self.lock.unlock()
            // Each scope is one parameter; actions after the last ':' are comma-separated.
            let wantsPush = scopes.contains { $0.split(separator: ":").last?.split(separator: ",").contains("push") == true }
            if wantsPush && user == nil {
                MiniServer.respond(c, status: 401, body: Array(#"{"details":"push needs a login"}"#.utf8))
                return
            }
            let token = "tok-\(UUID().uuidString)"
            MiniServer.respond(c, status: 200, headers: ["Content-Type": "application/json"],
                               body: Array(#"{"token":"\#(token)","expires_in":300}"#.utf8))
        }
    }
    func stop() { server.stop() }
}

extension TestRegistry {
    /// A registry whose token realm is `tokens` (distribution's `silly` auth).
    convenience init(tokens: TokenServer) throws {
        try self.init(auth: """
              silly:
                realm: http://127.0.0.1:\(tokens.port)/token
                service: kiln-test
            """)
    }
}

@Suite(.serialized) struct RegistryAuthTests {
    @Test func bearerTokensAnonymousAndWithLogin() throws {
        let tokens = try TokenServer()
        defer { tokens.stop() }
        let reg = try TestRegistry(tokens: tokens)
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 50_000)
        let ref = "docker://\(reg.host)/team/app:1"

        // Pushing anonymously is refused by the token server, with a hint and no secret.
        let anon = try env.kiln(["build", spec, "--push", ref], check: false)
        #expect(anon.status == 1 && anon.stderr.contains("kiln login"), "\(anon.stderr)")

        // A wrong password: login fails and says so without echoing it.
        let bad = try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"], stdin: "wrong-pw\n", check: false)
        #expect(bad.status == 1 && bad.stderr.contains("rejected"), "\(bad.stderr)")
        #expect(!(bad.stdout + bad.stderr).contains("wrong-pw"))

        try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"], stdin: TokenServer.password + "\n")
        let config = try String(contentsOfFile: env.dir.path + "/docker/config.json", encoding: .utf8)
        #expect(config.contains(Data("alice:\(TokenServer.password)".utf8).base64EncodedString()))

        let before = tokens.calls.count
        let pushed = try env.kiln(["build", spec, "--push", ref, "--json"])
        let digest = (try parseJSON(pushed.stdout) as! [String: Any])["manifestDigest"] as! String
        let pushCalls = tokens.calls[before...]
        #expect(pushCalls.allSatisfy { $0.user == "alice" && $0.service == "kiln-test" })
        #expect(pushCalls.contains { $0.scopes == ["repository:team/app:pull,push"] })
        // Cached per scope: one token serves every blob and the manifest.
        #expect(pushCalls.filter { $0.scopes == ["repository:team/app:pull,push"] }.count == 1, "\(Array(pushCalls))")
        #expect(!(pushed.stdout + pushed.stderr).contains(TokenServer.password))
        #expect(!(pushed.stdout + pushed.stderr).contains("tok-"))

        // A cross-repository copy asks for the other repository's pull scope as well.
        try env.kiln(["copy", ref, "docker://\(reg.host)/team/copy:1"])
        #expect(tokens.calls.contains { Set($0.scopes).isSuperset(of: ["repository:team/copy:pull,push", "repository:team/app:pull"]) },
                "\(tokens.calls.map(\.scopes))")

        // After logout, pulls are anonymous.
        try env.kiln(["logout", reg.host])
        let n = tokens.calls.count
        let pulled = try env.kiln(["pull", ref, "-o", src.path + "/img.tar", "--json"])
        #expect((try parseJSON(pulled.stdout) as! [String: Any])["digest"] as? String == digest)
        #expect(tokens.calls[n...].allSatisfy { $0.user == nil })
        #expect(tokens.calls[n...].contains { $0.scopes == ["repository:team/app:pull"] })

        // skopeo reads what Kiln pushed through the same auth.
        let info = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
        #expect(info["Digest"] as? String == digest)
    }

    @Test func basicAuthOverTLSWithAGeneratedCA() throws {
        let certs = try TempDir()
        try sh("""
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca/ca.crt -days 2 -subj /CN=kiln-test-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > ext
            openssl x509 -req -in srv.csr -CA ca/ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 -extfile ext 2>/dev/null
            python3 -W ignore -c "import crypt; print('alice:' + crypt.crypt('tls-pa55', crypt.mksalt(crypt.METHOD_BLOWFISH)))" > htpasswd
            """, cwd: { try? FileManager.default.createDirectory(atPath: certs.path + "/ca", withIntermediateDirectories: true); return certs.path }())
        let reg = try TestRegistry(auth: """
              htpasswd:
                realm: kiln-test
                path: \(certs.path)/htpasswd
            """, tls: (certs.path + "/srv.crt", certs.path + "/srv.key"))
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src)
        let ref = "docker://\(reg.host)/secure/app:1"
        let ca = ["--cert-dir", certs.path + "/ca"]

        // Without the CA the certificate is not trusted, and Kiln does not fall back to HTTP.
        let untrusted = try env.kiln(["build", spec, "--push", ref, "--creds", "alice:tls-pa55"], check: false)
        #expect(untrusted.status == 1, "\(untrusted)")
        #expect(untrusted.stderr.lowercased().contains("certificate") || untrusted.stderr.contains("TLS"), "\(untrusted.stderr)")
        #expect(!untrusted.stderr.contains("tls-pa55"))

        // Wrong credentials are rejected without being shown.
        let wrong = try env.kiln(["build", spec, "--push", ref, "--creds", "alice:nope-nope"] + ca, check: false)
        #expect(wrong.status == 1 && wrong.stderr.contains("rejected") && !wrong.stderr.contains("nope-nope"), "\(wrong.stderr)")

        try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"] + ca, stdin: "tls-pa55")
        let pushed = try env.kiln(["build", spec, "--push", ref, "--json"] + ca)
        let digest = (try parseJSON(pushed.stdout) as! [String: Any])["manifestDigest"] as! String
        let info = try parseJSON(try run("skopeo", ["inspect", "--cert-dir", certs.path + "/ca", "--creds", "alice:tls-pa55", ref]).stdout) as! [String: Any]
        #expect(info["Digest"] as? String == digest)

        let pulled = try env.kiln(["pull", ref, "-o", src.path + "/img.tar", "--json", "--tls-verify=false"])
        #expect((try parseJSON(pulled.stdout) as! [String: Any])["digest"] as? String == digest)
    }

    /// A registry with htpasswd Basic auth on plain HTTP (loopback): alice's password is
    /// `password`, and bob's password is `bob-pa55`. The registry reads the file while
    /// it runs: keep the directory as long as the registry.
    func htpasswdRegistry(password: String) throws -> (TestRegistry, TempDir) {
        let auth = try TempDir()
        try run("/bin/sh", ["-c", "htpasswd -Bbn alice \"$1\" > htpasswd && htpasswd -Bbn bob bob-pa55 >> htpasswd", "sh", password], cwd: auth.path)
        let reg = try TestRegistry(auth: """
              htpasswd:
                realm: kiln-test
                path: \(auth.path)/htpasswd
            """)
        return (reg, auth)
    }

    /// containers-auth.json(5): `registry/ns/repo`, then `registry/ns`, then `registry`.
    /// Each level holds different credentials, only some right, so which one was sent
    /// shows in whether the push is accepted.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/htpasswd"), "needs htpasswd (apache2-utils)"))
    func perRepositoryAuthEntriesMostSpecificFirst() throws {
        let (reg, htpasswd) = try htpasswdRegistry(password: "r1ght-pa55")
        defer { withExtendedLifetime(htpasswd) {} }
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src)
        func auth(_ u: String, _ p: String) -> String { #"{"auth":"\#(Data((u + ":" + p).utf8).base64EncodedString())"}"# }
        let authFile = env.dir.path + "/auth.json"
        try #"{"auths":{"\#(reg.host)/team/app":\#(auth("alice", "r1ght-pa55")),"\#(reg.host)/team":\#(auth("alice", "wr0ng-team")),"\#(reg.host)":\#(auth("bob", "bob-pa55"))}}"#
            .write(toFile: authFile, atomically: true, encoding: .utf8)
        let vars = ["REGISTRY_AUTH_FILE": authFile]

        // team/app: the repository's own entry (right), not team's (wrong).
        try env.kiln(["build", spec, "--push", "docker://\(reg.host)/team/app:1"], extra: vars)
        // team/other: team's entry (wrong) wins over the registry's (right).
        let other = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/team/other:1"], extra: vars, check: false)
        #expect(other.status == 1 && other.stderr.contains("rejected the credentials"), "\(other)")
        #expect(!other.stderr.contains("wr0ng-team"))
        // solo: only the registry's entry matches (bob's, right).
        try env.kiln(["build", spec, "--push", "docker://\(reg.host)/solo:1"], extra: vars)
        // teamwork is not below team: the registry's entry again.
        try env.kiln(["build", spec, "--push", "docker://\(reg.host)/teamwork/x:1"], extra: vars)
        // A pull follows the same rule (team/other's pull uses team's wrong password).
        try env.kiln(["pull", "docker://\(reg.host)/team/app:1", "-o", src.path + "/app.tar"], extra: vars)
        let pull = try env.kiln(["pull", "docker://\(reg.host)/solo:1", "-o", src.path + "/solo.tar"], extra: vars)
        #expect(pull.status == 0)
        #expect(try run("skopeo", ["inspect", "--tls-verify=false", "--creds", "alice:r1ght-pa55", "docker://\(reg.host)/team/app:1"]).status == 0)
    }

    /// `kiln login` through `credsStore`: the secret goes to a credential helper (a real
    /// one by the protocol: a script on PATH that keeps what it is given in files), never
    /// into config.json; pushes get it back with `get`; `kiln logout` erases it.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/htpasswd"), "needs htpasswd (apache2-utils)"))
    func loginAndLogoutThroughACredentialHelper() throws {
        let (reg, htpasswd) = try htpasswdRegistry(password: "h3lper-pa55")
        defer { withExtendedLifetime(htpasswd) {} }
        let env = try KilnEnv()
        let helpers = try TempDir()
        try helpers.write("docker-credential-kilntest", fakeCredentialHelper)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: helpers.path + "/docker-credential-kilntest")
        let path = ["PATH": helpers.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        let config = env.dir.path + "/docker/config.json"
        try #"{"credsStore":"kilntest","auths":{"\#(reg.host)":{"auth":"\#(Data("alice:stale".utf8).base64EncodedString())"}}}"#
            .write(toFile: config, atomically: true, encoding: .utf8)
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src)
        let ref = "docker://\(reg.host)/helped/app:1"

        let login = try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"], extra: path, stdin: "h3lper-pa55\n")
        #expect(login.stdout.contains("docker-credential-kilntest"), "\(login)")
        #expect(!(login.stdout + login.stderr).contains("h3lper-pa55"))
        let saved = try String(contentsOfFile: config, encoding: .utf8)
        #expect(!saved.contains("h3lper-pa55") && !saved.contains(Data("alice:stale".utf8).base64EncodedString()) && saved.contains("kilntest"), "\(saved)")
        let kept = try String(contentsOfFile: helpers.path + "/cred-" + reg.host.replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: ":", with: "_"), encoding: .utf8)
        #expect(kept == #"{"Secret":"h3lper-pa55","ServerURL":"\#(reg.host)","Username":"alice"}"#)

        let pushed = try env.kiln(["build", spec, "--push", ref], extra: path)
        #expect(!(pushed.stdout + pushed.stderr).contains("h3lper-pa55"))
        try env.kiln(["logout", reg.host], extra: path)
        let calls = try String(contentsOfFile: helpers.path + "/calls.log", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(calls.first == "store \(reg.host)" && calls.last == "erase \(reg.host)", "\(calls)")
        // One `get` for the push, however many requests it made.
        #expect(calls.filter { $0 == "get \(reg.host)" }.count == 1, "\(calls)")

        // Logged out: the helper has nothing, so the push is anonymous and refused.
        let anon = try env.kiln(["build", spec, "--push", ref], extra: path, check: false)
        #expect(anon.status == 1 && anon.stderr.contains("kiln login"), "\(anon)")
        let again = try env.kiln(["logout", reg.host], extra: path)
        #expect(again.stdout.contains("Not logged in"), "\(again)")
    }
}

/// The credential helper the tests install (Tests/Fixtures/docker-credential-kilntest).
let fakeCredentialHelper: String = try! String(contentsOfFile: packageRoot + "/Tests/Fixtures/docker-credential-kilntest", encoding: .utf8)
