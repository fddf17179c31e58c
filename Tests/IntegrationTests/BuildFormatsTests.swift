import Foundation
import Testing

/// A spec whose image runs the host's /bin/sh and prints a line.
func writeShellSpec(in dir: TempDir, name: String = "kiln-test/shell", tag: String = "v1",
                    extra: String = "") throws -> String {
    try dir.write("files/etc/greeting", "hello from kiln\n")
    try dir.write("image.yaml", """
        name: \(name)
        tag: \(tag)
        contents:
          - files
          - closure: /bin/sh
        config:
          Cmd: ["/bin/sh", "-c", "read g < /etc/greeting; echo \\"$g\\""]
          Env: ["PATH=/usr/bin:/bin"]
        \(extra)
        """)
    return dir.path + "/image.yaml"
}

@Suite(.serialized) struct BuildFormatsTests {
    @Test func dockerArchiveIsAcceptedBySkopeoAndPodman() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir)
        try kiln(["build", spec, "-o", dir.path + "/img.tar"])

        let inspect = try run("skopeo", ["inspect", "docker-archive:\(dir.path)/img.tar"])
        let info = try parseJSON(inspect.stdout) as! [String: Any]
        #expect((info["Layers"] as! [Any]).count == 1)
        #expect(info["Architecture"] as? String != nil)

        try run("skopeo", ["copy", "docker-archive:\(dir.path)/img.tar", "oci:\(dir.path)/copy:v1"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/copy/index.json"))

        // The legacy layout: repositories and <id>/{VERSION,json,layer.tar}, layer.tar once.
        let list = try run("tar", ["-tf", dir.path + "/img.tar"]).stdout.split(separator: "\n").map(String.init)
        #expect(list.contains("repositories"))
        #expect(list.contains("manifest.json"))
        #expect(list.filter { $0.hasSuffix("/layer.tar") }.count == 1)
        #expect(list.contains { $0.hasSuffix("/VERSION") })
        let layerJSON = list.first { $0.hasSuffix("/json") }!
        let legacy = try parseJSON(try run("tar", ["-xOf", dir.path + "/img.tar", layerJSON]).stdout) as! [String: Any]
        #expect((legacy["checksum"] as? String)?.hasPrefix("tarsum.v1+sha256:") == true)
        // The checksum is the layer's tarsum, computed independently of the writer.
        let layerTar = list.first { $0.hasSuffix("/layer.tar") }!
        try run("tar", ["-xf", dir.path + "/img.tar", "-C", dir.path, layerTar])
        let ts = try kiln(["tarsum", dir.path + "/" + layerTar]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(ts == legacy["checksum"] as? String)

        let podman = Podman()
        defer { podman.cleanup() }
        let load = try podman(["load", "-i", dir.path + "/img.tar"])
        #expect(load.stdout.contains("kiln-test/shell:v1"))
        let out = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                              "localhost/kiln-test/shell:v1"])
        #expect(out.stdout == "hello from kiln\n")
    }

    @Test func ociLayoutUnpacksWithUmociAndRunsWithRunc() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir)
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout"])
        let layout = try String(contentsOfFile: dir.path + "/layout/oci-layout", encoding: .utf8)
        #expect(layout == #"{"imageLayoutVersion":"1.0.0"}"#)

        let inspect = try parseJSON(try run("skopeo", ["inspect", "oci:\(dir.path)/layout:v1"]).stdout) as! [String: Any]
        #expect((inspect["Layers"] as! [Any]).count == 1)
        try run("skopeo", ["copy", "oci:\(dir.path)/layout:v1", "docker-archive:\(dir.path)/copy.tar:x/y:z"])

        try run("umoci", ["unpack", "--image", "\(dir.path)/layout:v1", dir.path + "/bundle"])
        // Non-interactive run: no terminal.
        try sh("sed -i 's/\"terminal\": true/\"terminal\": false/' config.json", cwd: dir.path + "/bundle")
        let id = "kiln-test-\(UUID().uuidString.prefix(8))"
        let out = try run("runc", ["run", "-b", dir.path + "/bundle", id])
        #expect(out.stdout == "hello from kiln\n")
    }

    @Test func ociArchiveIsAcceptedBySkopeo() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir)
        try kiln(["build", spec, "--format", "oci-archive", "-o", dir.path + "/img.oci.tar"])
        let inspect = try parseJSON(try run("skopeo", ["inspect", "oci-archive:\(dir.path)/img.oci.tar:v1"]).stdout) as! [String: Any]
        #expect((inspect["Layers"] as! [Any]).count == 1)
        try run("skopeo", ["copy", "oci-archive:\(dir.path)/img.oci.tar:v1", "oci:\(dir.path)/copy:v1"])
        try run("umoci", ["unpack", "--image", "\(dir.path)/copy:v1", dir.path + "/bundle"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/bundle/rootfs/etc/greeting"))
    }

    @Test func layerIsListedByGNUTarAndBsdtar() throws {
        let dir = try TempDir()
        try dir.write("files/a/b/c.txt", "c")
        try dir.write("files/a/run.sh", "#!/bin/sh\n", mode: 0o755)
        try sh("ln -s b/c.txt files/a/link && ln files/a/b/c.txt files/a/hard", cwd: dir.path)
        try dir.write("image.yaml", """
            name: t/list
            tag: x
            compressor: none
            contents: [files]
            perms:
              - {path: /a/run.sh, mode: "4750", uid: 7, gid: 8}
            """)
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", dir.path + "/l"])
        let manifestDigest = try run("skopeo", ["inspect", "--raw", "oci:\(dir.path)/l:x"]).stdout
        let manifest = try parseJSON(manifestDigest) as! [String: Any]
        let layer = (manifest["layers"] as! [[String: Any]])[0]
        let blob = dir.path + "/l/blobs/sha256/" + (layer["digest"] as! String).dropFirst(7)
        let gnu = try run("tar", ["--numeric-owner", "-tvf", blob]).stdout
        let bsd = try run("bsdtar", ["--numeric-owner", "-tvf", blob]).stdout
        for listing in [gnu, bsd] {
            #expect(listing.contains("a/b/c.txt"))
            #expect(listing.contains("a/link -> b/c.txt"))
            #expect(listing.contains("rwsr-x--- 7/8") || listing.contains("rwsr-x---  0 7      8"))
        }
        // The hard link is kept as a tar hard link to the first path in order.
        #expect(gnu.contains("a/hard link to a/b/c.txt") || gnu.contains("a/b/c.txt link to a/hard"))
        let names = try run("tar", ["-tf", blob]).stdout.split(separator: "\n").map(String.init)
        #expect(names == ["a/", "a/b/", "a/b/c.txt", "a/hard", "a/link", "a/run.sh"])
    }

    @Test func tarsumMatchesDockersPublishedVectorOnAGNUTarArchive() throws {
        let dir = try TempDir()
        try sh("""
            mkdir src && : > src/file.txt && chmod 0 src/file.txt
            tar --format=ustar --mtime=@0 --owner=0 --group=0 --numeric-owner -C src -cf empty.tar file.txt
            gzip -k empty.tar
            """, cwd: dir.path)
        #expect(try kiln(["tarsum", dir.path + "/empty.tar"]).stdout == "tarsum.v1+sha256:6ffd43a1573a9913325b4918e124ee982a99c0f3cba90fc032a65f5e20bdd465\n")
        #expect(try kiln(["tarsum", "--version", "0", dir.path + "/empty.tar.gz"]).stdout == "tarsum+sha256:626c4a2e9a467d65c33ae81f7f3dedd4de8ccaee72af73223c4bc4718cbc7bbd\n")
        let viaStdin = try run("/bin/sh", ["-c", "\(kilnPath) tarsum - < empty.tar"], cwd: dir.path)
        #expect(viaStdin.stdout.hasPrefix("tarsum.v1+sha256:6ffd43a1"))
    }
}

