import Foundation
import Testing

/// Every build keeps its image's provenance in the layer cache (`provenance/<config
/// digest hex>.json`, LayerCache+Provenance.swift): `inspect --files` and `report` name
/// the origins with no provenance flag at build time, for docker-archives, OCI layouts
/// and --stream alike.
@Suite struct ProvenanceCacheTests {
    @Test func everyBuildKeepsItsProvenanceInTheCache() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/kept
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        let spec = dir.path + "/image.yaml", cache = dir.path + "/cache"
        let built = try parseJSON(try kiln(["build", spec, "-o", dir.path + "/img.tar", "--cache-dir", cache, "--json"]).stdout) as! [String: Any]
        let config = String((built["configDigest"] as! String).dropFirst(7))
        #expect(FileManager.default.fileExists(atPath: "\(cache)/provenance/\(config).json"))
        // A docker-archive's manifest digest as built is the one inspect computes for it;
        // the key is the config digest all the same: it survives copies that recompress.
        let archive = "docker-archive:" + dir.path + "/img.tar"
        let inspected = try parseJSON(try kiln(["inspect", archive, "--json"]).stdout) as! [String: Any]
        #expect(inspected["manifestDigest"] as? String == built["manifestDigest"] as? String)

        let files = try kiln(["inspect", "--files", archive, "--cache-dir", cache]).stdout
        #expect(files.contains("/bin/tool  [contents[0] directory app]") && files.contains("/opt/data/lib/libdata.so  [contents[1] source data]"),
                "\(files)")
        try kiln(["report", archive, "-o", dir.path + "/r.html", "--cache-dir", cache])
        let html = String(decoding: try dir.bytes("r.html"), as: UTF8.self)
        #expect(html.contains("contents[1] source data") && !html.contains("not known: files are named by layer"))

        // An OCI layout (compressed layers, another manifest digest, the same config).
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout", "--cache-dir", cache])
        let layout = try kiln(["inspect", "--files", "oci:\(dir.path)/layout:v1", "--cache-dir", cache]).stdout
        #expect(layout.contains("/bin/tool  [contents[0] directory app]"), "\(layout)")
        let json = try parseJSON(try kiln(["inspect", "--files", "--json", "oci:\(dir.path)/layout:v1", "--cache-dir", cache]).stdout) as! [[String: Any]]
        #expect(json.contains { $0["path"] as? String == "/opt/data/lib/tool-copy" && $0["origin"] as? String == "contents[1] source data" })

        // --stream, into a cache of its own.
        try run("/bin/sh", ["-c", "\"$0\" build \"$1\" --stream --cache-dir \"$2\" > \"$3\"", kilnPath, spec, dir.path + "/streamed-cache", dir.path + "/s.tar"])
        let streamed = try kiln(["inspect", "--files", "docker-archive:" + dir.path + "/s.tar", "--cache-dir", dir.path + "/streamed-cache"]).stdout
        #expect(streamed.contains("/share/notes.txt  [contents[0] directory app]"), "\(streamed)")

        // The default cache ($XDG_CACHE_HOME/kiln) when no --cache-dir is given.
        try dir.write("default.yaml", "name: kiln-test/kept-default\ncreated: 2024-01-01T00:00:00Z\ncontents: [app]\nconfig: {Env: [KEPT=\(UUID().uuidString)]}\n")
        try kiln(["build", dir.path + "/default.yaml", "-o", dir.path + "/d.tar"])
        let byDefault = try kiln(["inspect", "--files", "docker-archive:" + dir.path + "/d.tar"]).stdout
        #expect(byDefault.contains("/bin/tool  [contents[0] directory app]"), "\(byDefault)")
        // --cache-dir is honoured: another cache knows nothing of the image.
        let elsewhere = try kiln(["inspect", "--files", "docker-archive:" + dir.path + "/d.tar", "--cache-dir", dir.path + "/empty"]).stdout
        #expect(elsewhere.contains("/bin/tool  [layer 1]"), "\(elsewhere)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/empty"), "reading must create no cache")

        // `cache prune` trims the documents with the rest.
        try kiln(["cache", "prune", "--all", "--cache-dir", cache])
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: cache + "/provenance")) ?? []).isEmpty)
        #expect(try kiln(["inspect", "--files", archive, "--cache-dir", cache]).stdout.contains("/bin/tool  [layer "))
    }

    /// The key is the config digest: a copy whose manifest digest differs (a docker-archive
    /// into an OCI layout) finds the document, and each platform of an index finds its own.
    @Test func aCopyAndEachPlatformOfAnIndexFindTheirs() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/kept-copy
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        let cache = dir.path + "/cache"
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--cache-dir", cache])
        try kiln(["copy", "docker-archive:" + dir.path + "/img.tar", "oci:\(dir.path)/copy:v1"])
        func digests(_ image: String) throws -> (String, String) {
            let j = try parseJSON(try kiln(["inspect", image, "--json"]).stdout) as! [String: Any]
            return (j["manifestDigest"] as! String, j["configDigest"] as! String)
        }
        let (archived, copied) = (try digests("docker-archive:" + dir.path + "/img.tar"), try digests("oci:\(dir.path)/copy:v1"))
        #expect(archived.0 != copied.0 && archived.1 == copied.1, "\(archived) \(copied)")
        let files = try kiln(["inspect", "--files", "oci:\(dir.path)/copy:v1", "--cache-dir", cache]).stdout
        #expect(files.contains("/opt/data/lib/libdata.so  [contents[1] source data]"), "\(files)")

        try dir.write("multi.yaml", """
            name: kiln-test/kept-multi
            tag: v1
            created: 2024-01-01T00:00:00Z
            platforms: [linux/amd64, linux/arm64/v8]
            contents: [app, {source: data, target: /opt/data}]
            """)
        try kiln(["build", dir.path + "/multi.yaml", "--format", "oci", "-o", dir.path + "/multi", "--cache-dir", cache])
        for platform in ["linux/amd64", "linux/arm64/v8"] {
            let listed = try kiln(["inspect", "--files", "oci:\(dir.path)/multi:v1", "--platform", platform, "--cache-dir", cache]).stdout
            #expect(listed.contains("/bin/tool  [contents[0] directory app]"), "\(platform): \(listed)")
        }
    }

    /// A pushed image (no --attach-provenance: nothing beside it in the registry) and a
    /// docker-archive copied to a registry (its plain layers compressed, another manifest
    /// digest) both find the document the build kept.
    @Test(.enabled(if: registryToolsPresent, "needs docker-registry"))
    func pushedAndCopiedImagesFindTheirs() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/kept-pushed
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        let reg = try TestRegistry()
        defer { kill(reg.process.processIdentifier, SIGKILL); reg.process.waitUntilExit() }
        let env = try KilnEnv()
        let ref = "docker://\(reg.host)/kiln/kept:v1"
        try env.kiln(["build", dir.path + "/image.yaml", "--push", ref])
        #expect(!(try env.kiln(["referrers", ref]).stdout.contains("provenance")))
        let pushed = try env.kiln(["inspect", "--files", ref]).stdout
        #expect(pushed.contains("/bin/tool  [contents[0] directory app]"), "\(pushed)")

        try env.kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let copied = "docker://\(reg.host)/kiln/kept-copy:v1"
        try env.kiln(["copy", "docker-archive:" + dir.path + "/img.tar", copied])
        let listed = try env.kiln(["inspect", "--files", copied]).stdout
        #expect(listed.contains("/opt/data/lib/libdata.so  [contents[1] source data]"), "\(listed)")
    }

    /// `--no-cache` keeps nothing; a stored document that is garbage, or that describes
    /// other layers, is ignored with a notice, and the files are named by layer.
    @Test func noCacheKeepsNothingAndABadDocumentIsIgnored() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/kept-bad
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        let spec = dir.path + "/image.yaml", cache = dir.path + "/cache"
        try kiln(["build", spec, "-o", dir.path + "/none.tar", "--no-cache", "--cache-dir", cache],
                 env: ["XDG_CACHE_HOME": dir.path + "/xdg"])
        #expect(!FileManager.default.fileExists(atPath: cache + "/provenance") && !FileManager.default.fileExists(atPath: dir.path + "/xdg"))
        let image = "docker-archive:" + dir.path + "/none.tar"
        #expect(try kiln(["inspect", "--files", image, "--cache-dir", cache]).stdout.contains("/bin/tool  [layer "))

        let built = try parseJSON(try kiln(["build", spec, "-o", dir.path + "/img.tar", "--cache-dir", cache, "--json"]).stdout) as! [String: Any]
        let stored = "\(cache)/provenance/\(String((built["configDigest"] as! String).dropFirst(7))).json"
        let good = try Data(contentsOf: URL(fileURLWithPath: stored))
        try Data("{\"mediaType\": \"not json".utf8).write(to: URL(fileURLWithPath: stored))
        let garbage = try kiln(["inspect", "--files", image, "--cache-dir", cache])
        #expect(garbage.stdout.contains("/bin/tool  [layer ") && garbage.stderr.contains("ignored") && garbage.stderr.contains(stored),
                "\(garbage)")
        let report = try kiln(["report", image, "-o", dir.path + "/r.html", "--cache-dir", cache])
        #expect(report.stderr.contains("ignored"), "\(report)")
        #expect(String(decoding: try dir.bytes("r.html"), as: UTF8.self).contains("not known: files are named by layer"))

        // A well-formed document whose first layer is another's.
        var doc = try JSONSerialization.jsonObject(with: good) as! [String: Any]
        var layers = doc["layers"] as! [[String: Any]]
        layers[0]["diffID"] = "sha256:" + String(repeating: "0", count: 64)
        doc["layers"] = layers
        try JSONSerialization.data(withJSONObject: doc).write(to: URL(fileURLWithPath: stored))
        let other = try kiln(["inspect", "--files", image, "--cache-dir", cache])
        #expect(other.stdout.contains("/bin/tool  [layer ") && other.stderr.contains("describes other layers"), "\(other)")
        // Put back, it names the origins again.
        try good.write(to: URL(fileURLWithPath: stored))
        #expect(try kiln(["inspect", "--files", image, "--cache-dir", cache]).stdout.contains("/bin/tool  [contents[0] directory app]"))
    }

    /// More packages than layers: the least popular share the last package layer, and the
    /// document lists each layer's own packages (as the layer's history names them, with
    /// the files of each package's .deb in that layer's tar).
    @Test(.enabled(if: TestRepo.available, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz"))
    func mergedPackageLayersListTheirOwnPackages() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], extra: "created: 2024-01-01T00:00:00Z\nmaxLayers: 3")
        try kiln(["build", spec, "-o", dir.path + "/img.tar", "--provenance", dir.path + "/prov.json", "--cache-dir", dir.path + "/cache"])
        let doc = try parseJSON(String(decoding: try dir.bytes("prov.json"), as: UTF8.self)) as! [String: Any]
        let layers = doc["layers"] as! [[String: Any]]
        let listing = try layerListing(dir.path + "/img.tar")
        try #require(layers.count == listing.count && layers.count == 3, "\(layers.count) layers described, \(listing.count) in the image")
        let packageLayers = zip(layers, listing).filter { $0.0["source"] as? String == "packages" }
        try #require(packageLayers.count == 2, "\(layers)")
        let history = try layersByComment(dir.path + "/img.tar")
        var all: [String] = []
        for (l, listed) in packageLayers {
            let packages = l["packages"] as! [[String: Any]]
            let names = packages.map { $0["name"] as! String }
            all += names
            #expect(l["files"] as? Int == listed.files && l["files"] as? Int == packages.reduce(0) { $0 + ($1["files"] as! Int) },
                    "\(names): \(l["files"] ?? "-") files; the tar has \(listed.files)")
            let comment = names.count == 1 ? "\(names[0]) \(packages[0]["version"]!)" : "\(names.count) packages: " + names.joined(separator: " ")
            #expect(history[comment] == l["diffID"] as? String, "\(comment): \(history)")
            for p in packages {
                let debs = try sh("ls \(TestRepo.dir)/debian/pool/main/*/\(p["name"]!)/\(p["name"]!)_\(p["version"]!)_*.deb | head -1").stdout
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                let shipped = try run("dpkg-deb", ["-c", debs]).stdout.split(separator: "\n")
                    .filter { $0.hasPrefix("-") }.compactMap { $0.split(separator: " ").last.map { String($0.drop { $0 == "." || $0 == "/" }) } }
                #expect(!shipped.isEmpty && shipped.allSatisfy { listed.paths.contains($0) || listed.paths.contains("usr/" + $0) },
                        "\(p["name"]!): \(shipped) not all in its layer \(listed.paths)")
            }
        }
        #expect((packageLayers.first?.0["packages"] as? [Any])?.count == 1 && Set(all).count == 4 && all.count == 4, "\(all)")
    }
}
