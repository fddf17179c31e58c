import Foundation
import Testing

/// Whole indexes (`kiln copy --all`) into and out of registries, OCI layouts and
/// archives, byte for byte; `kiln inspect` of an index.
@Suite(.serialized) struct IndexCopyTests {
    /// Two single-platform images pushed to `reg` and an OCI index over them under
    /// `multi/img:both`; returns the index's bytes and the images' digests by architecture.
    static func pushIndex(_ reg: TestRegistry, env: KilnEnv, work: TempDir) throws -> (index: String, digests: [String: String]) {
        var entries: [String] = []
        var digests: [String: String] = [:]
        for (arch, variant) in [("amd64", nil), ("arm64", "v8")] as [(String, String?)] {
            let d = try TempDir()
            let spec = try writeFilesSpec(in: d, architecture: arch, marker: arch)
            let out = try env.kiln(["build", spec, "--push", "docker://\(reg.host)/multi/img:\(arch)", "--json"])
            let digest = (try parseJSON(out.stdout) as! [String: Any])["manifestDigest"] as! String
            digests[arch] = digest
            let raw = try skopeoInspect("docker://\(reg.host)/multi/img:\(arch)", raw: true)
            let platform = #""architecture":"\#(arch)","os":"linux""# + (variant.map { #","variant":"\#($0)""# } ?? "")
            entries.append(#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(digest)","size":\#(raw.utf8.count),"platform":{\#(platform)}}"#)
        }
        let index = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[\#(entries.joined(separator: ","))]}"#
        try work.write("index.json", index)
        try run("curl", ["-sf", "-X", "PUT", "-H", "Content-Type: application/vnd.oci.image.index.v1+json",
                         "--data-binary", "@\(work.path)/index.json", "http://\(reg.host)/v2/multi/img/manifests/both"])
        return (index, digests)
    }

    @Test func copyAllMovesAnIndexBetweenRegistriesLayoutsAndArchivesByteForByte() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let (index, digests) = try Self.pushIndex(reg, env: env, work: work)
        let indexDigest = "sha256:" + (try sha256Hex(Array(index.utf8)))
        let ref = "docker://\(reg.host)/multi/img:both"

        // Registry to layout: the index is the layout's tagged entry, its bytes unchanged.
        let layout = work.path + "/layout"
        let toLayout = try env.kiln(["copy", "--all", ref, "oci:\(layout):both", "--json"])
        #expect((try parseJSON(toLayout.stdout) as! [String: Any])["digest"] as? String == indexDigest)
        let top = try parseJSON(String(decoding: try work.bytes("layout/index.json"), as: UTF8.self)) as! [String: Any]
        let entries = top["manifests"] as! [[String: Any]]
        #expect(entries.count == 1)
        #expect(entries[0]["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        #expect(entries[0]["digest"] as? String == indexDigest)
        #expect((entries[0]["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == "both")
        #expect(try run("skopeo", ["inspect", "--raw", "oci:\(layout):both"]).stdout == index)
        let armCopy = work.path + "/arm"
        try run("skopeo", ["copy", "-q", "--override-arch", "arm64", "--override-variant", "v8", "oci:\(layout):both", "oci:\(armCopy):x"])
        #expect(String(decoding: try work.bytes("arm/index.json"), as: UTF8.self).contains(digests["arm64"]!))

        // Layout to archive to another registry repository, still the same bytes.
        let archive = work.path + "/multi.tar"
        try env.kiln(["copy", "--all", "oci:\(layout):both", "oci-archive:\(archive):both"])
        #expect(try run("skopeo", ["inspect", "--raw", "oci-archive:\(archive):both"]).stdout == index)
        let back = "docker://\(reg.host)/back/img:both"
        let pushed = try env.kiln(["copy", "--all", "oci-archive:\(archive):both", back, "--json"])
        #expect((try parseJSON(pushed.stdout) as! [String: Any])["digest"] as? String == indexDigest)
        #expect(try skopeoInspect(back, raw: true) == index)
        for (_, digest) in digests {
            #expect(try skopeoInspect("docker://\(reg.host)/back/img@\(digest)", raw: true)
                == skopeoInspect("docker://\(reg.host)/multi/img@\(digest)", raw: true))
        }

        // Without --all, --platform picks one image out of a layout's index.
        let one = try env.kiln(["copy", "oci:\(layout):both", "--platform", "linux/arm64", "oci:\(work.path)/one:arm", "--json"])
        #expect((try parseJSON(one.stdout) as! [String: Any])["manifestDigest"] as? String == digests["arm64"])
        try run("skopeo", ["inspect", "oci:\(work.path)/one:arm"])

        // A Docker manifest list is copied between registries as it is, but an OCI layout
        // cannot keep it byte for byte: refused before anything is downloaded or written.
        let list = index.replacingOccurrences(of: "application/vnd.oci.image.index.v1+json", with: "application/vnd.docker.distribution.manifest.list.v2+json")
        try work.write("list.json", list)
        try run("curl", ["-sf", "-X", "PUT", "-H", "Content-Type: application/vnd.docker.distribution.manifest.list.v2+json",
                         "--data-binary", "@\(work.path)/list.json", "http://\(reg.host)/v2/multi/img/manifests/list"])
        let listDigest = "sha256:" + (try sha256Hex(Array(list.utf8)))
        let listCopy = try env.kiln(["copy", "--all", "docker://\(reg.host)/multi/img:list", "docker://\(reg.host)/back/img:list", "--json"])
        #expect((try parseJSON(listCopy.stdout) as! [String: Any])["digest"] as? String == listDigest)
        let refused = try env.kiln(["copy", "--all", "docker://\(reg.host)/multi/img:list", "oci:\(work.path)/list"], check: false)
        #expect(refused.status == 1 && refused.stderr.contains("Docker manifest list"), "\(refused)")
        #expect(!refused.stderr.contains("pulling blob"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work.path + "/list"))

        // --all into a docker-archive (one platform) is a usage error; nothing is written.
        let bad = try env.kiln(["copy", "--all", "oci:\(layout):both", "docker-archive:\(work.path)/x.tar"], check: false)
        #expect(bad.status == 64 && bad.stderr.contains("one platform"), "\(bad)")
        #expect(!FileManager.default.fileExists(atPath: work.path + "/x.tar"))
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    @Test func inspectListsAnIndexesPlatformsAndShowsOneWithPlatform() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let (index, digests) = try Self.pushIndex(reg, env: env, work: work)
        let indexDigest = "sha256:" + (try sha256Hex(Array(index.utf8)))
        let layout = work.path + "/layout"
        try env.kiln(["copy", "--all", "docker://\(reg.host)/multi/img:both", "oci:\(layout):both", "-q"])

        for ref in ["docker://\(reg.host)/multi/img:both", "oci:\(layout):both", "oci:\(layout)"] {
            let text = try env.kiln(["inspect", ref]).stdout
            #expect(text.contains("Index:      \(indexDigest)"), "\(text)")
            #expect(text.contains("Platforms:  2"))
            #expect(text.contains("linux/amd64") && text.contains(digests["amd64"]!), "\(text)")
            #expect(text.contains("linux/arm64/v8") && text.contains(digests["arm64"]!), "\(text)")
            let json = try parseJSON(try env.kiln(["inspect", ref, "--json"]).stdout) as! [String: Any]
            #expect(json["indexDigest"] as? String == indexDigest)
            let listed = json["manifests"] as! [[String: Any]]
            #expect(listed.map { $0["digest"] as? String } == [digests["amd64"], digests["arm64"]])
            #expect((listed[1]["platform"] as? [String: String])?["variant"] == "v8")
            #expect((json["index"] as? [String: Any])?["manifests"] != nil)

            let arm = try parseJSON(try env.kiln(["inspect", ref, "--platform", "linux/arm64", "--json"]).stdout) as! [String: Any]
            #expect(arm["manifestDigest"] as? String == digests["arm64"])
            let host = try parseJSON(try env.kiln(["inspect", ref, "--platform", "host", "--json"]).stdout) as! [String: Any]
            #expect(host["manifestDigest"] as? String == digests["amd64"])
            let missing = try env.kiln(["inspect", ref, "--platform", "linux/s390x"], check: false)
            #expect(missing.status == 1 && missing.stderr.contains("linux/s390x") && missing.stderr.contains("linux/arm64/v8"), "\(missing)")
        }
    }

