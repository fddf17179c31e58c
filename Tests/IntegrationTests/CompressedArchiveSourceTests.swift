import Foundation
import Testing

/// A docker-archive compressed as a whole (`kiln build -o x.tar.gz`, nixpkgs'
/// dockerTools, `docker save | gzip`) is read back as the plain archive it holds: by
/// `inspect`, `copy`, `export` and `fromImage`, through a private temporary file.
@Suite(.serialized) struct CompressedArchiveSourceTests {
    /// Builds the shell image to `x.tar.gz` and `x.tar` in `dir`.
    func buildBoth(in dir: TempDir) throws {
        let spec = try writeShellSpec(in: dir)
        try kiln(["build", spec, "-o", dir.path + "/x.tar.gz"])
        try kiln(["build", spec, "-o", dir.path + "/x.tar"])
        // The premise: one really is gzip, the other a plain tar.
        #expect(try dir.bytes("x.tar.gz").prefix(2) == Data([0x1f, 0x8b]))
        #expect(try dir.bytes("x.tar").prefix(2) != Data([0x1f, 0x8b]))
    }

    func manifestDigest(_ reference: String) throws -> String? {
        let info = try parseJSON(try kiln(["inspect", "--json", reference]).stdout) as? [String: Any]
        return info?["manifestDigest"] as? String
    }

    /// Every file in `dir` (the fresh TMPDIR a command was given).
    func leftovers(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir)
    }

    @Test func inspectGivesTheSameManifestAsThePlainArchive() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        let gz = try manifestDigest("docker-archive:\(dir.path)/x.tar.gz")
        #expect(gz != nil)
        #expect(gz == (try manifestDigest("docker-archive:\(dir.path)/x.tar")))
        // Choosing the image by name works through the decompressed copy too.
        #expect(try manifestDigest("docker-archive:\(dir.path)/x.tar.gz:kiln-test/shell:v1") == gz)
    }

    @Test func copyToOCIEqualsTheCopyFromThePlainArchiveAndUnpacks() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        let tmp = dir.path + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        try kiln(["copy", "docker-archive:\(dir.path)/x.tar.gz", "oci:\(dir.path)/from-gz:v1"], env: ["TMPDIR": tmp])
        try kiln(["copy", "docker-archive:\(dir.path)/x.tar", "oci:\(dir.path)/from-tar:v1"])
        #expect(try leftovers(tmp) == [])

        let fromGz = try snapshot(dir.path + "/from-gz")
        #expect(!fromGz.isEmpty)
        #expect(fromGz == (try snapshot(dir.path + "/from-tar")))

        let info = try parseJSON(try run("skopeo", ["inspect", "oci:\(dir.path)/from-gz:v1"]).stdout) as! [String: Any]
        #expect((info["Layers"] as! [Any]).count == 1)
        try run("umoci", ["unpack", "--image", "\(dir.path)/from-gz:v1", dir.path + "/bundle"])
        #expect(try String(contentsOfFile: dir.path + "/bundle/rootfs/etc/greeting", encoding: .utf8) == "hello from kiln\n")
    }

    @Test func aSpecBuildsOnACompressedArchive() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        try dir.write("app-files/opt/app/run", "#!/bin/sh\necho app\n", mode: 0o755)
        try dir.write("app.yaml", """
            name: kiln-test/app
            tag: v1
            fromImage: docker-archive:x.tar.gz
            contents:
              - app-files
            """)
        try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/app"])
        let app = try parseJSON(try kiln(["inspect", "--json", "oci:\(dir.path)/app:v1"]).stdout) as! [String: Any]
        let base = try parseJSON(try kiln(["inspect", "--json", "docker-archive:\(dir.path)/x.tar"]).stdout) as! [String: Any]
        let appDiffs = (app["layers"] as! [[String: Any]]).map { $0["diffID"] as! String }
        let baseDiffs = (base["layers"] as! [[String: Any]]).map { $0["diffID"] as! String }
        #expect(appDiffs.count == baseDiffs.count + 1)
        #expect(Array(appDiffs.prefix(baseDiffs.count)) == baseDiffs)

        try run("umoci", ["unpack", "--image", "\(dir.path)/app:v1", dir.path + "/bundle"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/bundle/rootfs/etc/greeting"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/bundle/rootfs/opt/app/run"))
    }

    @Test func exportGivesTheSameTarAsThePlainArchive() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        try kiln(["export", "docker-archive:\(dir.path)/x.tar.gz", "-o", dir.path + "/gz-rootfs.tar"])
        try kiln(["export", "docker-archive:\(dir.path)/x.tar", "-o", dir.path + "/plain-rootfs.tar"])
        let gz = try dir.bytes("gz-rootfs.tar")
        #expect(!gz.isEmpty)
        #expect(gz == (try dir.bytes("plain-rootfs.tar")))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/xz")
                   && FileManager.default.isExecutableFile(atPath: "/usr/bin/zstd"),
                   "needs xz and zstd"))
    func xzAndZstdArchivesAreReadToo() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        try sh("xz -kc x.tar > x.tar.xz && zstd -qc x.tar > x.tar.zst", cwd: dir.path)
        let plain = try manifestDigest("docker-archive:\(dir.path)/x.tar")
        #expect(try manifestDigest("docker-archive:\(dir.path)/x.tar.xz") == plain)
        #expect(try manifestDigest("docker-archive:\(dir.path)/x.tar.zst") == plain)
    }

    @Test func aTruncatedCompressedArchiveIsOneErrorAndLeavesNothing() throws {
        let dir = try TempDir()
        try buildBoth(in: dir)
        let whole = try dir.bytes("x.tar.gz")
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: dir.path + "/cut.tar.gz"))
        let tmp = dir.path + "/tmp"
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        try dir.write("app.yaml", "name: kiln-test/app\nfromImage: docker-archive:cut.tar.gz\n")

        let commands: [(args: [String], output: String?)] = [
            (["inspect", "docker-archive:\(dir.path)/cut.tar.gz"], nil),
            (["copy", "docker-archive:\(dir.path)/cut.tar.gz", "oci:\(dir.path)/out-copy"], dir.path + "/out-copy"),
            (["export", "docker-archive:\(dir.path)/cut.tar.gz", "-o", dir.path + "/out-export.tar"], dir.path + "/out-export.tar"),
            (["build", dir.path + "/app.yaml", "-o", dir.path + "/out-build.tar"], dir.path + "/out-build.tar"),
        ]
        for (args, output) in commands {
            let r = try kiln(args, env: ["TMPDIR": tmp], check: false)
            #expect(r.status == 1, "\(args): \(r)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(args): \(r)")
            #expect(lines.first?.hasPrefix("kiln: error:") == true, "\(args): \(r)")
            #expect(r.stderr.contains("cut.tar.gz") && r.stderr.contains("truncated gzip stream"), "\(args): \(r)")
            #expect(r.stdout.isEmpty, "\(args): \(r)")
            if let output { #expect(!FileManager.default.fileExists(atPath: output), "\(args)") }
            #expect(try leftovers(tmp) == [], "\(args)")
        }
    }
}
