import Foundation
import Testing

/// Kiln against the real CNCF distribution registry, anonymous, with skopeo checking
/// both directions.
@Suite(.serialized) struct RegistryTests {
    @Test func buildPushPullRoundTripMatchesSkopeo() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 100_000)
        let ref = "docker://\(reg.host)/kiln/files:v1"

        let pushed = try env.kiln(["build", spec, "--push", ref, "--json"])
        let written = try parseJSON(pushed.stdout) as! [String: Any]
        let digest = written["manifestDigest"] as! String
        let info = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
        #expect(info["Digest"] as? String == digest)

        // Kiln pulls what it pushed; the OCI layout keeps the manifest byte for byte.
        let pulled = try env.kiln(["pull", ref, "-o", src.path + "/layout", "--format", "oci", "--json"])
        let report = try parseJSON(pulled.stdout) as! [String: Any]
        #expect(report["digest"] as? String == digest)
        #expect(report["reference"] as? String == ref)
        let local = try parseJSON(try run("skopeo", ["inspect", "oci:\(src.path)/layout:v1"]).stdout) as! [String: Any]
        #expect(local["Digest"] as? String == digest)
        try env.kiln(["pull", ref, "-o", src.path + "/img.tar", "-q"])
        try run("skopeo", ["inspect", "docker-archive:\(src.path)/img.tar"])

        // skopeo copies it out with the same digest.
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", ref, "oci:\(src.path)/sk:v1"])
        let index = try parseJSON(String(decoding: try src.bytes("sk/index.json"), as: UTF8.self)) as! [String: Any]
        #expect(((index["manifests"] as! [[String: Any]])[0]["digest"] as? String) == digest)

        // A second build --push finds every blob in the registry and uploads none.
        let again = try env.kiln(["build", spec, "--push", ref])
        #expect(!again.stderr.contains("pushing blob"), "\(again.stderr)")
        #expect(again.stderr.contains("already in the registry"))
        #expect(again.stdout.contains(digest))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func skopeoPushesKilnPullsAndKilnPushesSkopeoReads() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, marker: "skopeo")
        try env.kiln(["build", spec, "-o", src.path + "/img.tar"])

        // skopeo pushes (a Docker v2s2 manifest, gzip layers); Kiln pulls the same digest.
        let ref = "docker://\(reg.host)/sk/img:1"
        try run("skopeo", ["copy", "-q", "--dest-tls-verify=false", "docker-archive:\(src.path)/img.tar", ref])
        let digest = (try parseJSON(try skopeoInspect(ref)) as! [String: Any])["Digest"] as! String
        let pulled = try env.kiln(["pull", ref, "-o", src.path + "/pulled.tar", "--json"])
        #expect((try parseJSON(pulled.stdout) as! [String: Any])["digest"] as? String == digest)

        // Pinned by digest; an unknown digest is an error that names it.
        let pinned = "docker://\(reg.host)/sk/img@\(digest)"
        try env.kiln(["pull", pinned, "-o", src.path + "/pinned", "--format", "oci-archive"])
        let other = "sha256:" + String(repeating: "0", count: 64)
        let missing = try env.kiln(["pull", "docker://\(reg.host)/sk/img@\(other)", "-o", src.path + "/x"], check: false)
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("not found") && missing.stderr.contains(other), "\(missing.stderr)")
        #expect(!FileManager.default.fileExists(atPath: src.path + "/x"))

        // Kiln pushes an OCI layout; skopeo reads it back with the same digest and copies it.
        try env.kiln(["copy", "docker-archive:\(src.path)/img.tar", "oci:\(src.path)/layout:v1"])
        let layoutDigest = (try parseJSON(try run("skopeo", ["inspect", "oci:\(src.path)/layout:v1"]).stdout) as! [String: Any])["Digest"] as! String
        let dst = "docker://\(reg.host)/kiln/pushed:2"
        // Its layers are uncompressed: --preserve-digests pushes them as they are, digest unchanged.
        let push = try env.kiln(["push", "oci:\(src.path)/layout:v1", dst, "--json", "--preserve-digests"])
        #expect((try parseJSON(push.stdout) as! [String: Any])["digest"] as? String == layoutDigest)
        #expect((try parseJSON(try skopeoInspect(dst)) as! [String: Any])["Digest"] as? String == layoutDigest)
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", dst, "oci:\(src.path)/back:v1"])
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func chunkedUploadsAndCrossRepositoryMounts() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 400_000)
        let a = "docker://\(reg.host)/team/a:1"
        // 64 KiB chunks: the layer goes up in several PATCH requests.
        try env.kiln(["build", spec, "--push", a], extra: ["KILN_REGISTRY_CHUNK_SIZE": "65536"])
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", a, "oci:\(src.path)/check:v1"])

        let b = "docker://\(reg.host)/team/b:1"
        let copy = try env.kiln(["copy", a, b])
        // The layer and the config are both mounted from team/a: nothing is uploaded.
        #expect(copy.stderr.components(separatedBy: ": mounted").count - 1 == 2, "\(copy.stderr)")
        #expect(!copy.stderr.contains("pushing blob"), "\(copy.stderr)")
        #expect((try parseJSON(try skopeoInspect(a)) as! [String: Any])["Digest"] as? String
            == (try parseJSON(try skopeoInspect(b)) as! [String: Any])["Digest"] as? String)
    }

    @Test func indexesPickAPlatformOrCopyWhole() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        var entries: [String] = []
        var digests: [String: String] = [:]
        for arch in ["amd64", "arm64"] {
            let d = try TempDir()
            let spec = try writeFilesSpec(in: d, architecture: arch, marker: arch)
            let out = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/multi/img:\(arch)", "--json"])
            let w = try parseJSON(out.stdout) as! [String: Any]
            let digest = w["manifestDigest"] as! String
            digests[arch] = digest
            let raw = try skopeoInspect("docker://\(reg.host)/multi/img:\(arch)", raw: true)
            entries.append(#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(digest)","size":\#(raw.utf8.count),"platform":{"architecture":"\#(arch)","os":"linux"}}"#)
        }
        let index = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[\#(entries.joined(separator: ","))]}"#
        try work.write("index.json", index)
        try run("curl", ["-sf", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.index.v1+json",
                         "--data-binary", "@\(work.path)/index.json", "http://\(reg.host)/v2/multi/img/manifests/both"])
        let ref = "docker://\(reg.host)/multi/img:both"

        let arm = try env.kiln(["pull", ref, "--platform", "linux/arm64", "-o", work.path + "/arm", "--format", "oci", "--json"])
        #expect((try parseJSON(arm.stdout) as! [String: Any])["digest"] as? String == digests["arm64"])
        let none = try env.kiln(["pull", ref, "--platform", "linux/s390x", "-o", work.path + "/none"], check: false)
        #expect(none.status == 1 && none.stderr.contains("linux/s390x") && none.stderr.contains("linux/arm64"), "\(none.stderr)")

        // --all: the index and both images, byte for byte.
        let dst = "docker://\(reg.host)/mirror/img:both"
        let all = try env.kiln(["copy", "--all", ref, dst, "--json"])
        let indexDigest = "sha256:" + (try sha256Hex(Array(index.utf8)))
        #expect((try parseJSON(all.stdout) as! [String: Any])["digest"] as? String == indexDigest)
        #expect(try skopeoInspect(dst, raw: true) == index)
        for (_, digest) in digests {
            #expect(try skopeoInspect("docker://\(reg.host)/mirror/img@\(digest)", raw: true) == skopeoInspect("docker://\(reg.host)/multi/img@\(digest)", raw: true))
        }
    }

    @Test func badReferencesGiveOneClearLine() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        // A malformed reference is a usage error (64): ArgumentParser's first line names
        // it, then the usage follows. A well-formed one that is not there is a failure (1).
        let cases: [(String, String, Int32)] = [
            ("docker://\(reg.host)/Upper/case:1", "lowercase", 64),
            ("docker://\(reg.host)/ok:-tag", "invalid tag", 64),
            ("docker://\(reg.host)/ok@sha256:abc", "not a digest", 64),
            ("docker://\(reg.host)/absent/repo:1", "not found", 1),
        ]
        for (ref, fragment, status) in cases {
            let r = try env.kiln(["pull", ref, "-o", env.dir.path + "/out"], check: false)
            #expect(r.status == status, "\(ref): \(r)")
            let lines = r.stderr.split(separator: "\n")
            let first = status == 64 ? "Error: " : "kiln: error:"
            #expect(lines.first?.hasPrefix(first) == true && lines[0].contains(fragment), "\(ref): \(r.stderr)")
            if status == 1 { #expect(lines.count == 1, "\(ref): \(r.stderr)") }
        }
        #expect(!FileManager.default.fileExists(atPath: env.dir.path + "/out"))
    }

    /// The layer media types of a registry manifest.
    func layerTypes(_ ref: String) throws -> [String] {
        let m = try parseJSON(try skopeoInspect(ref, raw: true)) as! [String: Any]
        return (m["layers"] as! [[String: Any]]).map { $0["mediaType"] as! String }
    }

    /// The diffIDs skopeo reads from a docker-archive (`Layers` there are the plain tars').
    func archiveLayers(_ path: String) throws -> [String] {
        (try parseJSON(try run("skopeo", ["inspect", "docker-archive:\(path)"]).stdout) as! [String: Any])["Layers"] as! [String]
    }

    @Test func pushCompressesUncompressedLayersOnceAndPreserveDigestsKeepsThem() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 300_000)
        try src.write("files/text.txt", String(repeating: "compressible text\n", count: 20_000))
        let built = try env.kiln(["build", spec, "-o", src.path + "/img.tar"])
        let archiveDigest = String(built.stdout.split(separator: " ").last!.trimmingCharacters(in: .whitespacesAndNewlines))
        let diffIDs = try archiveLayers(src.path + "/img.tar")
        let cache = src.path + "/cache"

        // gzip by default: the manifest names gzip layers and its digest changes (said once).
        let a = "docker://\(reg.host)/comp/img:1"
        let first = try env.kiln(["push", "docker-archive:\(src.path)/img.tar", a, "--cache-dir", cache, "--json"])
        #expect(first.stderr.contains("pushed as gzip: 1 compressed now, 0 from the cache"), "\(first.stderr)")
        #expect(first.stderr.contains("manifest digest changed from \(archiveDigest)"), "\(first.stderr)")
        let pushedDigest = (try parseJSON(first.stdout) as! [String: Any])["digest"] as! String
        #expect(pushedDigest != archiveDigest)
        #expect((try parseJSON(try skopeoInspect(a)) as! [String: Any])["Digest"] as? String == pushedDigest)
        #expect(try layerTypes(a) == ["application/vnd.docker.image.rootfs.diff.tar.gzip"])
        let size = ((try parseJSON(try skopeoInspect(a, raw: true)) as! [String: Any])["layers"] as! [[String: Any]])[0]["size"] as! Int
        let plainSize = (try FileManager.default.attributesOfItem(atPath: src.path + "/img.tar")[.size] as! Int)
        #expect(size < plainSize - 300_000, "the gzip layer (\(size) B) is not smaller than the archive (\(plainSize) B)")
        // skopeo copies it back: the same diffIDs as the archive.
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", a, "docker-archive:\(src.path)/back.tar:comp/img:1"])
        #expect(try archiveLayers(src.path + "/back.tar") == diffIDs)

        // The second push of the same archive takes the compressed layer from the cache.
        let second = try env.kiln(["push", "docker-archive:\(src.path)/img.tar", "docker://\(reg.host)/comp/again:1", "--cache-dir", cache])
        #expect(second.stderr.contains("pushed as gzip: 0 compressed now, 1 from the cache"), "\(second.stderr)")
        #expect(second.stdout.contains(pushedDigest))
        #expect(try FileSystemList.files(in: cache + "/compressed/entries").count == 1)

        // zstd on request: an OCI manifest with a zstd layer; Kiln pulls it back to the same diffIDs.
        let z = "docker://\(reg.host)/comp/zstd:1"
        let zr = try env.kiln(["push", "docker-archive:\(src.path)/img.tar", z, "--cache-dir", cache, "--dest-compress-format", "zstd"])
        #expect(zr.stderr.contains("pushed as zstd: 1 compressed now"), "\(zr.stderr)")
        #expect(try layerTypes(z) == ["application/vnd.oci.image.layer.v1.tar+zstd"])
        try env.kiln(["pull", z, "-o", src.path + "/z.tar", "-q"])
        #expect(try archiveLayers(src.path + "/z.tar") == diffIDs)

        // --preserve-digests: the uncompressed layer and the archive's digest, no notice;
        // asking for a compression as well is a usage error.
        let p = "docker://\(reg.host)/comp/kept:1"
        let kept = try env.kiln(["push", "docker-archive:\(src.path)/img.tar", p, "--preserve-digests", "--no-cache"])
        #expect(kept.stdout.contains(archiveDigest), "\(kept.stdout)")
        #expect(!kept.stderr.contains("compressed"), "\(kept.stderr)")
        #expect(try layerTypes(p) == ["application/vnd.docker.image.rootfs.diff.tar"])
        let both = try env.kiln(["push", "docker-archive:\(src.path)/img.tar", p, "--preserve-digests",
                                 "--dest-compress-format", "zstd"], check: false)
        #expect(both.status == 64 && both.stderr.contains("--preserve-digests"), "\(both.stderr)")

        // From one repository to another of the same registry: the uncompressed layer is
        // downloaded and compressed (the twin is in the cache), the config is mounted.
        let r = try env.kiln(["copy", p, "docker://\(reg.host)/comp/recompressed:1", "--cache-dir", cache])
        #expect(r.stderr.contains("0 compressed now, 1 from the cache"), "\(r.stderr)")
        #expect(r.stderr.components(separatedBy: ": mounted").count - 1 == 1, "the config is mounted: \(r.stderr)")
        #expect(r.stdout.contains(pushedDigest), "\(r.stdout)")

        // kiln copy to a registry compresses the same way (and finds the twin in the cache).
        let c = try env.kiln(["copy", "docker-archive:\(src.path)/img.tar", "docker://\(reg.host)/comp/copied:1", "--cache-dir", cache])
        #expect(c.stderr.contains("0 compressed now, 1 from the cache"), "\(c.stderr)")
        #expect(c.stdout.contains(pushedDigest), "\(c.stdout)")
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}

/// Regular files in a directory, by name.
enum FileSystemList {
    static func files(in dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).filter { !$0.hasPrefix(".") }
    }
}
