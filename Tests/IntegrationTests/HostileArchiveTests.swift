import Foundation
import KilnOCI
import Testing

/// One raw ustar header block, with any name, type and size field (so sizes can lie).
private func header(_ name: String, type: Character = "0", size: Int = 0, sizeField: [UInt8]? = nil,
                    link: String = "", mode: String = "0000644", device: (Int, Int)? = nil) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    func put(_ s: [UInt8], _ off: Int) { for (i, c) in s.enumerated() { b[off + i] = c } }
    put(Array(name.utf8.prefix(100)), 0)
    put(Array(mode.utf8), 100)
    put(Array("0000000".utf8), 108)
    put(Array("0000000".utf8), 116)
    put(sizeField ?? Array(String(format: "%011o", size).utf8), 124)
    put(Array("00000000000".utf8), 136)
    b[156] = type.asciiValue!
    put(Array(link.utf8), 157)
    put(Array("ustar\u{0}00".utf8), 257)
    if let (major, minor) = device {
        put(Array(String(format: "%07o", major).utf8), 329)
        put(Array(String(format: "%07o", minor).utf8), 337)
    }
    for i in 148..<156 { b[i] = 0x20 }
    let sum = b.reduce(0) { $0 + Int($1) }
    put(Array(String(format: "%06o", sum).utf8) + [0, 0x20], 148)
    return b
}

private func entry(_ name: String, _ body: String = "", type: Character = "0", link: String = "") -> [UInt8] {
    let bytes = Array(body.utf8)
    let pad = (512 - bytes.count % 512) % 512
    return header(name, type: type, size: bytes.count, link: link) + bytes + [UInt8](repeating: 0, count: pad)
}

private let end = [UInt8](repeating: 0, count: 1024)

/// An OCI layout holding one image with one layer blob, by hand, so that anything can
/// be wrong with it. `diffID` defaults to the sha256 of `uncompressed` (or of the blob).
private func layout(in dir: TempDir, blob: [UInt8], mediaType: String = "application/vnd.oci.image.layer.v1.tar",
                    diffID: Digest? = nil, tamper: ((String) throws -> Void)? = nil) throws -> String {
    let root = dir.path + "/layout-\(UUID().uuidString.prefix(6))"
    try FileManager.default.createDirectory(atPath: root + "/blobs/sha256", withIntermediateDirectories: true)
    func put(_ bytes: [UInt8]) throws -> (Digest, Int) {
        let d = Digest.sha256(bytes)
        try Data(bytes).write(to: URL(fileURLWithPath: "\(root)/blobs/sha256/\(d.hex)"))
        return (d, bytes.count)
    }
    let (layerDigest, layerSize) = try put(blob)
    let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["\#(diffID ?? layerDigest)"]}}"#
    let (configDigest, configSize) = try put(Array(config.utf8))
    let manifest = #"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"\#(configDigest)","size":\#(configSize)},"layers":[{"mediaType":"\#(mediaType)","digest":"\#(layerDigest)","size":\#(layerSize)}]}"#
    let (manifestDigest, manifestSize) = try put(Array(manifest.utf8))
    try #"{"imageLayoutVersion":"1.0.0"}"#.write(toFile: root + "/oci-layout", atomically: false, encoding: .utf8)
    try #"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"\#(manifestDigest)","size":\#(manifestSize),"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#
        .write(toFile: root + "/index.json", atomically: false, encoding: .utf8)
    try tamper?("\(root)/blobs/sha256/\(layerDigest.hex)")
    return root
}

private func compress(_ bytes: [UInt8], with tool: String, in dir: TempDir) throws -> [UInt8] {
    let p = dir.path + "/c-\(UUID().uuidString.prefix(6))"
    try Data(bytes).write(to: URL(fileURLWithPath: p))
    try run(tool, ["-q", "-f", p])
    let out = p + (tool == "gzip" ? ".gz" : ".zst")
    return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
}

