import Foundation
import Testing
@testable import KilnRegistry

@Suite("WWW-Authenticate and credentials")
struct AuthTests {
    @Test func parsesBearerWithSeveralScopes() {
        let h = #"Bearer realm="http://127.0.0.1:1/token",service="kiln-test",scope="repository:a/b:pull repository:a/b:push",error="insufficient_scope""#
        let c = AuthChallenge.parse(h)
        #expect(c.count == 1)
        #expect(c[0].scheme == "bearer")
        #expect(c[0].realm == "http://127.0.0.1:1/token")
        #expect(c[0].service == "kiln-test")
        #expect(c[0].scopes == ["repository:a/b:pull", "repository:a/b:push"])
        #expect(c[0].parameters["error"] == "insufficient_scope")
    }

    @Test func parsesSeveralChallengesAndQuoting() {
        let c = AuthChallenge.parse(#"Basic realm="Registry \"x\", inc", Bearer realm=https://a/t , service=s"#)
        #expect(c.map(\.scheme) == ["basic", "bearer"])
        #expect(c[0].realm == #"Registry "x", inc"#)
        #expect(c[1].realm == "https://a/t" && c[1].service == "s")
        #expect(AuthChallenge.parse("").isEmpty)
    }

    @Test func credentialsNeverPrintTheSecret() {
        let c = Credentials(username: "alice", password: "s3cret-pw")
        #expect(!"\(c)".contains("s3cret"))
        #expect(c.basicHeader == "Basic " + Data("alice:s3cret-pw".utf8).base64EncodedString())
    }

    func withFile(_ json: String, _ body: (String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "kiln-cred-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try json.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try body(dir + "/config.json")
    }

    @Test func authsEntries() throws {
        let auth = Data("bob:pw:with:colons".utf8).base64EncodedString()
        try withFile(#"{"auths":{"127.0.0.1:5000":{"auth":"\#(auth)"},"https://index.docker.io/v1/":{"identitytoken":"tok"},"r.io/team":{"auth":"\#(Data("t:p".utf8).base64EncodedString())"}}}"#) { (f: String) throws in
            let store = CredentialStore(files: ["/nonexistent", f])
            #expect(try store.lookup(registry: "127.0.0.1:5000") == Credentials(username: "bob", password: "pw:with:colons"))
            #expect(try store.lookup(registry: "docker.io")?.identityToken == "tok")
            #expect(try store.lookup(registry: "r.io", repository: "team/app")?.username == "t")
            #expect(try store.lookup(registry: "r.io", repository: "other") == nil)
            #expect(try store.lookup(registry: "other:1") == nil)
        }
    }

    /// containers-auth.json(5): `registry/ns/repo`, then `registry/ns`, then `registry`;
    /// the first file with any match wins.
    @Test func perRepositoryEntriesMostSpecificFirst() throws {
        func auth(_ u: String) -> String { #"{"auth":"\#(Data((u + ":pw").utf8).base64EncodedString())"}"# }
        try withFile(#"{"auths":{"r.io/ns/repo":\#(auth("repo")),"r.io/ns":\#(auth("ns")),"r.io":\#(auth("reg")),"r.io/n":\#(auth("n"))}}"#) { (f: String) throws in
            let store = CredentialStore(files: [f])
            #expect(try store.lookup(registry: "r.io", repository: "ns/repo")?.username == "repo")
            #expect(try store.lookup(registry: "r.io", repository: "ns/repo/sub")?.username == "repo")
            #expect(try store.lookup(registry: "r.io", repository: "ns/other")?.username == "ns")
            #expect(try store.lookup(registry: "r.io", repository: "ns")?.username == "ns")
            #expect(try store.lookup(registry: "r.io", repository: "nsx/app")?.username == "reg")
            #expect(try store.lookup(registry: "r.io", repository: "other")?.username == "reg")
            #expect(try store.lookup(registry: "r.io")?.username == "reg")
            #expect(try store.cachedLookup(registry: "r.io", repository: "ns/other")?.username == "ns")
            // An earlier file's registry-wide entry beats a later file's specific one.
            try withFile(#"{"auths":{"r.io":\#(auth("first"))}}"#) { (first: String) throws in
                #expect(try CredentialStore(files: [first, f]).lookup(registry: "r.io", repository: "ns/repo")?.username == "first")
            }
        }
    }

    @Test func requestScopesNameTheRepository() {
        #expect(RegistryClient.repository(of: []) == nil)
        #expect(RegistryClient.repository(of: ["repository:a/b:pull"]) == "a/b")
        // A cross-repository mount: the destination (push) counts.
        #expect(RegistryClient.repository(of: ["repository:src/x:pull", "repository:dst/y:pull,push"]) == "dst/y")
        #expect(RegistryClient.repository(of: ["registry:catalog:*", "repository:a:push"]) == "a")
    }

    @Test func credentialHelpers() throws {
        try withFile(#"{"credHelpers":{"h.io":"fake"},"credsStore":"store"}"#) { (f: String) throws in
            let calls = LockedBox<[String]>([])
            let store = CredentialStore(files: [f]) { program, arg, input in
                calls.update { $0.append("\(program) \(arg) \(input)") }
                if program == "docker-credential-fake" { return #"{"ServerURL":"h.io","Username":"u","Secret":"p"}"# }
                return #"{"ServerURL":"x","Username":"<token>","Secret":"refresh"}"#
            }
            #expect(try store.lookup(registry: "h.io") == Credentials(username: "u", password: "p"))
            #expect(try store.lookup(registry: "g.io")?.identityToken == "refresh")
            #expect(calls.get() == ["docker-credential-fake get h.io", "docker-credential-store get g.io"])
        }
    }

    @Test func standardSearchOrder() {
        let s = CredentialStore.standard(authFile: "/a.json", environment: [
            "REGISTRY_AUTH_FILE": "/r.json", "XDG_RUNTIME_DIR": "/run/u", "DOCKER_CONFIG": "/d", "HOME": "/h",
        ])
        #expect(s.files == ["/a.json", "/r.json", "/run/u/containers/auth.json", "/d/config.json"])
        #expect(CredentialStore.dockerConfigPath(environment: ["HOME": "/h"]) == "/h/.docker/config.json")
    }

    @Test func loginAndLogoutKeepOtherKeys() throws {
        try withFile(#"{"credsStore":"","proxies":{"default":{}},"auths":{"other.io":{"auth":"eDp5"}}}"#) { (f: String) throws in
            let file = DockerConfigFile(path: f)
            try file.store(registry: "127.0.0.1:5000", credentials: Credentials(username: "u", password: "p"))
            var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: f))) as! [String: Any]
            #expect(json["proxies"] != nil)
            #expect((json["auths"] as! [String: Any]).keys.sorted() == ["127.0.0.1:5000", "other.io"])
            let attrs = try FileManager.default.attributesOfItem(atPath: f)
            #expect((attrs[.posixPermissions] as! NSNumber).intValue == 0o600)
            #expect(try CredentialStore(files: [f]).lookup(registry: "127.0.0.1:5000")?.password == "p")
            #expect(try file.remove(registry: "127.0.0.1:5000"))
            #expect(try !file.remove(registry: "127.0.0.1:5000"))
            json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: f))) as! [String: Any]
            #expect((json["auths"] as! [String: Any]).keys.sorted() == ["other.io"])
        }
    }

    /// A real credential helper (a shell script speaking docker-credential-helpers'
    /// protocol) that keeps what it is given in files beside it and logs each call.
    func withHelper(_ body: (_ dir: String, _ run: @escaping @Sendable (String, String, String) throws -> String) throws -> Void) throws {
        let dir = NSTemporaryDirectory() + "kiln-helper-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try fakeCredentialHelperScript.write(toFile: dir + "/docker-credential-kilntest", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir + "/docker-credential-kilntest")
        try body(dir) { program, argument, input in try CredentialStore.execHelper(dir + "/" + program, argument, input) }
    }

    @Test func loginAndLogoutThroughACredentialHelper() throws {
        try withHelper { helperDir, runHelper in
            let plain = Data("alice:old".utf8).base64EncodedString()
            try withFile(#"{"credsStore":"kilntest","credHelpers":{"other.io":""},"auths":{"127.0.0.1:5000":{"auth":"\#(plain)"}}}"#) { (f: String) throws in
                let file = DockerConfigFile(path: f, runHelper: runHelper)
                #expect(try file.helper(for: "127.0.0.1:5000") == "kilntest")
                #expect(try file.login(registry: "127.0.0.1:5000", credentials: Credentials(username: "alice", password: "n3w-secret")) == .helper("kilntest"))
                #expect(try file.login(registry: "docker.io", credentials: Credentials(username: "bob", password: "hub-pw")) == .helper("kilntest"))
                // The secret went to the helper's stdin; the plain entry is gone from the file.
                let config = try String(contentsOfFile: f, encoding: .utf8)
                #expect(!config.contains(plain) && !config.contains("n3w-secret") && config.contains("credsStore"))
                let kept = try String(contentsOfFile: helperDir + "/cred-127_0_0_1_5000", encoding: .utf8)
                #expect(kept == #"{"Secret":"n3w-secret","ServerURL":"127.0.0.1:5000","Username":"alice"}"#)

                let store = CredentialStore(files: [f], runHelper: runHelper)
                #expect(try store.lookup(registry: "127.0.0.1:5000") == Credentials(username: "alice", password: "n3w-secret"))
                #expect(try store.lookup(registry: "docker.io") == Credentials(username: "bob", password: "hub-pw"))
                #expect(try store.lookup(registry: "nobody.io") == nil)

                #expect(try file.logout(registry: "127.0.0.1:5000") == .helper("kilntest"))
                #expect(try file.logout(registry: "127.0.0.1:5000") == nil)
                // A store remembers its answers (one helper run per registry): a new one asks again.
                #expect(try store.lookup(registry: "127.0.0.1:5000") != nil)
                #expect(try CredentialStore(files: [f], runHelper: runHelper).lookup(registry: "127.0.0.1:5000") == nil)
                let calls = try String(contentsOfFile: helperDir + "/calls.log", encoding: .utf8).split(separator: "\n")
                #expect(calls == ["store 127.0.0.1:5000", "store https://index.docker.io/v1/", "get 127.0.0.1:5000",
                                  "get https://index.docker.io/v1/", "get nobody.io", "erase 127.0.0.1:5000", "erase 127.0.0.1:5000",
                                  "get 127.0.0.1:5000"])
            }
            // A registry's credHelpers entry wins over credsStore; with neither, auths.
            try withFile(#"{"credHelpers":{"h.io":"kilntest"}}"#) { (f: String) throws in
                let file = DockerConfigFile(path: f, runHelper: runHelper)
                #expect(try file.login(registry: "h.io", credentials: Credentials(username: "u", password: "p")) == .helper("kilntest"))
                #expect(try file.login(registry: "g.io", credentials: Credentials(username: "u", password: "p")) == .file(f))
                #expect(try CredentialStore(files: [f], runHelper: runHelper).lookup(registry: "h.io")?.password == "p")
            }
        }
    }

    @Test func helpers() {
        #expect(RegistryClient.parseRetryAfter("3") == 3)
        #expect(RegistryClient.parseRetryAfter("soon") == nil)
        #expect(RegistryClient.appendQuery("http://h/v2/x/blobs/uploads/u?_state=a", "digest=d") == "http://h/v2/x/blobs/uploads/u?_state=a&digest=d")
        #expect(RegistryClient.appendQuery("/u", "digest=d") == "/u?digest=d")
        #expect(RegistryClient.rangeStart("bytes 100-199/200") == 100)
        #expect(RegistryClient.scopeKey(["b", "a", "b"]) == "a b")
        #expect(RegistryClient.repositoryScope("a/b", push: true) == "repository:a/b:pull,push")
        let e = RegistryClient.httpError(status: 400, body: Array(#"{"errors":[{"code":"DIGEST_INVALID","message":"bad"}]}"#.utf8), what: "blob x")
        #expect("\(e)" == "blob x: HTTP 400 (DIGEST_INVALID: bad)")
    }
}

/// The credential helper the tests install (Tests/Fixtures/docker-credential-kilntest).
let fakeCredentialHelperScript: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<2 { url.deleteLastPathComponent() }
    return try! String(contentsOf: url.appendingPathComponent("Fixtures/docker-credential-kilntest"), encoding: .utf8)
}()
