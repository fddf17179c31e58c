import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `kiln build --cache-repo`: the repo is given the layers a machine had in its local
/// cache before it used the repo, and a blob found corrupt in the repo is replaced (or
/// one warning says why it cannot be). Against the real distribution registry.
@Suite(.serialized, .enabled(if: registryToolsPresent)) struct CacheRepoRepairTests {
    @Test func layersTheLocalCacheHadAreGivenToARepoThatLacksThem() throws {
        let reg = try TestRegistry()
        defer { killRegistry(reg.process) }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeSharedSpec(in: work)
        let repo = "docker://\(reg.host)/ci/cache"
        let cacheA = work.path + "/cache-a"

        // A machine that built before the repo existed.
        try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--format", "oci-archive", "--cache-dir", cacheA])
        // A read-only build takes the repo's layers but gives it none of the local cache's.
        let ro = try env.kiln(["build", spec, "-o", work.path + "/ro.tar", "--format", "oci-archive", "--cache-dir", cacheA,
                               "--cache-repo", repo, "--cache-repo-readonly"])
        #expect(!ro.stderr.contains("pushed"), "\(ro.stderr)")
        #expect(try repoTags("\(reg.host)/ci/cache").isEmpty)

        // With the repo: every layer is a local hit, none is built, all are pushed.
        let first = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--format", "oci-archive", "--cache-dir", cacheA, "--cache-repo", repo])
        #expect(!first.stderr.contains(" from the repo, "), "nothing was looked up: \(first.stderr)")
        let tags = try repoTags("\(reg.host)/ci/cache")
        #expect(tags.count >= 3 && first.stderr.contains("cache repo \(reg.host)/ci/cache: pushed \(tags.count) layers"), "\(tags) \(first.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))

        // Again: a HEAD per layer finds them all; nothing is pushed, nothing said.
        let again = try env.kiln(["build", spec, "-o", work.path + "/c.tar", "--format", "oci-archive", "--cache-dir", cacheA, "--cache-repo", repo])
        #expect(!again.stderr.contains("cache repo"), "\(again.stderr)")

        // A fresh machine takes every layer from the repo.
        let fresh = try env.kiln(["build", spec, "-o", work.path + "/d.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        #expect(fresh.stderr.contains("cache repo \(reg.host)/ci/cache: \(tags.count) layers from the repo, 0 built"), "\(fresh.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("d.tar"))

        // One tag deleted from the repo (as by a retention policy): the next build with
        // the full local cache gives it back, only it.
        let digest = try #require(try manifestDigest("\(reg.host)/ci/cache:\(tags[0])"))
        let del = try run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", "http://\(reg.host)/v2/ci/cache/manifests/\(digest)"])
        #expect(del.stdout == "202")
        let refill = try env.kiln(["build", spec, "-o", work.path + "/e.tar", "--format", "oci-archive", "--cache-dir", cacheA, "--cache-repo", repo])
        #expect(refill.stderr.contains("cache repo \(reg.host)/ci/cache: pushed 1 layer\n"), "\(refill.stderr)")
        #expect(try repoTags("\(reg.host)/ci/cache") == tags)
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    /// Bytes corrupted on the way from the repo (both tries of the download): the
    /// build deletes the blob, uploads it again and finds the registry serving the
    /// right bytes.
    @Test func aBlobFoundCorruptIsReplacedWhenTheRegistryAllows() throws {
        let reg = try TestRegistry()
        defer { killRegistry(reg.process) }
        let proxy = try FaultProxy(upstream: reg.port)
        defer { proxy.stop() }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeSharedSpec(in: work)
        let repo = "docker://\(proxy.host)/ci/cache"
        try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-a", "--cache-repo", repo])
        let layer = try biggestBlob(reg).digest
        proxy.add("GET", "/blobs/\(layer)", .flipByte, times: 2)

        let b = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        #expect(b.stderr.contains("layer \(layer) failed verification") && b.stderr.contains("(downloaded twice): digest mismatch"), "\(b.stderr)")
        #expect(b.stderr.contains("cache repo \(proxy.host)/ci/cache: replaced the corrupt blob \(layer)"), "\(b.stderr)")
        #expect(!b.stderr.contains("warning"), "\(b.stderr)")
        #expect(proxy.requests.contains { $0.method == "DELETE" && $0.target.hasSuffix("/blobs/\(layer)") }, "\(proxy.requests)")
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        // A third machine takes it.
        let c = try env.kiln(["build", spec, "-o", work.path + "/c.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-c", "--cache-repo", repo])
        #expect(c.stderr.contains(" 0 built"), "\(c.stderr)")
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    /// A blob corrupt in the registry's own storage: docker-registry keeps the bytes it
    /// stored under a digest (an upload of that digest stores nothing; a DELETE only
    /// unlinks it from the repository), so the build says so in one warning naming the
    /// blob, and still succeeds.
    @Test func aBlobCorruptInTheRegistrysStorageIsOneWarning() throws {
        let reg = try TestRegistry()
        defer { killRegistry(reg.process) }
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeSharedSpec(in: work)
        let repo = "docker://\(reg.host)/ci/cache"
        try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-a", "--cache-repo", repo])
        let (path, layer) = try biggestBlob(reg)
        try flipByte(path)

        let b = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        #expect(b.stderr.contains("layer \(layer) failed verification"), "\(b.stderr)")
        let warnings = b.stderr.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings.count == 1 && warnings[0].contains("blob \(layer) is still corrupt after it was deleted and uploaded again"), "\(b.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        // The repository still lists the blob (the upload linked it again) and the tag.
        let head = try run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-I", "http://\(reg.host)/v2/ci/cache/blobs/\(layer)"])
        #expect(head.stdout == "200")
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    /// The same with deletes disabled (docker-registry's default): one warning saying so.
    @Test func aCorruptBlobARegistryWillNotDeleteIsOneWarning() throws {
        let dir = try TempDir()
        let port = try freePort()
        try dir.write("config.yml", """
            version: 0.1
            log: {level: error}
            storage:
              filesystem: {rootdirectory: \(dir.path)/data}
            http:
              addr: 127.0.0.1:\(port)

            """)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", dir.path + "/config.yml"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        defer { killRegistry(process) }
        try waitForPort(port)
        let host = "127.0.0.1:\(port)"

        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeSharedSpec(in: work)
        let repo = "docker://\(host)/ci/cache"
        try env.kiln(["build", spec, "-o", work.path + "/a.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-a", "--cache-repo", repo])
        let (path, layer) = try biggestBlob(storage: dir.path + "/data")
        try flipByte(path)

        let b = try env.kiln(["build", spec, "-o", work.path + "/b.tar", "--format", "oci-archive", "--cache-dir", work.path + "/cache-b", "--cache-repo", repo])
        let warnings = b.stderr.split(separator: "\n").filter { $0.contains("warning") }
        #expect(warnings.count == 1 && warnings[0].contains("cache repo \(host)/ci/cache: blob \(layer) is corrupt there and cannot be replaced: the registry does not allow deleting blobs"), "\(b.stderr)")
        #expect(try work.bytes("a.tar") == work.bytes("b.tar"))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}

/// Stops a registry with SIGKILL: a child of the test process may have SIGTERM blocked.
private func killRegistry(_ p: Process) {
    if p.isRunning {
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }
}

/// The biggest blob in a registry's filesystem storage: its data file and digest.
private func biggestBlob(_ reg: TestRegistry) throws -> (path: String, digest: String) {
    try biggestBlob(storage: reg.dir.path + "/data")
}

private func biggestBlob(storage: String) throws -> (path: String, digest: String) {
    let blobs = storage + "/docker/registry/v2/blobs/sha256"
    var biggest: (path: String, digest: String, size: Int) = ("", "", 0)
    for prefix in try FileManager.default.contentsOfDirectory(atPath: blobs) {
        for hex in try FileManager.default.contentsOfDirectory(atPath: blobs + "/" + prefix) {
            let p = blobs + "/" + prefix + "/" + hex + "/data"
            let size = (try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0
            if size > biggest.size { biggest = (p, "sha256:" + hex, size) }
        }
    }
    return (biggest.path, biggest.digest)
}

/// Flips one byte in the middle of a file, its size kept.
private func flipByte(_ path: String) throws {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    bytes[bytes.count / 2] ^= 0x01
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A spec of three directories as `source:` items with `layering: auto` (a layer each),
/// one of them with incompressible bytes.
private func writeSharedSpec(in work: TempDir) throws -> String {
    try work.write("shared/etc/shared.conf", "shared\n")
    try work.write("app/srv/app/hello", "hello from app\n")
    let big = work.path + "/big/opt/big.bin"
    try FileManager.default.createDirectory(atPath: (big as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    var g = SystemRandomNumberGenerator()
    try Data((0..<200_000).map { _ in UInt8.random(in: 0...255, using: &g) }).write(to: URL(fileURLWithPath: big))
    try work.write("app.yaml", """
        name: kiln-test/app
        tag: v1
        layering: auto
        contents:
          - source: shared
          - source: app
          - source: big
        config:
          Cmd: ["/bin/true"]
        """)
    return work.path + "/app.yaml"
}

/// The repository's tags, sorted (none when it does not exist yet).
private func repoTags(_ repo: String) throws -> [String] {
    let r = try run("skopeo", ["list-tags", "--tls-verify=false", "docker://" + repo], check: false)
    guard r.status == 0 else { return [] }
    return ((try parseJSON(r.stdout) as! [String: Any])["Tags"] as? [String] ?? []).sorted()
}

/// The digest of a manifest, by `HEAD`.
private func manifestDigest(_ ref: String) throws -> String? {
    let slash = ref.firstIndex(of: "/")!
    let host = ref[..<slash]
    let rest = ref[ref.index(after: slash)...]
    let colon = rest.lastIndex(of: ":")!
    let r = try run("curl", ["-s", "-I", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                             "http://\(host)/v2/\(rest[..<colon])/manifests/\(rest[rest.index(after: colon)...])"])
    return r.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }
        .map { $0.split(separator: " ")[1].trimmingCharacters(in: .whitespaces) }
}
