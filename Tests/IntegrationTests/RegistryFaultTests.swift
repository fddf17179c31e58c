import Foundation
import Testing

/// A fault-injecting proxy between Kiln and the registry: resets mid-blob, 5xx, 429
/// with Retry-After, slow answers and a flipped byte.
@Suite(.serialized) struct RegistryFaultTests {
    struct Setup {
        let reg: TestRegistry
        let proxy: FaultProxy
        let env: KilnEnv
        let work: TempDir
        let layer: String
        var ref: String { "docker://\(proxy.host)/faults/img:1" }
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
        return Setup(reg: reg, proxy: try FaultProxy(upstream: reg.port), env: env, work: work, layer: layer)
    }

    @Test func connectionResetMidBlobResumesWithRange() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .resetAfter(bytes: 300_000))
        try s.env.kiln(["pull", s.ref, "-o", s.work.path + "/out", "--format", "oci"])
        let ranged = s.proxy.requests.filter { $0.target.contains(s.layer) && $0.range != nil }
        #expect(!ranged.isEmpty, "no Range request: \(s.proxy.requests)")
        #expect(ranged.allSatisfy { $0.range!.hasPrefix("bytes=") && $0.range != "bytes=0-" })
        try run("skopeo", ["inspect", "oci:\(s.work.path)/out:1"])
        #expect(s.env.leftovers.isEmpty)
    }

    @Test func serverErrorsAndTooManyRequestsAreRetried() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/manifests/", .status(500), times: 2)
        s.proxy.add("GET", "/blobs/\(s.layer)", .status(503))
        s.proxy.add("GET", "/blobs/", .tooManyRequests(retryAfter: 1))
        let start = Date()
        try s.env.kiln(["pull", s.ref, "-o", s.work.path + "/out.tar"])
        #expect(Date().timeIntervalSince(start) >= 1, "Retry-After was not honoured")
        #expect(s.proxy.requests.filter { $0.target.contains("/manifests/") }.count >= 3)

        // Pushing through failures: a failed upload is started again.
        s.proxy.add("PUT", "/blobs/uploads/", .status(500))
        s.proxy.add("PUT", "/manifests/", .status(502))
        try s.env.kiln(["push", "docker-archive:\(s.work.path)/out.tar", "docker://\(s.proxy.host)/faults/again:1"])
        try skopeoInspect("docker://\(s.reg.host)/faults/again:1")
    }

    @Test func slowAnswersTimeOutAndAreRetried() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .delay(seconds: 3))
        let r = try s.env.kiln(["pull", s.ref, "-o", s.work.path + "/out.tar"], extra: ["KILN_REGISTRY_READ_TIMEOUT": "1"])
        #expect(r.status == 0)
        #expect(s.proxy.requests.filter { $0.target.contains(s.layer) }.count >= 2)
    }

    @Test func aFlippedByteFailsThePullAndLeavesNothing() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .flipByte, times: 100)
        let out = s.work.path + "/out"
        let r = try s.env.kiln(["pull", s.ref, "-o", out, "--format", "oci"], check: false)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }
        #expect(lines.count == 1 && lines[0].contains(s.layer) && lines[0].contains("digest mismatch"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")
        let siblings = try FileManager.default.contentsOfDirectory(atPath: s.work.path).filter { $0.hasPrefix(".out") }
        #expect(siblings.isEmpty, "\(siblings)")

        // A tampered manifest under a pinned digest is refused too.
        let digest = (try parseJSON(try skopeoInspect("docker://\(s.reg.host)/faults/img:1")) as! [String: Any])["Digest"] as! String
        s.proxy.add("GET", "/manifests/\(digest)", .flipByte, times: 100)
        let m = try s.env.kiln(["pull", "docker://\(s.proxy.host)/faults/img@\(digest)", "-o", out], check: false)
        #expect(m.status == 1 && m.stderr.contains(digest), "\(m.stderr)")
    }

    @Test func aCutUploadResumesWhereTheRegistryStopped() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        let layout = s.work.path + "/layout"
        try s.env.kiln(["pull", "docker://\(s.reg.host)/faults/img:1", "-o", layout, "--format", "oci"])
        // 256 KiB chunks: the ~1 MB layer goes up in 4 PATCH requests; the third is cut
        // before the registry sees a byte of it.
        s.proxy.add("PATCH", "/blobs/uploads/", .resetWithoutForwarding, skip: 2)
        let dst = "docker://\(s.proxy.host)/faults/resumed:1"
        try s.env.kiln(["push", "oci:\(layout):1", dst], extra: ["KILN_REGISTRY_CHUNK_SIZE": "262144"])

        let patches = s.proxy.bodies.filter { $0.method == "PATCH" }
        let forwarded = patches.filter(\.forwarded)
        let cut = patches.filter { !$0.forwarded }
        #expect(cut.count == 1 && cut[0].contentRange == "524288-786431", "\(patches)")
        // Every byte reached the registry once: the two chunks before the cut were not sent again.
        let ranges = forwarded.compactMap(\.contentRange)
        #expect(ranges == ["0-262143", "262144-524287", "524288-786431", "786432-\(forwarded.map(\.bytes).reduce(0, +) - 1)"], "\(ranges)")
        // The upload's status was asked once, and the upload was not started again.
        let statusAsked = s.proxy.requests.filter { $0.method == "GET" && $0.target.contains("/blobs/uploads/") }
        #expect(statusAsked.count == 1, "\(s.proxy.requests)")
        let starts = s.proxy.requests.filter { $0.method == "POST" }
        #expect(starts.count == 2, "one upload each for the layer and the config: \(s.proxy.requests)")
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", "docker://\(s.reg.host)/faults/resumed:1", "oci:\(s.work.path)/check:1"])
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")
    }

    /// A docker-archive pull decompresses each layer as it arrives: a cut resumes with
    /// `Range`, a registry that then ignores the range is read on from where the
    /// transfer stopped, and a corrupted blob leaves nothing behind.
    @Test func dockerArchivePullsDecompressAsTheyArriveThroughCutsAndBadBytes() throws {
        let s = try setup()
        defer { s.proxy.stop() }
        s.proxy.add("GET", "/blobs/\(s.layer)", .resetAfter(bytes: 300_000))
        s.proxy.add("GET", "/blobs/\(s.layer)", .stripRange)
        let out = s.work.path + "/out.tar"
        try s.env.kiln(["pull", s.ref, "-o", out])
        let ranged = s.proxy.requests.filter { $0.target.contains(s.layer) && $0.range != nil }
        #expect(!ranged.isEmpty, "no Range request: \(s.proxy.requests)")
        // skopeo's pull of the same image has the same diffIDs.
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", "docker://\(s.reg.host)/faults/img:1", "docker-archive:\(s.work.path)/sk.tar:faults/img:1"])
        let layers = { (p: String) throws -> [String] in
            (try parseJSON(try run("skopeo", ["inspect", "docker-archive:\(p)"]).stdout) as! [String: Any])["Layers"] as! [String]
        }
        #expect(try layers(out) == layers(s.work.path + "/sk.tar"))
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")

        s.proxy.add("GET", "/blobs/\(s.layer)", .flipByte, times: 100)
        let bad = s.work.path + "/bad.tar"
        let r = try s.env.kiln(["pull", s.ref, "-o", bad], check: false)
        #expect(r.status == 1 && r.stderr.contains(s.layer), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bad))
        #expect(s.env.leftovers.isEmpty, "\(s.env.leftovers)")
    }
}
