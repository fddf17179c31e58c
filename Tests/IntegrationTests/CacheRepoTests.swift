import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `kiln build --cache-repo`: layers shared between machines (here: separate cache
/// directories) through the real distribution registry on 127.0.0.1.
@Suite(.serialized, .enabled(if: registryToolsPresent)) struct CacheRepoTests {
    @Test func aSecondMachineTakesEveryLayerAndPushesWithoutDownloading() throws {
        let reg = try TestRegistry()
        defer { stopRegistry(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeLayeredSpec(in: work)
        let repo = "docker://\(reg.host)/ci/cache"

        // OCI archives: gzip layers, as a push has (the compression is part of the key).
        let first = try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-a", "--cache-repo", repo])
        let (taken1, built1) = try summary(first.stderr)
        #expect(taken1 == 0)
        #expect(built1 >= 2, "\(first.stderr)")
        #expect(first.stderr.contains("cache repo \(reg.host)/ci/cache: pushed \(built1) layers"), "\(first.stderr)")
        let tags = try listTags("\(reg.host)/ci/cache")
        #expect(tags.count == built1 && tags.allSatisfy { $0.hasPrefix("kiln-cache-") && $0.count == 75 }, "\(tags)")

        // Another machine: an empty cache, the same inputs. No layer is built; the output
        // is the same to the byte.
        let second = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        let (taken2, built2) = try summary(second.stderr)
        #expect(taken2 == built1 && built2 == 0, "\(second.stderr)")
        #expect(second.stderr.components(separatedBy: "\n").filter { $0.contains(" from cache repo \(reg.host)/ci/cache") }.count == built1)
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        #expect(!second.stderr.contains("pushed"), "\(second.stderr)")
        // The taken layers are in its local cache now: a rebuild there asks the repo nothing.
        let again = try env.kiln(["build", spec, "-o", work.path + "/b2.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        #expect(!again.stderr.contains("cache repo"), "\(again.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("b2.tar"))

        // A third machine pushing to the same registry mounts the layers: not a byte is
        // downloaded, and the image is the one a machine building it all itself pushes.
        let third = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/ci/app:1", "--json",
                                  "--cache-dir", work.path + "/cache-c", "--cache-repo", repo])
        let (taken3, built3) = try summary(third.stderr)
        #expect(built3 == 0 && taken3 > 0, "\(third.stderr)")
        #expect(!third.stderr.contains("pulling blob"), "\(third.stderr)")
        #expect(third.stderr.contains("(mounted)"), "\(third.stderr)")
        let alone = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/ci/alone:1", "--json", "--cache-dir", work.path + "/cache-d"])
        let digest = { (s: String) in (try parseJSON(s) as! [String: Any])["manifestDigest"] as! String }
        #expect(try digest(third.stdout) == digest(alone.stdout))
        #expect(try skopeoInspect("docker://\(reg.host)/ci/app:1").contains(try digest(third.stdout)))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func readonlyTakesButPushesNothing() throws {
        let reg = try TestRegistry()
        defer { stopRegistry(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeLayeredSpec(in: work)
        let repo = "docker://\(reg.host)/ci/cache"

        let ro = try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--cache-dir", work.path + "/cache-a",
                               "--cache-repo", repo, "--cache-repo-readonly"])
        let (taken, built) = try summary(ro.stderr)
        #expect(taken == 0 && built >= 2, "\(ro.stderr)")
        #expect(!ro.stderr.contains("pushed") && !ro.stderr.contains("pushing blob"), "\(ro.stderr)")
        #expect(try listTags("\(reg.host)/ci/cache").isEmpty)

        // Filled by a trusted build, the repo serves a read-only one.
        try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        let tags = try listTags("\(reg.host)/ci/cache")
        let ro2 = try env.kiln(["build", spec, "-o", work.path + "/c.tar", "--cache-dir", work.path + "/cache-c",
                                "--cache-repo", repo, "--cache-repo-readonly"])
        let (taken2, built2) = try summary(ro2.stderr)
        #expect(taken2 == built && built2 == 0, "\(ro2.stderr)")
        #expect(try listTags("\(reg.host)/ci/cache") == tags)
        #expect(try work.bytes("a.tar") == work.bytes("c.tar"))

        // Usage errors.
        let noRepo = try env.kiln(["build", spec, "--cache-repo-readonly"], check: false)
        #expect(noRepo.status == 64, "\(noRepo)")
        let tagged = try env.kiln(["build", spec, "--cache-repo", repo + ":v1"], check: false)
        #expect(tagged.status == 64, "\(tagged)")
        let noCache = try env.kiln(["build", spec, "--cache-repo", repo, "--no-cache"], check: false)
        #expect(noCache.status == 64, "\(noCache)")
    }

    @Test func anUnreachableRepoOnlyCostsTheSharing() throws {
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeLayeredSpec(in: work)
        let port = try freePort()  // nobody listens there
        let r = try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--cache-dir", work.path + "/cache",
                              "--cache-repo", "docker://127.0.0.1:\(port)/ci/cache"])
        #expect(r.stderr.contains("cannot look layers up"), "\(r.stderr)")
        #expect(r.stderr.contains("warning: cache repo 127.0.0.1:\(port)/ci/cache: could not push"), "\(r.stderr)")
        try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--cache-dir", work.path + "/cache-plain"])
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func twoBuildsPushingAtOnceLoseNoEntry() throws {
        let reg = try TestRegistry()
        defer { stopRegistry(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let repo = "docker://\(reg.host)/ci/cache"
        // Two projects with one directory in common and their own ones.
        let specs = [try writeLayeredSpec(in: work, project: "one"), try writeLayeredSpec(in: work, project: "two")]
        let results = LockedResults()
        let (vars, dir) = (env.vars, work.path)
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let r = Result {
                try run(kilnPath, ["build", specs[i], "-o", dir + "/first-\(i).tar", "--cache-dir", dir + "/cache-\(i)",
                                   "--cache-repo", repo], env: vars)
            }
            results.set(i, r)
        }
        // Each image's layers, whether that build made them or (when the other build
        // pushed first) took them from the repo.
        var layers: [Int] = []
        var first: [String] = []
        for i in 0..<2 {
            let r = try #require(try results.get(i)?.get())
            let (taken, built) = try summary(r.stderr)
            layers.append(taken + built)
            first.append(r.stderr)
        }
        // Every layer either build made is in the repo: fresh machines take them.
        for i in 0..<2 {
            let r = try env.kiln(["build", specs[i], "-o", work.path + "/second-\(i).tar", "--cache-dir", work.path + "/fresh-\(i)",
                                  "--cache-repo", repo])
            let (taken, rebuilt) = try summary(r.stderr)
            // A lookup that the loaded registry answers too late counts as a miss (by
            // design: the cache repo only ever saves work), so under a full parallel test
            // run a fresh machine may build a layer the repo has; that no entry was lost
            // is checked on the repository's tags below.
            #expect(taken + rebuilt == layers[i] && taken >= 1, "\(r.stderr)\nfirst builds:\n\(first.joined(separator: "\n---\n"))")
            #expect(try work.bytes("first-\(i).tar") == work.bytes("second-\(i).tar"))
        }
        // The shared directory's layer is one entry, the others one each.
        #expect(try listTags("\(reg.host)/ci/cache").count == layers[0] + layers[1] - 1)
    }

    @Test func aTamperedLayerIsRebuiltNotTrusted() throws {
        let reg = try TestRegistry()
        defer { stopRegistry(reg) }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeLayeredSpec(in: work)
        let repo = "docker://\(reg.host)/ci/cache"
        try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--cache-dir", work.path + "/cache-a", "--cache-repo", repo])

        // One byte of the biggest layer blob flipped in the registry's storage, its size kept.
        let blobs = reg.dir.path + "/data/docker/registry/v2/blobs/sha256"
        var biggest: (path: String, size: Int) = ("", 0)
        for prefix in try FileManager.default.contentsOfDirectory(atPath: blobs) {
            for hex in try FileManager.default.contentsOfDirectory(atPath: blobs + "/" + prefix) {
                let p = blobs + "/" + prefix + "/" + hex + "/data"
                let size = (try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0
                if size > biggest.size { biggest = (p, size) }
            }
        }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: biggest.path)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: biggest.path))

        let b = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        #expect(b.stderr.contains("failed verification") && b.stderr.contains("building it"), "\(b.stderr)")
        #expect(b.stderr.contains("digest mismatch"), "\(b.stderr)")
        let (_, built) = try summary(b.stderr)
        #expect(built == 1, "\(b.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}

/// Stops the registry with SIGKILL: a child of the test process may have SIGTERM blocked.
private func stopRegistry(_ reg: TestRegistry) {
    if reg.process.isRunning {
        kill(reg.process.processIdentifier, SIGKILL)
        reg.process.waitUntilExit()
    }
}

/// A spec of three directories as `source:` items with `layering: auto` (a layer each),
/// one of them with incompressible bytes. `project` names a variant with a directory
/// of its own besides the shared ones.
private func writeLayeredSpec(in work: TempDir, project: String = "app") throws -> String {
    try work.write("shared/etc/shared.conf", "shared\n")
    try work.write("\(project)/srv/\(project)/hello", "hello from \(project)\n")
    let big = work.path + "/\(project)-big/opt/big.bin"
    try FileManager.default.createDirectory(atPath: (big as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    if !FileManager.default.fileExists(atPath: big) {
        var g = SystemRandomNumberGenerator()
        try Data((0..<200_000).map { _ in UInt8.random(in: 0...255, using: &g) }).write(to: URL(fileURLWithPath: big))
    }
    try work.write("\(project).yaml", """
        name: kiln-test/\(project)
        tag: v1
        layering: auto
        contents:
          - source: shared
          - source: \(project)
          - source: \(project)-big
        config:
          Cmd: ["/bin/true"]
        """)
    return work.path + "/\(project).yaml"
}

/// The build's "cache repo …: N layers from the repo, M built" line.
private func summary(_ stderr: String) throws -> (taken: Int, built: Int) {
    let line = try #require(stderr.split(separator: "\n").first { $0.contains(" from the repo, ") }, "\(stderr)")
    let words = line.split(separator: " ")
    let fromIndex = try #require(words.firstIndex(of: "from"))
    let builtIndex = try #require(words.lastIndex(of: "built"))
    return (try #require(Int(words[fromIndex - 2])), try #require(Int(words[builtIndex - 1])))
}

/// The repository's tags (none when it does not exist yet).
private func listTags(_ repo: String) throws -> [String] {
    let r = try run("skopeo", ["list-tags", "--tls-verify=false", "docker://" + repo], check: false)
    guard r.status == 0 else { return [] }
    return ((try parseJSON(r.stdout) as! [String: Any])["Tags"] as? [String] ?? []).sorted()
}

/// Results of builds run at once.
private final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Result<RunResult, any Error>] = [:]
    func set(_ i: Int, _ r: Result<RunResult, any Error>) { lock.withLock { values[i] = r } }
    func get(_ i: Int) -> Result<RunResult, any Error>? { lock.withLock { values[i] } }
}
