import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `fromImage: docker://…`: a base read from the real distribution registry, lazily,
/// with its layers reused byte for byte in a docker-archive and in a push.
@Suite(.serialized, .enabled(if: registryToolsPresent)) struct RegistryBaseTests {
    @Test func buildsOnARegistryBaseToAnArchiveAndToTheRegistry() throws {
        let reg = try TestRegistry()
        defer { stopHard(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let base = try pushBase(env: env, to: "docker://\(reg.host)/kiln/base:1", in: work)

        // contents + users: the users force a flatten of the base, which reads its layers.
        let spec = try writeAppSpec(in: work, from: "docker://\(reg.host)/kiln/base:1", users: true)
        let built = try env.kiln(["build", spec, "-o", work.path + "/app.tar"])
        let notices = built.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: fromImage") }
        #expect(notices == ["kiln: fromImage docker://\(reg.host)/kiln/base:1 is \(base.digest); pin it with @\(base.digest)"],
                "\(built.stderr)")
        // Flattening the base for the users read its layer from the registry.
        #expect(built.stderr.contains("pulling blob"), "\(built.stderr)")

        // The base layers are there byte for byte (a docker-archive stores the tars whose
        // sha256 is the diffID), the new content on top.
        let archive = try unpackArchive(work.path + "/app.tar", in: work)
        #expect(Array(archive.diffIDs.prefix(base.diffIDs.count)) == base.diffIDs)
        #expect(archive.diffIDs.count > base.diffIDs.count)
        for (i, layer) in archive.layerFiles.enumerated() {
            #expect("sha256:" + (try run("sha256sum", [layer]).stdout.prefix(64)) == archive.diffIDs[i])
        }
        let newFiles = try archive.layerFiles.dropFirst(base.diffIDs.count).flatMap {
            try run("tar", ["tf", $0]).stdout.split(separator: "\n").map(String.init)
        }
        #expect(newFiles.contains("srv/hello"), "\(newFiles)")
        let passwd = try archive.layerFiles.dropFirst(base.diffIDs.count).map {
            try run("tar", ["-xOf", $0, "etc/passwd"], check: false).stdout
        }.joined()
        #expect(passwd.contains("app:x:1000:1000:"), "\(passwd)")
        // The base's own file comes from its layer, not a copy on top.
        #expect(!newFiles.contains("etc/marker"), "\(newFiles)")

        // To the same registry: the base's blobs are mounted or found, never re-pushed.
        let pushed = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/kiln/app:2", "--json"])
        let digest = (try parseJSON(pushed.stdout) as! [String: Any])["manifestDigest"] as! String
        let info = try parseJSON(try skopeoInspect("docker://\(reg.host)/kiln/app:2")) as! [String: Any]
        #expect(info["Digest"] as? String == digest)
        let layers = info["Layers"] as! [String]
        #expect(Array(layers.prefix(base.layers.count)) == base.layers)
        let config = try parseJSON(try skopeoInspect("docker://\(reg.host)/kiln/app:2", extra: ["--config"])) as! [String: Any]
        let diffIDs = (config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        #expect(Array(diffIDs.prefix(base.diffIDs.count)) == base.diffIDs)
        #expect(diffIDs.count == archive.diffIDs.count)
        for l in base.layers {
            #expect(!pushed.stderr.contains("pushing blob \(l.dropFirst(7).prefix(12))"), "\(pushed.stderr)")
        }
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func layersAreFetchedOnlyWhenTheirBytesAreNeeded() throws {
        let reg = try TestRegistry()
        defer { stopHard(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let base = try pushBase(env: env, to: "docker://\(reg.host)/kiln/base:1", in: work)

        // Pinned by digest: nothing to print. The first build reads the base's layers once
        // for the checks of its contents against the base, and keeps their listings in
        // the cache; after that, with no users, nothing reads the base's layers, and the
        // push finds them in the registry, so none is downloaded.
        let spec = try writeAppSpec(in: work, from: "docker://\(reg.host)/kiln/base@\(base.digest)", users: false)
        let cache = ["--cache-dir", work.path + "/cache"]
        let first = try env.kiln(["build", spec, "-o", work.path + "/first.tar"] + cache)
        #expect(first.stderr.contains("pulling blob"), "\(first.stderr)")
        let pushed = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/kiln/app:1"] + cache)
        #expect(!pushed.stderr.contains("fromImage"), "\(pushed.stderr)")
        #expect(!pushed.stderr.contains("pulling blob"), "\(pushed.stderr)")
        let config = try parseJSON(try skopeoInspect("docker://\(reg.host)/kiln/app:1", extra: ["--config"])) as! [String: Any]
        let diffIDs = (config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        #expect(Array(diffIDs.prefix(base.diffIDs.count)) == base.diffIDs)
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func behindTokenAuthWithStoredCredentials() throws {
        let tokens = try TokenServer()
        defer { tokens.stop() }
        let reg = try TestRegistry(tokens: tokens)
        defer { stopHard(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        // Credentials go to the environment's Docker config, never on a command line.
        try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"], stdin: TokenServer.password + "\n")
        let base = try pushBase(env: env, to: "docker://\(reg.host)/team/base:1", in: work)

        let spec = try writeAppSpec(in: work, from: "docker://\(reg.host)/team/base:1", users: true)
        let before = tokens.calls.count
        let built = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/team/app:1", "--json"])
        let calls = tokens.calls[before...]
        #expect(calls.contains { $0.user == "alice" && $0.scopes.contains("repository:team/base:pull") }, "\(calls.map(\.scopes))")
        #expect(calls.allSatisfy { $0.user == "alice" })
        #expect(!(built.stdout + built.stderr).contains(TokenServer.password))
        #expect(!(built.stdout + built.stderr).contains("tok-"))
        let config = try parseJSON(try skopeoInspect("docker://\(reg.host)/team/app:1", extra: ["--config", "--creds", "alice:\(TokenServer.password)"])) as! [String: Any]
        let diffIDs = (config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        #expect(Array(diffIDs.prefix(base.diffIDs.count)) == base.diffIDs)

        // Rejected credentials: one line naming the spec location and the image, no secret.
        let out = work.path + "/rejected.tar"
        let rejected = try env.kiln(["build", spec, "-o", out, "--creds", "alice:not-the-pa55"], check: false)
        #expect(rejected.status == 1)
        let lines = rejected.stderr.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("image.yaml:3: fromImage: ") && lines[0].contains("team/base"), "\(rejected.stderr)")
        #expect(!rejected.stderr.contains("not-the-pa55"))
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func badBasesFailOnOneLineAndWriteNothing() throws {
        let reg = try TestRegistry()
        defer { stopHard(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        _ = try pushBase(env: env, to: "docker://\(reg.host)/kiln/base:1", in: work)

        func expectOneLineFailure(from: String, extraSpec: String = "", mentions: [String], env: KilnEnv,
                                  vars: [String: String] = [:]) throws {
            let spec = try writeAppSpec(in: work, from: from, users: true, extra: extraSpec)
            let out = work.path + "/out.tar"
            let r = try env.kiln(["build", spec, "-o", out], extra: vars, check: false)
            #expect(r.status == 1, "\(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(r.stderr)")
            #expect(lines.first?.hasPrefix("kiln: error: \(spec):3: fromImage: ") == true, "\(r.stderr)")
            for m in mentions { #expect(r.stderr.contains(m), "\(r.stderr)") }
            #expect(!FileManager.default.fileExists(atPath: out))
            let pushRef = "docker://\(reg.host)/kiln/never:1"
            let p = try env.kiln(["build", spec, "--push", pushRef], extra: vars, check: false)
            #expect(p.status == 1 && p.stderr.split(separator: "\n").count == 1, "\(p.stderr)")
        }

        // An unknown tag.
        try expectOneLineFailure(from: "docker://\(reg.host)/kiln/base:nope", mentions: ["\(reg.host)/kiln/base:nope", "not found"], env: env)
        // A registry nobody answers on. The HTTP client keeps trying to connect for the
        // connect timeout (30 s by default), so the test shortens it.
        let dead = try freePort()
        try expectOneLineFailure(from: "docker://127.0.0.1:\(dead)/kiln/base:1", mentions: ["docker://127.0.0.1:\(dead)/kiln/base:1", "cannot reach"],
                                 env: env, vars: ["KILN_REGISTRY_CONNECT_TIMEOUT": "1"])
        // fromImageName/fromImageTag choose within archives only.
        try expectOneLineFailure(from: "docker://\(reg.host)/kiln/base:1", extraSpec: "fromImageTag: \"1\"\n",
                                 mentions: ["fromImageName and fromImageTag only choose among the images of an archive or layout"], env: env)
        // An invalid reference.
        try expectOneLineFailure(from: "docker://\(reg.host)/Kiln/base:1", mentions: ["must be lowercase"], env: env)
        // Nothing was pushed by the failed builds.
        #expect(try run("skopeo", ["inspect", "--tls-verify=false", "docker://\(reg.host)/kiln/never:1"], check: false).status != 0)
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}

let registryToolsPresent = FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")

/// Stops the registry with SIGKILL: a child of the test process may have SIGTERM blocked.
private func stopHard(_ reg: TestRegistry) {
    if reg.process.isRunning {
        kill(reg.process.processIdentifier, SIGKILL)
        reg.process.waitUntilExit()
    }
}

/// What a pushed base is: its manifest digest, layer blob digests and diffIDs.
private struct PushedBase {
    var digest: String
    var layers: [String]
    var diffIDs: [String]
}

/// Builds a small base with `kiln build` (a marker file and some incompressible bytes)
/// and pushes it to `ref`.
private func pushBase(env: KilnEnv, to ref: String, in work: TempDir) throws -> PushedBase {
    let dir = try TempDir()
    let spec = try writeFilesSpec(in: dir, name: "kiln-test/base", bigBytes: 30_000, marker: "base")
    let pushed = try env.kiln(["build", spec, "--push", ref, "--json"])
    let digest = (try parseJSON(pushed.stdout) as! [String: Any])["manifestDigest"] as! String
    let auth = ref.contains("/team/") ? ["--creds", "alice:\(TokenServer.password)"] : []
    let info = try parseJSON(try skopeoInspect(ref, extra: auth)) as! [String: Any]
    let config = try parseJSON(try skopeoInspect(ref, extra: ["--config"] + auth)) as! [String: Any]
    return PushedBase(digest: digest, layers: info["Layers"] as! [String],
                      diffIDs: (config["rootfs"] as! [String: Any])["diff_ids"] as! [String])
}

/// `image.yaml` with `fromImage` on line 3, a file under /srv and optionally a user.
private func writeAppSpec(in work: TempDir, from: String, users: Bool, extra: String = "") throws -> String {
    try work.write("app/files/srv/hello", "hello\n")
    try work.write("app/image.yaml", """
        name: kiln-test/app
        tag: "2"
        fromImage: \(from)
        \(extra)contents:
          - files
        \(users ? "users:\n  - name: app\n    uid: 1000\n" : "")
        """)
    return work.path + "/app/image.yaml"
}

/// A docker-archive unpacked: its layer tars in order and the config's diffIDs.
private func unpackArchive(_ path: String, in work: TempDir) throws -> (layerFiles: [String], diffIDs: [String]) {
    let dir = work.path + "/unpacked-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    try run("tar", ["-xf", path, "-C", dir])
    let manifest = (try parseJSON(String(contentsOfFile: dir + "/manifest.json", encoding: .utf8)) as! [[String: Any]])[0]
    let config = try parseJSON(String(contentsOfFile: dir + "/" + (manifest["Config"] as! String), encoding: .utf8)) as! [String: Any]
    return ((manifest["Layers"] as! [String]).map { dir + "/" + $0 },
            (config["rootfs"] as! [String: Any])["diff_ids"] as! [String])
}