/// Hostile images: each fails with one clear line and writes nothing, whether exported
/// as a tar, as a directory, or used as a base for runAsRoot.
@Suite struct HostileArchiveTests {
    func expectRejected(_ layout: String, in dir: TempDir, mentions: [String], extra: [String] = [],
                        sourceLocation: SourceLocation = #_sourceLocation) throws {
        for format in ["tar", "dir"] {
            let out = dir.path + "/out-\(format)"
            let r = try kiln(["export", "oci:\(layout):v1", "--format", format, "-o", out] + extra, check: false)
            #expect(r.status == 1, "\(r)", sourceLocation: sourceLocation)
            #expect(r.stderr.hasPrefix("kiln: error: ") && r.stderr.split(separator: "\n").count == 1, "\(r)", sourceLocation: sourceLocation)
            for m in mentions { #expect(r.stderr.contains(m), "\(m) not in \(r.stderr)", sourceLocation: sourceLocation) }
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("out-") || $0.hasPrefix(".out-") || $0.contains(".kiln-") }
            #expect(left.isEmpty, "left behind: \(left)", sourceLocation: sourceLocation)
        }
        // Nothing escaped either.
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/../evil"), sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil"), sourceLocation: sourceLocation)
    }

    @Test func pathTraversalAndAbsoluteNames() throws {
        let dir = try TempDir()
        try expectRejected(try layout(in: dir, blob: entry("../../evil", "x") + end), in: dir, mentions: ["\"../../evil\"", "contains \"..\""])
        try expectRejected(try layout(in: dir, blob: entry("a/../../evil", "x") + end), in: dir, mentions: ["contains \"..\""])
        try expectRejected(try layout(in: dir, blob: entry("/tmp/evil", "x") + end), in: dir, mentions: ["absolute name"])
        try expectRejected(try layout(in: dir, blob: entry("h", type: "1", link: "../../../etc/shadow") + end), in: dir, mentions: ["contains \"..\""])
    }

    /// Every file below `root`: "path type target" lines, sorted (find's %y: f, d, l…).
    func listing(_ root: String) throws -> [String] {
        try sh("cd '\(root)' && find . -mindepth 1 -printf '%P %y %l\\n' | LC_ALL=C sort").stdout
            .split(separator: "\n").map(String.init)
    }

    /// Entries below symlinks are resolved inside the root (each component looked up, a
    /// symlink's target read with the root as `/`, `..` stopping at the root), as umoci
    /// unpacks them through go-securejoin; Kiln and umoci give the same tree.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/umoci"), "needs umoci to compare with"))
    func symlinkedParentsResolveInsideTheRoot() throws {
        let dir = try TempDir()
        let hostPasswd = try Data(contentsOf: URL(fileURLWithPath: "/etc/passwd"))
        let cases: [(String, [UInt8], [String: String])] = [
            ("absolute", entry("a", type: "2", link: "/etc") + entry("a/passwd", "kiln-root\n") + end,
             ["etc/passwd": "kiln-root\n"]),
            ("climbing", entry("a", type: "2", link: "../../..") + entry("a/x", "inside\n") + entry("a/evil/", type: "5") + end,
             ["x": "inside\n"]),
            ("dotdot-in-target", entry("etc/", type: "5") + entry("d", type: "2", link: "etc/../../../opt") + entry("d/f", "opt\n") + end,
             ["opt/f": "opt\n"]),
            ("chain", entry("etc/", type: "5") + entry("b", type: "2", link: "/etc") + entry("c", type: "2", link: "b/../etc")
                + entry("c/hostname", "h\n") + entry("c/.wh.nothing", "") + end,
             ["etc/hostname": "h\n"]),
        ]
        for (name, blob, files) in cases {
            let img = try layout(in: dir, blob: blob)
            let kilnOut = dir.path + "/kiln-\(name)"
            try kiln(["export", "oci:\(img):v1", "--format", "dir", "-o", kilnOut])
            for (path, text) in files {
                #expect(try String(contentsOfFile: kilnOut + "/" + path, encoding: .utf8) == text, "\(name): \(path)")
            }
            // The tar export holds the same paths.
            let tarOut = dir.path + "/kiln-\(name).tar"
            try kiln(["export", "oci:\(img):v1", "-o", tarOut])
            let inTar = try run("tar", ["-tf", tarOut]).stdout
            for path in files.keys { #expect(inTar.contains(path + "\n"), "\(name): \(path) not in \(inTar)") }

            let bundle = dir.path + "/umoci-\(name)"
            try run("umoci", ["unpack"] + (geteuid() == 0 ? [] : ["--rootless"]) + ["--image", "\(img):v1", bundle])
            #expect(try listing(kilnOut) == listing(bundle + "/rootfs"), "\(name)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: "/etc/passwd")) == hostPasswd)
        #expect(!FileManager.default.fileExists(atPath: "/x") && !FileManager.default.fileExists(atPath: "/evil"))
        let hostHostname = (try? String(contentsOfFile: "/etc/hostname", encoding: .utf8)) ?? ""
        #expect(hostHostname != "h\n")

        // A symlink alone, pointing anywhere, is just data: exported, never followed.
        let fine = try layout(in: dir, blob: entry("link", type: "2", link: "/etc/shadow") + end)
        try kiln(["export", "oci:\(fine):v1", "--format", "dir", "-o", dir.path + "/ok"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir.path + "/ok/link") == "/etc/shadow")
    }

    @Test func symlinkLoopsAndFilesOnThePathFailCleanly() throws {
        let dir = try TempDir()
        try expectRejected(try layout(in: dir, blob: entry("a", type: "2", link: "b") + entry("b", type: "2", link: "a") + entry("a/x", "x") + end),
                           in: dir, mentions: ["\"a/x\"", "too many levels of symbolic links"])
        try expectRejected(try layout(in: dir, blob: entry("s", type: "2", link: "s/s") + entry("s/x/", type: "5") + end),
                           in: dir, mentions: ["too many levels of symbolic links"])
        try expectRejected(try layout(in: dir, blob: entry("f", "x") + entry("l", type: "2", link: "/f") + entry("l/x", "y") + end),
                           in: dir, mentions: ["\"l/x\" is below \"f\", which is not a directory"])
    }

    @Test func duplicatesAndAbsurdHeaders() throws {
        let dir = try TempDir()
        try expectRejected(try layout(in: dir, blob: entry("f", "one") + entry("./f", "two") + end), in: dir, mentions: ["duplicate entry \"./f\""])
        // 2^62 bytes in base-256: refused from the header alone.
        var huge = [UInt8](repeating: 0, count: 12)
        huge[0] = 0x80
        huge[4] = 0x40
        try expectRejected(try layout(in: dir, blob: header("big", sizeField: huge) + end), in: dir, mentions: ["big", "above the limit"])
        // 8 GiB claimed, 1 KiB present.
        try expectRejected(try layout(in: dir, blob: header("big", size: 0o77777777777) + end), in: dir, mentions: ["truncated tar archive", "big"])
        var badSum = entry("f", "x") + end
        badSum[150] = UInt8(ascii: "7")
        try expectRejected(try layout(in: dir, blob: badSum), in: dir, mentions: ["bad header checksum"])
        try expectRejected(try layout(in: dir, blob: Array("not a tar at all".utf8)), in: dir, mentions: ["truncated tar archive"])
    }

    @Test func truncatedAndCorruptCompression() throws {
        let dir = try TempDir()
        let tar = entry("f", String(repeating: "hello world ", count: 5000)) + end
        for (tool, type) in [("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"), ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd")] {
            let c = try compress(tar, with: tool, in: dir)
            try expectRejected(try layout(in: dir, blob: Array(c.prefix(c.count / 2)), mediaType: type, diffID: .sha256(tar)),
                               in: dir, mentions: ["truncated \(tool == "gzip" ? "gzip" : "")"])
            var flipped = c
            for i in stride(from: c.count / 3, to: c.count / 3 + 16, by: 1) { flipped[i] ^= 0x5a }
            try expectRejected(try layout(in: dir, blob: flipped, mediaType: type, diffID: .sha256(tar)), in: dir, mentions: ["layer 1 of 1"])
        }
    }

    @Test func decompressionBombNeedsTheLimitRaised() throws {
        let dir = try TempDir()
        // 48 MiB of zeros in three files, about 50 KiB compressed.
        let zeros = String(repeating: "\0", count: 16 << 20)
        let tar = entry("a", zeros) + entry("b", zeros) + entry("c", zeros) + end
        let gz = try compress(tar, with: "gzip", in: dir)
        #expect(gz.count < 100_000)
        let bomb = try layout(in: dir, blob: gz, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", diffID: .sha256(tar))
        try expectRejected(bomb, in: dir, mentions: ["exceeds the limit of 33554432 bytes"], extra: ["--max-layer-size", "32M"])
        try kiln(["export", "oci:\(bomb):v1", "--max-layer-size", "64M", "-o", dir.path + "/ok.tar"])
    }

    @Test func digestAndDiffIDMismatches() throws {
        let dir = try TempDir()
        let tar = entry("f", "data") + end
        try expectRejected(try layout(in: dir, blob: tar, diffID: .sha256(Array("other".utf8))), in: dir,
                           mentions: ["uncompressed (diffID): digest mismatch"])
        // The blob changed after the manifest was written (same size).
        let tampered = try layout(in: dir, blob: tar) { path in
            var b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            b[512] = UInt8(ascii: "D")
            try Data(b).write(to: URL(fileURLWithPath: path))
        }
        try expectRejected(tampered, in: dir, mentions: ["blob: digest mismatch"])
        // And a copy refuses it too.
        let r = try kiln(["copy", "oci:\(tampered):v1", "oci:\(dir.path)/copy:v1"], check: false)
        #expect(r.status == 1 && r.stderr.contains("digest mismatch"), "\(r)")
    }

    /// A copy that fails midway (a tampered layer, caught by the digest check after its
    /// bytes were written) into an existing layout holding another image leaves the
    /// layout byte for byte as it was, and the other image readable by skopeo.
    @Test func failedCopyIntoAnExistingLayoutLeavesItAsItWas() throws {
        let dir = try TempDir()
        let good = try layout(in: dir, blob: entry("f", String(repeating: "good ", count: 20_000)) + end)
        let out = dir.path + "/shared"
        try kiln(["copy", "oci:\(good):v1", "oci:\(out):old"])
        func snapshot() throws -> [String] {
            try sh("cd '\(out)' && find . -printf '%P %y %s %m\\n' | LC_ALL=C sort && find . -type f -exec sha256sum {} + | LC_ALL=C sort")
                .stdout.split(separator: "\n").map(String.init)
        }
        let before = try snapshot()
        let tampered = try layout(in: dir, blob: entry("g", String(repeating: "evil ", count: 20_000)) + end) { path in
            var b = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
            b[600] ^= 0x20
            try Data(b).write(to: URL(fileURLWithPath: path))
        }
        let r = try kiln(["copy", "oci:\(tampered):v1", "oci:\(out):new"], check: false)
        #expect(r.status == 1 && r.stderr.contains("digest mismatch"), "\(r)")
        #expect(try snapshot() == before)
        let info = try parseJSON(try run("skopeo", ["inspect", "oci:\(out):old"]).stdout) as! [String: Any]
        #expect((info["Layers"] as? [String])?.count == 1, "\(info)")
        // The same copy from an intact image adds its tag beside the old one.
        let intact = try layout(in: dir, blob: entry("g", String(repeating: "fine ", count: 20_000)) + end)
        try kiln(["copy", "oci:\(intact):v1", "oci:\(out):new"])
        _ = try run("skopeo", ["inspect", "oci:\(out):old"])
        _ = try run("skopeo", ["inspect", "oci:\(out):new"])
    }

    @Test func hostileBaseImagesFailTheBuildToo() throws {
        let dir = try TempDir()
        let evil = try layout(in: dir, blob: entry("../../evil", "x") + end)
        try dir.write("app.yaml", "name: kiln-test/evil\nfromImage: oci:\(evil):v1\nrunAsRoot: echo hi\n")
        let r = try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status == 1 && r.stderr.contains("contains \"..\""), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
    }

    @Test(.enabled(if: HostCapabilities.rootWithSetpriv, "needs root (to make device nodes) and setpriv (to drop it)"))
    func deviceNodesOnlyAsRoot() throws {
        let dir = try TempDir()
        let img = try layout(in: dir, blob: header("dev/", type: "5", mode: "0000755") + header("dev/null", type: "3", mode: "0000666", device: (1, 3))
                                            + entry("f", "x") + end)
        try kiln(["export", "oci:\(img):v1", "--format", "dir", "-o", dir.path + "/as-root"])
        var st = stat()
        #expect(lstat(dir.path + "/as-root/dev/null", &st) == 0 && (st.st_mode & S_IFMT) == S_IFCHR)
        try sh("chmod -R a+rwX '\(dir.path)'")
        let r = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", kilnPath, "export",
                                             "oci:\(img):v1", "--format", "dir", "-o", dir.path + "/as-nobody"])
        #expect(r.stderr.contains("kiln: warning: 1 device node(s) skipped: creating device nodes needs root"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/as-nobody/dev/null"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/as-nobody/f"))
    }

    @Test func hostileDockerArchives() throws {
        let dir = try TempDir()
        // Two members named manifest.json.
        let manifest = #"[{"Config":"c.json","RepoTags":["x:y"],"Layers":["l.tar"]}]"#
        try Data(entry("manifest.json", manifest) + entry("manifest.json", "[]") + end).write(to: URL(fileURLWithPath: dir.path + "/dup.tar"))
        let r = try kiln(["export", "docker-archive:\(dir.path)/dup.tar", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status == 1 && r.stderr.contains("duplicate member"), "\(r)")
        // A layer path that climbs out of the archive is not found inside it.
        let climbing = #"[{"Config":"c.json","RepoTags":["x:y"],"Layers":["../../../../etc/passwd"]}]"#
        let config = #"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"]}}"#
        try Data(entry("manifest.json", climbing) + entry("c.json", config) + end).write(to: URL(fileURLWithPath: dir.path + "/climb.tar"))
        let c = try kiln(["export", "docker-archive:\(dir.path)/climb.tar", "-o", dir.path + "/out.tar"], check: false)
        #expect(c.status == 1 && c.stderr.contains("no member"), "\(c)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
    }
}