@Suite struct ZstdLayerTests {
    @Test func zstdLayersAreReadBySkopeoAndTheZstdTool() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir, extra: "compressor: zstd")
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/z", "--no-cache"])
        let manifest = try parseJSON(try run("skopeo", ["inspect", "--raw", "oci:\(dir.path)/z:v1"]).stdout) as! [String: Any]
        let layer = (manifest["layers"] as! [[String: Any]])[0]
        #expect(layer["mediaType"] as? String == "application/vnd.oci.image.layer.v1.tar+zstd")
        let blob = dir.path + "/z/blobs/sha256/" + (layer["digest"] as! String).dropFirst(7)
        let listing = try sh("zstd -dc \(blob) | tar -tf -").stdout
        #expect(listing.contains("etc/greeting"))
        // skopeo checks every digest while copying it.
        try run("skopeo", ["copy", "oci:\(dir.path)/z:v1", "oci:\(dir.path)/copy:v1"])
        // The same bytes on a second build.
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/z2", "--no-cache"])
        #expect(try snapshot(dir.path + "/z") == snapshot(dir.path + "/z2"))
    }
}

/// Whole-archive compression: `-o NAME.tar.gz` / `.tar.zst` and `--stream --stream-compress`
/// write the same bytes, which the gzip and zstd tools decompress to the plain archive.
@Suite struct CompressedArchiveOutputTests {
    @Test(arguments: [("gzip", "tar.gz", ["gzip", "-dc"]), ("zstd", "tar.zst", ["zstd", "-dc"])])
    func streamAndFileAreTheSameCompressedArchive(compressor: String, suffix: String, decompress: [String]) throws {
        let dir = try TempDir()
        let spec = try writeFilesSpec(in: dir, bigBytes: 300_000)
        try kiln(["build", spec, "-o", dir.path + "/plain.tar", "--cache-dir", dir.path + "/cache"])
        try kiln(["build", spec, "-o", dir.path + "/file.\(suffix)", "--cache-dir", dir.path + "/cache"])
        let streamed = try sh("\(kilnPath) build \(spec) --stream --stream-compress \(compressor) --cache-dir \(dir.path)/cache > \(dir.path)/stream.\(suffix)")
        #expect(streamed.status == 0)
        #expect(try dir.bytes("file.\(suffix)") == dir.bytes("stream.\(suffix)"))
        let unpacked = try sh("\(decompress.joined(separator: " ")) \(dir.path)/file.\(suffix) > \(dir.path)/unpacked.tar")
        #expect(unpacked.status == 0)
        #expect(try dir.bytes("unpacked.tar") == dir.bytes("plain.tar"))
        // Kiln reads its own compressed archives back.
        let copied = try kiln(["copy", "docker-archive:\(dir.path)/file.\(suffix)", "oci:\(dir.path)/layout:v1", "--json"])
        let plain = try kiln(["copy", "docker-archive:\(dir.path)/plain.tar", "oci:\(dir.path)/layout2:v1", "--json"])
        #expect((try parseJSON(copied.stdout) as! [String: Any])["manifestDigest"] as? String
                == (try parseJSON(plain.stdout) as! [String: Any])["manifestDigest"] as? String)
    }
}
