import Foundation
import Testing

/// Layered images and the layer cache, checked with skopeo, umoci and runc.
@Suite(.serialized) struct LayeredCacheTests {
    func layeredSpec(_ dir: TempDir, extra: String = "") throws -> String {
        try dir.write("app/etc/app.conf", "setting=1\n")
        try dir.write("image.yaml", """
            name: kiln-test/layered
            tag: l1
            layering: auto
            contents:
              - app
              - closure: /bin/sh
              - closure: /usr/bin/ls
            users: [{name: app, uid: 1000}]
            config:
              Cmd: ["/bin/sh", "-c", "ls /etc/app.conf && echo layered ok"]
            \(extra)
            """)
        return dir.path + "/image.yaml"
    }

    func layerDigests(_ ref: String) throws -> [String] {
        let info = try parseJSON(try run("skopeo", ["inspect", ref]).stdout) as! [String: Any]
        return info["Layers"] as! [String]
    }

    @Test func autoLayeringSplitsSharedLibrariesAndRuns() throws {
        let dir = try TempDir()
        let spec = try layeredSpec(dir)
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/a", "--no-cache"])
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/b", "--no-cache"])
        let layers = try layerDigests("oci:\(dir.path)/a:l1")
        // app, the libraries both closures share, each closure's own files, the users layer.
        #expect(layers.count >= 4)
        #expect(try layerDigests("oci:\(dir.path)/b:l1") == layers)
        try run("umoci", ["unpack", "--image", "\(dir.path)/a:l1", dir.path + "/bundle"])
        try sh("sed -i 's/\"terminal\": true/\"terminal\": false/' config.json", cwd: dir.path + "/bundle")
        let out = try run("runc", ["run", "-b", dir.path + "/bundle", "kiln-layered-\(UUID().uuidString.prefix(8))"])
        #expect(out.stdout.hasSuffix("layered ok\n"))
    }

    @Test func maxLayersBoundsTheSplitAndIsChecked() throws {
        let dir = try TempDir()
        let spec = try layeredSpec(dir, extra: "maxLayers: 2")
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/a"])
        #expect(try layerDigests("oci:\(dir.path)/a:l1").count == 2)
        let bad = try layeredSpec(dir, extra: "maxLayers: 126")
        let r = try kiln(["build", bad, "-o", dir.path + "/x.tar"], check: false)
        #expect(r.status != 0)
        #expect(r.stderr.contains("maxLayers") && r.stderr.contains("125"))
    }

    @Test func cacheHitReusesTheBlobAndChangesInvalidateOnlyTheirLayer() throws {
        let dir = try TempDir()
        let cache = dir.path + "/cache"
        let spec = try layeredSpec(dir)
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/one", "--cache-dir", cache])
        let first = try layerDigests("oci:\(dir.path)/one:l1")
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache + "/layers").count
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/two", "--cache-dir", cache])
        #expect(try layerDigests("oci:\(dir.path)/two:l1") == first)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache + "/layers").count == entries)
        // A hit is linked from the cache, not produced again.
        var st = stat()
        let blob = dir.path + "/two/blobs/sha256/" + first[0].dropFirst(7)
        #expect(stat(blob, &st) == 0 && st.st_nlink >= 2)

        // Content change: only the layer holding the file changes.
        try dir.write("app/etc/app.conf", "setting=2\n")
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/three", "--cache-dir", cache])
        let third = try layerDigests("oci:\(dir.path)/three:l1")
        #expect(third.count == first.count)
        #expect(zip(first, third).filter { $0 != $1 }.count == 1)

        // Mode and owner changes through perms, and a spec change (mtime), invalidate too.
        let withPerms = try layeredSpec(dir, extra: "perms: [{path: /etc/app.conf, mode: \"0600\", uid: 1000}]")
        try kiln(["build", withPerms, "--format", "oci", "-o", dir.path + "/four", "--cache-dir", cache])
        #expect(try layerDigests("oci:\(dir.path)/four:l1") != third)
        let withMtime = try layeredSpec(dir, extra: "mtime: 2001-01-01T00:00:00Z")
        try kiln(["build", withMtime, "--format", "oci", "-o", dir.path + "/five", "--cache-dir", cache])
        #expect(Set(try layerDigests("oci:\(dir.path)/five:l1")).isDisjoint(with: third))

