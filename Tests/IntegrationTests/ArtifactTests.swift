import Foundation
import Testing

/// OCI 1.1 artifacts and referrers: `kiln attach`, `kiln referrers`, `kiln copy
/// --referrers`, `kiln build --attach-sbom`, in OCI layouts, OCI archives and the CNCF
/// distribution registry 2.8 (no referrers API: the `sha256-<hex>` tag is exercised).
@Suite(.serialized) struct ArtifactTests {
    static let emptyDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

    func json(_ s: String) throws -> [String: Any] { try parseJSON(s) as! [String: Any] }

    func blob(_ layout: String, _ digest: String) throws -> [String: Any] {
        let hex = digest.dropFirst("sha256:".count)
        return try json(String(decoding: try Data(contentsOf: URL(fileURLWithPath: "\(layout)/blobs/sha256/\(hex)")), as: UTF8.self))
    }

    @Test func attachAndListInAnOCILayoutAndArchive() throws {
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "art")
        let layout = work.path + "/layout"
        let built = try json(try env.kiln(["build", spec, "--format", "oci", "-o", layout, "--json"]).stdout)
        let image = built["manifestDigest"] as! String
        try work.write("sbom.spdx.json", #"{"spdxVersion":"SPDX-2.3"}"# + "\n")

        let out = try json(try env.kiln(["attach", "oci:\(layout):v1", work.path + "/sbom.spdx.json",
                                         "--artifact-type", "application/spdx+json", "--annotation", "org.example.k=v", "--json"]).stdout)
        let artifact = out["artifact"] as! [String: Any]
        let digest = artifact["digest"] as! String
        #expect(artifact["artifactType"] as? String == "application/spdx+json")
        #expect((out["subject"] as? [String: Any])?["digest"] as? String == image)

        // The manifest: artifactType, the empty config, FILE as its one layer (titled), the subject.
        let m = try blob(layout, digest)
        #expect(m["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        #expect(m["artifactType"] as? String == "application/spdx+json")
        let config = m["config"] as! [String: Any]
        #expect(config["mediaType"] as? String == "application/vnd.oci.empty.v1+json" && config["digest"] as? String == Self.emptyDigest && config["size"] as? Int == 2)
        let layers = m["layers"] as! [[String: Any]]
        #expect(layers.count == 1 && layers[0]["mediaType"] as? String == "application/spdx+json")
        #expect((layers[0]["annotations"] as? [String: String])?["org.opencontainers.image.title"] == "sbom.spdx.json")
        #expect((m["subject"] as? [String: Any])?["digest"] as? String == image)
        #expect(m["annotations"] as? [String: String] == ["org.example.k": "v"])

        // index.json lists it untagged, once however often it is attached; the image's tag still works.
        try env.kiln(["attach", "oci:\(layout):v1", work.path + "/sbom.spdx.json", "--artifact-type", "application/spdx+json", "--annotation", "org.example.k=v"])
        let index = try json(String(decoding: try work.bytes("layout/index.json"), as: UTF8.self))
        let entries = index["manifests"] as! [[String: Any]]
        #expect(entries.count == 2, "\(entries)")
        #expect(entries[1]["digest"] as? String == digest && entries[1]["annotations"] == nil)
        #expect(entries[1]["artifactType"] as? String == "application/spdx+json")
        #expect((try json(try run("skopeo", ["inspect", "oci:\(layout):v1"]).stdout))["Digest"] as? String == image)
        // Without a tag, the layout's one image is still found (artifacts do not count).
        #expect(try json(try env.kiln(["inspect", "oci:\(layout)", "--json"]).stdout)["manifestDigest"] as? String == image)

        // Another type, with its own layer media type; referrers lists both, filters by type.
        try work.write("sig", "signature")
        try env.kiln(["attach", "oci:\(layout)", work.path + "/sig", "--artifact-type", "application/vnd.example.sig", "--media-type", "application/octet-stream"])
        let text = try env.kiln(["referrers", "oci:\(layout):v1"]).stdout
        #expect(text.contains("\(digest)  application/spdx+json") && text.contains("org.example.k=v") && text.contains("application/vnd.example.sig"), "\(text)")
        let only = try json(try env.kiln(["referrers", "oci:\(layout):v1", "--artifact-type", "application/vnd.example.sig", "--json"]).stdout)
        let listed = only["referrers"] as! [[String: Any]]
        #expect(listed.count == 1 && listed[0]["artifactType"] as? String == "application/vnd.example.sig")
        #expect((try blob(layout, listed[0]["digest"] as! String)["layers"] as! [[String: Any]])[0]["mediaType"] as? String == "application/octet-stream")

        // Reproducible: the same attachment to a fresh build of the same image has the same digest.
        let again = work.path + "/again"
        try env.kiln(["build", spec, "--format", "oci", "-o", again])
        let second = try json(try env.kiln(["attach", "oci:\(again):v1", work.path + "/sbom.spdx.json",
                                            "--artifact-type", "application/spdx+json", "--annotation", "org.example.k=v", "--json"]).stdout)
        #expect((second["artifact"] as? [String: Any])?["digest"] as? String == digest)

        // An OCI archive is rewritten with the artifact; skopeo still reads the image.
        let archive = work.path + "/img.tar"
        try env.kiln(["build", spec, "--format", "oci-archive", "-o", archive])
        let inArchive = try json(try env.kiln(["attach", "oci-archive:\(archive):v1", work.path + "/sbom.spdx.json",
                                               "--artifact-type", "application/spdx+json", "--annotation", "org.example.k=v", "--json"]).stdout)
        #expect((inArchive["artifact"] as? [String: Any])?["digest"] as? String == digest)
        #expect(try env.kiln(["referrers", "oci-archive:\(archive):v1"]).stdout.contains(digest))
        #expect((try json(try run("skopeo", ["inspect", "oci-archive:\(archive):v1"]).stdout))["Digest"] as? String == image)
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func attachInARegistryKeepsTheReferrersTagAndCopiesWithReferrers() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "reg")
        let ref = "docker://\(reg.host)/art/img:v1"
        let image = try json(try env.kiln(["build", spec, "--push", ref, "--json"]).stdout)["manifestDigest"] as! String
        try work.write("sbom.spdx.json", #"{"spdxVersion":"SPDX-2.3"}"#)
        try work.write("other", "other")

        let sbom = try json(try env.kiln(["attach", ref, work.path + "/sbom.spdx.json", "--artifact-type", "application/spdx+json", "--json", "-q"]).stdout)
        let sbomDigest = (sbom["artifact"] as! [String: Any])["digest"] as! String
        try env.kiln(["attach", ref, work.path + "/other", "--artifact-type", "application/vnd.example.other", "-q"])

        // No referrers API in distribution 2.8: the sha256-<hex> tag holds an index of both.
        let tag = "docker://\(reg.host)/art/img:sha256-" + image.dropFirst("sha256:".count)
        let fallback = try json(try skopeoInspect(tag, raw: true))
        #expect(fallback["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        let listed = fallback["manifests"] as! [[String: Any]]
        #expect(listed.map { $0["artifactType"] as? String } == ["application/spdx+json", "application/vnd.example.other"])
        #expect(listed[0]["digest"] as? String == sbomDigest)
        // The artifact itself is a manifest skopeo reads by digest.
        let artifact = try json(try skopeoInspect("docker://\(reg.host)/art/img@\(sbomDigest)", raw: true))
        #expect((artifact["subject"] as? [String: Any])?["digest"] as? String == image)

        // kiln inspect shows an artifact by digest: type, subject, files.
        let shown = try env.kiln(["inspect", "docker://\(reg.host)/art/img@\(sbomDigest)"]).stdout
        #expect(shown.contains("Type:       application/spdx+json") && shown.contains("Subject:    \(image)") && shown.contains("sbom.spdx.json"), "\(shown)")
        let all = try json(try env.kiln(["referrers", ref, "--json"]).stdout)["referrers"] as! [[String: Any]]
        #expect(all.count == 2)
        let filtered = try env.kiln(["referrers", ref, "--artifact-type", "application/spdx+json"]).stdout
        #expect(filtered.contains(sbomDigest) && !filtered.contains("vnd.example.other"), "\(filtered)")

        // A signature of the SBOM (a referrer of a referrer), attached by the SBOM's digest.
        try work.write("sig", "sig")
        let sig = try json(try env.kiln(["attach", "docker://\(reg.host)/art/img@\(sbomDigest)", work.path + "/sig",
                                         "--artifact-type", "application/vnd.example.sig", "--json", "-q"]).stdout)
        let sigDigest = (sig["artifact"] as! [String: Any])["digest"] as! String

        // copy --referrers: to a layout, then to another repository; every level, digests unchanged.
        let layout = work.path + "/layout"
        let copied = try env.kiln(["copy", "--referrers", ref, "oci:\(layout):v1"])
        #expect(copied.stderr.components(separatedBy: "copied referrer").count - 1 == 3, "\(copied.stderr)")
        let local = try env.kiln(["referrers", "oci:\(layout):v1"]).stdout
        #expect(local.contains(sbomDigest) && local.contains("vnd.example.other"), "\(local)")
        #expect(try json(try env.kiln(["inspect", "oci:\(layout):v1", "--json"]).stdout)["manifestDigest"] as? String == image)
        let layoutIndex = String(decoding: try work.bytes("layout/index.json"), as: UTF8.self)
        #expect(layoutIndex.contains(sigDigest))
        let mirror = "docker://\(reg.host)/mirror/img:v1"
        try env.kiln(["copy", "--referrers", "oci:\(layout):v1", mirror, "-q"])
        #expect(try env.kiln(["referrers", mirror]).stdout.contains(sbomDigest))
        #expect(try env.kiln(["referrers", "docker://\(reg.host)/mirror/img@\(sbomDigest)"]).stdout.contains(sigDigest))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func concurrentAttachesToOneImageAreAllListed() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "race")
        let ref = "docker://\(reg.host)/race/img:v1"
        try env.kiln(["build", spec, "--push", ref, "-q"])
        let n = 5
        for i in 0..<n { try work.write("f\(i)", "file \(i)") }
        // Five writers of the same sha256-<hex> tag at once (docker-registry ignores If-Match).
        let failures = LockedList()
        let (vars, dir) = (env.vars, work.path)
        DispatchQueue.concurrentPerform(iterations: n) { i in
            do {
                try run(kilnPath, ["attach", ref, dir + "/f\(i)", "--artifact-type", "application/vnd.example.n\(i)", "-q"], env: vars)
            } catch { failures.append("\(error)") }
        }
        #expect(failures.items.isEmpty, "\(failures.items)")
        let listed = try env.kiln(["referrers", ref]).stdout
        for i in 0..<n { #expect(listed.contains("application/vnd.example.n\(i)"), "\(i): \(listed)") }
    }

    @Test func badAttachmentsAreOneLineAndWriteNothing() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "bad")
        let layout = work.path + "/layout"
        try env.kiln(["build", spec, "--format", "oci", "-o", layout])
        try work.write("f", "x")
        let before = try snapshot(layout)
        let missing = "sha256:" + String(repeating: "0", count: 64)
        let cases: [([String], Int32, String)] = [
            (["attach", "oci:\(layout):v1", work.path + "/nope", "--artifact-type", "a/b"], 1, "nope: no such readable file"),
            (["attach", "oci:\(layout):v1", work.path + "/f", "--artifact-type", "spdx"], 64, "is not a media type"),
            (["attach", "oci:\(layout):v1", work.path + "/f", "--artifact-type", "a/b", "--media-type", "x y/z"], 64, "is not a media type"),
            (["attach", "oci:\(layout):v1", work.path + "/f", "--artifact-type", "a/b", "--annotation", "novalue"], 64, "expected KEY=VALUE"),
            (["attach", "oci:\(layout):nosuchtag", work.path + "/f", "--artifact-type", "a/b"], 1, "no image tagged \"nosuchtag\""),
            (["attach", "oci:\(work.path)/nolayout", work.path + "/f", "--artifact-type", "a/b"], 1, "nolayout"),
            (["attach", "docker://\(reg.host)/art/none@\(missing)", work.path + "/f", "--artifact-type", "a/b"], 1, "attach: manifest \(reg.host)/art/none@\(missing): not found"),
            (["referrers", "oci:\(layout):v1", "--artifact-type", "nope"], 64, "is not a media type"),
            (["attach", "docker-archive:\(work.path)/x.tar", work.path + "/f", "--artifact-type", "a/b"], 64, "holds no artifacts"),
            (["referrers", "docker-archive:\(work.path)/x.tar"], 64, "holds no artifacts"),
            (["build", spec, "--attach-sbom", "-o", work.path + "/x.tar"], 64, "--attach-sbom"),
            (["copy", "--referrers", "oci:\(layout):v1", "docker-archive:\(work.path)/x.tar"], 64, "holds no artifacts"),
        ]
        for (args, status, message) in cases {
            let r = try env.kiln(args, check: false)
            #expect(r.status == status, "\(args): \(r)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            if status == 1 { #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)") }
        }
        #expect(try snapshot(layout) == before)