    @Test func copyAllWithReferrersTakesTheIndexesAndEachImagesArtifacts() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let (_, digests) = try Self.pushIndex(reg, env: env, work: work)
        let layout = work.path + "/layout"
        try env.kiln(["copy", "--all", "docker://\(reg.host)/multi/img:both", "oci:\(layout):both", "-q"])
        try work.write("index-note", "about the index")
        try work.write("arm-note", "about arm64")
        // One artifact on the index itself, one on the arm64 image.
        let onIndex = try parseJSON(try env.kiln(["attach", "oci:\(layout):both", work.path + "/index-note", "--artifact-type", "application/vnd.example.note", "--json"]).stdout) as! [String: Any]
        let onArm = try parseJSON(try env.kiln(["attach", "oci:\(layout):both", work.path + "/arm-note", "--artifact-type", "application/vnd.example.note",
                                                "--platform", "linux/arm64", "--json"]).stdout) as! [String: Any]
        #expect((onArm["subject"] as? [String: Any])?["digest"] as? String == digests["arm64"])
        let indexNote = (onIndex["artifact"] as! [String: Any])["digest"] as! String
        let armNote = (onArm["artifact"] as! [String: Any])["digest"] as! String
        // The layout still holds one tagged index; inspect still lists it.
        #expect(try env.kiln(["inspect", "oci:\(layout)"]).stdout.contains("Platforms:  2"))

        let dst = "docker://\(reg.host)/copied/img:both"
        let copied = try env.kiln(["copy", "--all", "--referrers", "oci:\(layout):both", dst])
        #expect(copied.stderr.components(separatedBy: "copied referrer").count - 1 == 2, "\(copied.stderr)")
        #expect(try env.kiln(["referrers", dst]).stdout.contains(indexNote))
        let arm = try env.kiln(["referrers", dst, "--platform", "linux/arm64/v8"]).stdout
        #expect(arm.contains(armNote) && !arm.contains(indexNote), "\(arm)")
        #expect(try env.kiln(["referrers", dst, "--platform", "linux/amd64"]).stdout.isEmpty)
    }
}
