import Foundation
import Testing

/// `kiln inspect docker://…` against the real CNCF distribution registry, checked
/// against skopeo and against `kiln inspect` of the local layout that was pushed.
@Suite(.serialized) struct RegistryInspectTests {
    @Test func inspectRegistryImageMatchesSkopeoAndLocalLayout() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, name: "kiln-test/inspect", bigBytes: 50_000, marker: "inspect")
        try env.kiln(["build", spec, "--format", "oci", "-o", src.path + "/layout"])
        let ref = "docker://\(reg.host)/kiln/inspect:v1"
        let push = try env.kiln(["push", "oci:\(src.path)/layout:v1", ref, "--json"])
        let pushed = (try parseJSON(push.stdout) as! [String: Any])["digest"] as! String

        let sk = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
        let digest = sk["Digest"] as! String
        #expect(digest == pushed)

        // Text output: same format as for local images, with the registry reference.
        let text = try env.kiln(["inspect", ref]).stdout
        #expect(text.contains("Image:      \(ref)\n"), "\(text)")
        #expect(text.contains("Manifest:   \(digest) ("), "\(text)")
        #expect(text.contains("Layers:     \((sk["Layers"] as! [String]).count)"), "\(text)")
        for layer in sk["Layers"] as! [String] { #expect(text.contains(layer), "\(layer) missing in \(text)") }

        // --json: same digest as skopeo, the manifest skopeo reads raw, and the same
        // report (apart from the reference) as inspecting the layout that was pushed.
        let json = try parseJSON(try env.kiln(["inspect", ref, "--json"]).stdout) as! [String: Any]
        #expect(json["manifestDigest"] as? String == digest)
        #expect(json["reference"] as? String == ref)
        let raw = try parseJSON(try skopeoInspect(ref, raw: true)) as! [String: Any]
        let manifest = json["manifest"] as! [String: Any]
        #expect((manifest["config"] as! [String: Any])["digest"] as? String == (raw["config"] as! [String: Any])["digest"] as? String)
        #expect(json["configDigest"] as? String == (raw["config"] as! [String: Any])["digest"] as? String)
        let layers = (json["layers"] as! [[String: Any]]).map { $0["digest"] as! String }
        #expect(layers == (raw["layers"] as! [[String: Any]]).map { $0["digest"] as! String })
        #expect(layers == sk["Layers"] as! [String])

        var local = try parseJSON(try env.kiln(["inspect", "oci:\(src.path)/layout:v1", "--json"]).stdout) as! [String: Any]
        var remote = json
        local["reference"] = nil; remote["reference"] = nil
        local["names"] = nil; remote["names"] = nil
        #expect(NSDictionary(dictionary: local).isEqual(to: remote))

        // Pinned by digest, with the registry flags other registry commands take.
        let authfile = src.path + "/auth.json"
        try src.write("auth.json", #"{"auths":{}}"#)
        let pinned = "docker://\(reg.host)/kiln/inspect@\(digest)"
        let byDigest = try parseJSON(try env.kiln(["inspect", pinned, "--json", "--tls-verify=false", "--authfile", authfile]).stdout) as! [String: Any]
        #expect(byDigest["manifestDigest"] as? String == digest)

        // A missing tag is an error that names the image, and nothing is left behind.
        let missing = try env.kiln(["inspect", "docker://\(reg.host)/kiln/inspect:nope"], check: false)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nope"), "\(missing.stderr)")
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}