        // copy --referrers of an image whose copy would change its digest (uncompressed
        // layers compressed for a registry): refused before anything is pushed.
        try work.write("plain.yaml", "name: kiln-test/plain\ntag: v1\ncompressor: none\ncontents:\n  - files\n")
        let plain = work.path + "/plain"
        try env.kiln(["build", work.path + "/plain.yaml", "--format", "oci", "-o", plain])
        try env.kiln(["attach", "oci:\(plain):v1", work.path + "/f", "--artifact-type", "a/b"])
        let refused = try env.kiln(["copy", "--referrers", "oci:\(plain):v1", "docker://\(reg.host)/plain/img:v1"], check: false)
        #expect(refused.status == 1 && refused.stderr.contains("--preserve-digests"), "\(refused)")
        #expect(try run("skopeo", ["inspect", "--tls-verify=false", "docker://\(reg.host)/plain/img:v1"], check: false).status != 0)
        try env.kiln(["copy", "--referrers", "--preserve-digests", "oci:\(plain):v1", "docker://\(reg.host)/plain/img:v1"])
        #expect(try env.kiln(["referrers", "docker://\(reg.host)/plain/img:v1"]).stdout.contains("a/b"))
        #expect(!FileManager.default.fileExists(atPath: work.path + "/nolayout"))
        #expect(!FileManager.default.fileExists(atPath: work.path + "/x.tar"))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func buildAttachSbomPerPlatform() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "sbom")
        // The SBOM attached to an OCI layout is the document --sbom writes.
        let layout = work.path + "/layout"
        let built = try json(try env.kiln(["build", spec, "--format", "oci", "-o", layout, "--sbom", work.path + "/s.json", "--attach-sbom", "--json"]).stdout)
        let listed = try json(try env.kiln(["referrers", "oci:\(layout):v1", "--artifact-type", "application/spdx+json", "--json"]).stdout)
        let referrers = listed["referrers"] as! [[String: Any]]
        #expect(referrers.count == 1)
        #expect((listed["subject"] as? [String: Any])?["digest"] as? String == built["manifestDigest"] as? String)
        let layer = (try blob(layout, referrers[0]["digest"] as! String)["layers"] as! [[String: Any]])[0]
        let hex = (layer["digest"] as! String).dropFirst("sha256:".count)
        #expect(try work.bytes("layout/blobs/sha256/\(hex)") == (try work.bytes("s.json")))