        // A cached build and an uncached one give the same bytes, in every format.
        try kiln(["build", spec, "-o", dir.path + "/cached.tar", "--cache-dir", cache])
        try kiln(["build", spec, "-o", dir.path + "/cached2.tar", "--cache-dir", cache])
        try kiln(["build", spec, "-o", dir.path + "/fresh.tar", "--no-cache"])
        #expect(try dir.bytes("cached2.tar") == dir.bytes("fresh.tar"))
        #expect(try dir.bytes("cached.tar") == dir.bytes("fresh.tar"))
        try run("skopeo", ["inspect", "docker-archive:\(dir.path)/cached2.tar"])

        let prune = try kiln(["cache", "prune", "--all", "--cache-dir", cache])
        #expect(prune.stdout.contains("freed"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache + "/layers").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cache + "/blobs/sha256").isEmpty)
    }

    /// Starts `kiln args` with `KILN_TEST_PAUSE_AT=point`, waits until it says it stopped
    /// there, and kills it with SIGKILL: a kill at a known point, not a hoped-for moment.
    func killAt(_ point: String, _ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kilnPath)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(["KILN_TEST_PAUSE_AT": point]) { $1 }
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        var said = ""
        let deadline = Date().addingTimeInterval(120)
        while !said.contains("kiln: test pause at \(point)"), p.isRunning, Date() < deadline {
            let chunk = err.fileHandleForReading.availableData
            said += String(decoding: chunk, as: UTF8.self)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(said.contains("kiln: test pause at \(point)"), "the build never reached \(point): \(said)")
        #expect(p.terminationReason == .uncaughtSignal)
    }

    /// Every entry in the cache's `layers/` names a blob that exists with its recorded size.
    func expectEveryCacheEntrySound(_ cache: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: cache + "/layers") {
            let entry = try parseJSON(String(contentsOfFile: cache + "/layers/" + name, encoding: .utf8)) as! [String: Any]
            let descriptor = entry["descriptor"] as! [String: Any]
            let hex = (descriptor["digest"] as! String).split(separator: ":")[1]
            let attributes = try? FileManager.default.attributesOfItem(atPath: "\(cache)/blobs/sha256/\(hex)")
            #expect((attributes?[.size] as? NSNumber)?.int64Value == (descriptor["size"] as? NSNumber)?.int64Value,
                    "cache entry \(name) names a missing or short blob", sourceLocation: sourceLocation)
        }
    }

    @Test func concurrentBuildsAndAKilledBuildLeaveTheCacheSound() throws {
        let dir = try TempDir()
        let cache = dir.path + "/cache"
        // A tree big enough to kill a build in the middle of it.
        try sh("mkdir -p big && for i in $(seq 1 40); do head -c 1000000 /dev/urandom > big/f$i; done", cwd: dir.path)
        try dir.write("image.yaml", "name: kiln-test/big\ntag: b\ncontents: [big]\n")
        let spec = dir.path + "/image.yaml"
        func start(_ out: String) throws -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: kilnPath)
            p.arguments = ["build", spec, "--format", "oci", "-o", out, "--cache-dir", cache]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }
        // kill -9 at each named point of a cache write: the blob written but not in
        // place, in place without its entry, the entry written but not in place. After
        // each, every entry is sound and the next build gives the right image.
        let reference = try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/reference", "--no-cache", "--json"])
        let want = (try parseJSON(reference.stdout) as! [String: Any])["manifestDigest"] as? String
        for point in ["cache-blob-written", "cache-blob-stored", "cache-entry-written"] {
            try? FileManager.default.removeItem(atPath: cache)
            try killAt(point, ["build", spec, "--format", "oci", "-o", dir.path + "/killed", "--cache-dir", cache])
            try expectEveryCacheEntrySound(cache)
            #expect(!FileManager.default.fileExists(atPath: dir.path + "/killed"), "\(point): a half-written output")
            let after = try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/after-\(point)", "--cache-dir", cache, "--json"])
            #expect((try parseJSON(after.stdout) as! [String: Any])["manifestDigest"] as? String == want, "\(point)")
            try expectEveryCacheEntrySound(cache)
        }
        // Two builds at once on the same cache.
        let p1 = try start(dir.path + "/p1"), p2 = try start(dir.path + "/p2")
        p1.waitUntilExit()
        p2.waitUntilExit()
        #expect(p1.terminationStatus == 0 && p2.terminationStatus == 0)
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/fresh", "--no-cache"])
        let fresh = try layerDigests("oci:\(dir.path)/fresh:b")
        #expect(try layerDigests("oci:\(dir.path)/p1:b") == fresh)
        #expect(try layerDigests("oci:\(dir.path)/p2:b") == fresh)
        // skopeo verifies every blob's digest while copying.
        try run("skopeo", ["copy", "oci:\(dir.path)/p2:b", "oci:\(dir.path)/verified:b"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "temporary outputs left: \(leftovers)")
    }
}
