import Foundation
import Testing

/// A blob whose bytes arrive with the wrong digest is downloaded once more from the
/// start (as skopeo and containerd retry a failed verification); a second mismatch is
/// one line naming the blob, exit 1, nothing written. Through the fault proxy in
/// front of the real distribution registry.
@Suite(.serialized, .enabled(if: registryToolsPresent)) struct BlobVerificationRetryTests {
    struct Setup {
        let reg: TestRegistry
        let proxy: FaultProxy
        let env: KilnEnv
        let work: TempDir
        let layer: String
        let config: String
        var ref: String { "docker://\(proxy.host)/faults/img:1" }
        func gets(_ digest: String) -> Int { proxy.requests.filter { $0.method == "GET" && $0.target.contains("/blobs/\(digest)") }.count }
    }

    /// A registry holding an image with a ~1 MiB layer, and a proxy in front of it.
    func setup() throws -> Setup {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, bigBytes: 1_000_000)
        let out = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/faults/img:1", "--json"])
        let w = try parseJSON(out.stdout) as! [String: Any]
        let layer = ((w["layers"] as! [[String: Any]])[0]["digest"] as! String)
        let raw = try parseJSON(try run("skopeo", ["inspect", "--raw", "--tls-verify=false", "docker://\(reg.host)/faults/img:1"]).stdout) as! [String: Any]
        let config = (raw["config"] as! [String: Any])["digest"] as! String
        return Setup(reg: reg, proxy: try FaultProxy(upstream: reg.port), env: env, work: work, layer: layer, config: config)
    }

    /// The bytes of a blob in an OCI layout.
    func blob(_ layout: String, _ digest: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: layout + "/blobs/sha256/" + digest.dropFirst("sha256:".count)))
    }

    @Test func aByteFlippedOnceIsDownloadedAgainAndThePullSucceeds() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .flipByte)
        s.proxy.add("GET", "/blobs/\(s.config)", .flipByte)
        let out = s.work.path + "/out"
        let r = try s.env.kiln(["pull", s.ref, "-o", out, "--format", "oci"])
        #expect(!r.stderr.contains("error"), "\(r.stderr)")
        #expect(s.gets(s.layer) == 2 && s.gets(s.config) == 2, "\(s.proxy.requests)")
        // The same bytes as skopeo's copy of the image straight from the registry.
        let sk = s.work.path + "/sk"
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", "docker://\(s.reg.host)/faults/img:1", "oci:\(sk):1"])
        #expect(try blob(out, s.layer) == blob(sk, s.layer))
        #expect(try blob(out, s.config) == blob(sk, s.config))
        try run("skopeo", ["inspect", "oci:\(out):1"])
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")

        // A docker-archive pull decompresses as the bytes arrive: the corrupt first try's
        // decompressor is thrown away and the layer decompressed again from the start.
        s.proxy.add("GET", "/blobs/\(s.layer)", .flipByte)
        let tar = s.work.path + "/out.tar"
        try s.env.kiln(["pull", s.ref, "-o", tar])
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", "docker://\(s.reg.host)/faults/img:1", "docker-archive:\(s.work.path)/sk.tar:faults/img:1"])
        let layers = { (p: String) throws -> [String] in
            (try parseJSON(try run("skopeo", ["inspect", "docker-archive:\(p)"]).stdout) as! [String: Any])["Layers"] as! [String]
        }
        #expect(try layers(tar) == layers(s.work.path + "/sk.tar"))
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")
    }

    @Test func aBlobCorruptEveryTimeFailsAfterTwoTriesAndLeavesNothing() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .flipByte, times: 100)
        for (format, out) in [("oci", s.work.path + "/out"), ("docker-archive", s.work.path + "/out.tar")] {
            let before = s.gets(s.layer)
            let r = try s.env.kiln(["pull", s.ref, "-o", out, "--format", format], check: false)
            #expect(r.status == 1, "\(r)")
            let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }
            #expect(lines.count == 1, "\(r.stderr)")
            let line = String(lines.first ?? "")
            #expect(line.contains("blob \(s.layer) from \(s.proxy.host)/faults/img (downloaded twice): digest mismatch (expected \(s.layer), got sha256:"), "\(line)")
            #expect(s.gets(s.layer) - before == 2, "\(s.proxy.requests)")
            #expect(!FileManager.default.fileExists(atPath: out))
            #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")
        }
        let siblings = try FileManager.default.contentsOfDirectory(atPath: s.work.path).filter { $0.hasPrefix(".out") }
        #expect(siblings.isEmpty, "\(siblings)")

        // A config corrupt every time: the same, before any layer is fetched.
        s.proxy.add("GET", "/blobs/\(s.config)", .flipByte, times: 100)
        let before = s.gets(s.config)
        let cfg = try s.env.kiln(["pull", s.ref, "-o", s.work.path + "/cfg.tar"], check: false)
        #expect(cfg.status == 1 && cfg.stderr.contains("blob \(s.config) from \(s.proxy.host)/faults/img (downloaded twice): digest mismatch (expected \(s.config), got sha256:"), "\(cfg.stderr)")
        #expect(s.gets(s.config) - before == 2)
        #expect(!FileManager.default.fileExists(atPath: s.work.path + "/cfg.tar"))

        // kiln copy between registries goes through the same download.
        let c = try s.env.kiln(["copy", s.ref, "docker://\(s.reg.host)/faults/copied:1"], check: false)
        #expect(c.status == 1 && c.stderr.contains("(downloaded twice): digest mismatch"), "\(c.stderr)")
    }
}