        // Two platforms pushed: each platform's image gets its own SBOM, the index none.
        try work.write("image.yaml", """
            name: kiln-test/files
            tag: multi
            platforms: [linux/amd64, linux/arm64/v8]
            contents:
              - files
            """)
        let ref = "docker://\(reg.host)/sbom/img:multi"
        let index = try json(try env.kiln(["build", work.path + "/image.yaml", "--push", ref, "--attach-sbom", "--json"]).stdout)
        let manifests = index["manifests"] as! [[String: Any]]
        #expect(manifests.count == 2)
        for m in manifests {
            let digest = (m["image"] as! [String: Any])["manifestDigest"] as! String
            let out = try env.kiln(["referrers", "docker://\(reg.host)/sbom/img@\(digest)"]).stdout
            #expect(out.contains("application/spdx+json") && out.split(separator: "\n").count == 1, "\(out)")
            let tag = "docker://\(reg.host)/sbom/img:sha256-" + digest.dropFirst("sha256:".count)
            #expect(try skopeoInspect(tag, raw: true).contains("application/spdx+json"))
        }
        #expect(try env.kiln(["referrers", ref]).stdout.isEmpty)
        #expect(try env.kiln(["referrers", ref, "--platform", "linux/arm64"]).stdout.contains("application/spdx+json"))
    }
}

/// Strings gathered from several threads.
final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func append(_ s: String) { lock.lock(); list.append(s); lock.unlock() }
    var items: [String] { lock.lock(); defer { lock.unlock() }; return list }
}
