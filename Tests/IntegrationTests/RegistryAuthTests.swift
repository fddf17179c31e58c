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
}
