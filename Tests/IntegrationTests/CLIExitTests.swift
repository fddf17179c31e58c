import Foundation
import Testing

/// The command line's exit statuses (0 success, 1 the operation failed, 64 a usage
/// error, as `kiln --help` says) and what `--help` and `push --json` print.
@Suite struct CLIExitTests {
    /// Usage errors found after parsing (flags that do not go together, a value out of
    /// range) exit 64 like those found while parsing, and name the problem.
    @Test func usageErrorsExit64() throws {
        let dir = try TempDir()
        let spec = try writeFilesSpec(in: dir)
        let cases: [(args: [String], mentions: String)] = [
            (["build", "--stream", "-o", dir.path + "/x", spec], "--stream writes a docker-archive to stdout"),
            (["build", "--locked", spec, "-o", dir.path + "/x"], "--locked: the spec has no packages"),
            (["tarsum", "--version", "2", spec], "--version must be 0 or 1"),
            (["cache", "prune", "--older-than", "soon", "--cache-dir", dir.path + "/cache"], "--older-than takes a number and a unit"),
            (["copy", "--all", "oci:\(dir.path)/a:v1", "docker-archive:\(dir.path)/b.tar"], "a docker-archive holds one platform"),
            (["login", "127.0.0.1:1", "--password-stdin"], "give the user name with -u"),
            (["login", "127.0.0.1:1", "-u", "alice"], "give the password with --password-stdin"),
            (["build", "--no-such-flag", spec], "Unknown option '--no-such-flag'"),
            // An image argument that names no transport, or a bad reference, is a usage error.
            (["copy", "nonsense", "oci:\(dir.path)/b:v1"], "names no transport"),
            (["copy", "oci:\(dir.path)/a:v1", "tarball:\(dir.path)/b"], "unknown transport"),
            (["pull", "docker://Bad_Host/x:1", "-o", dir.path + "/x"], "invalid image reference"),
            (["push", "oci:\(dir.path)/a:v1", "docker://127.0.0.1:1/UPPER/case"], "invalid image reference"),
            (["inspect", "nonsense"], "names no transport"),
            (["build", spec, "--push", "docker://127.0.0.1:1/x:bad tag"], "--push"),
            (["copy", "oci:\(dir.path)/a:v1", "oci:\(dir.path)/b:v1", "--max-layer-size", "lots"], "--max-layer-size"),
            (["build", spec, "--max-layer-size", "0"], "--max-layer-size"),
            (["build", spec, "--format", "oci", "-o", dir.path + "/x.tar.gz"], "a compressed archive name is for docker-archives"),
            (["build", spec, "--stream-compress", "gzip", "-o", dir.path + "/x"], "--stream-compress compresses the --stream output"),
            (["build", spec, "--stream", "--stream-compress", "xz"], "--stream-compress"),
        ]
        for c in cases {
            let r = try kiln(c.args, check: false)
            #expect(r.status == 64, "kiln \(c.args.joined(separator: " ")): \(r)")
            #expect(r.stderr.contains(c.mentions), "kiln \(c.args.joined(separator: " ")): \(r)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x"))
    }

    /// An operation that fails (here: the spec is not there) exits 1 with one line.
    @Test func failuresExit1() throws {
        let dir = try TempDir()
        let r = try kiln(["build", dir.path + "/missing.yaml", "-o", dir.path + "/x"], check: false)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.hasPrefix("kiln: error: ") && r.stderr.contains("missing.yaml"), "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        let t = try kiln(["tarsum", dir.path + "/missing.tar"], check: false)
        #expect(t.status == 1, "\(t)")
    }

    /// `--max-layer-size` stops a layer that decompresses to more than it allows, where
    /// layers are decompressed (copy into a docker-archive, a build's base): exit 1, one line,
    /// no output; the same copy without the limit works.
    @Test func maxLayerSizeStopsADecompressionBomb() throws {
        let dir = try TempDir()
        // 4 MiB of zeros compress to a few KiB: a small bomb.
        try Data(count: 4 << 20).write(to: URL(fileURLWithPath: dir.path + "/zeros.bin"))
        try dir.write("image.yaml", """
            name: kiln-test/bomb
            tag: v1
            contents:
              - source: zeros.bin
                target: /zeros.bin
            """)
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", dir.path + "/layout"])
        let limited = try kiln(["copy", "oci:\(dir.path)/layout:v1", "docker-archive:\(dir.path)/out.tar",
                                "--max-layer-size", "1M"], check: false)
        #expect(limited.status == 1, "\(limited)")
        #expect(limited.stderr.hasPrefix("kiln: error: ") && limited.stderr.split(separator: "\n").count == 1, "\(limited)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
        try kiln(["copy", "oci:\(dir.path)/layout:v1", "docker-archive:\(dir.path)/out.tar", "--max-layer-size", "8M"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
        // A build reading that image as its base (accounts merge into its /etc) decompresses it too.
        try dir.write("on-base.yaml", """
            name: kiln-test/on-bomb
            fromImage: oci:layout:v1
            users: [{name: app, uid: 1000, gid: 1000, home: /home/app, shell: /bin/sh}]
            """)
        let onBase = try kiln(["build", dir.path + "/on-base.yaml", "-o", dir.path + "/on.tar", "--max-layer-size", "1M"], check: false)
        #expect(onBase.status == 1, "\(onBase)")
        #expect(onBase.stderr.hasPrefix("kiln: error: ") && onBase.stderr.split(separator: "\n").count == 1, "\(onBase)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/on.tar"))
        try kiln(["build", dir.path + "/on-base.yaml", "-o", dir.path + "/on.tar", "--max-layer-size", "8M"])
    }

    @Test func overviewNamesEveryTransport() throws {
        let help = try kiln(["--help"])
        for transport in ["docker-archive:PATH", "oci:DIR[:TAG]", "oci-archive:PATH[:TAG]", "docker://HOST/REPO[:TAG]"] {
            #expect(help.stdout.contains(transport), "kiln --help does not mention \(transport): \(help.stdout)")
        }
        #expect(help.stdout.contains("64 for a usage error"))
    }

    /// `push --json` reports the pushed manifest's digest and its size in bytes, as the
    /// registry serves it.
    @Test func pushJSONReportsTheManifestSize() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 10_000)
        try env.kiln(["build", spec, "--format", "oci", "-o", src.path + "/layout"])
        let ref = "docker://\(reg.host)/kiln/sized:v1"
        let push = try env.kiln(["push", "oci:\(src.path)/layout:v1", ref, "--json"])
        let report = try parseJSON(push.stdout) as! [String: Any]
        let raw = try skopeoInspect(ref, raw: true)
        let manifestBytes = Array(raw.utf8.reversed().drop { $0 == 0x0a }.reversed())
        #expect(report["reference"] as? String == ref, "\(report)")
        #expect((report["size"] as? NSNumber)?.intValue == manifestBytes.count, "\(report) vs \(manifestBytes.count) bytes")
        #expect(report["digest"] as? String == "sha256:" + (try sha256Hex(manifestBytes)), "\(report)")
        #expect((report["size"] as? NSNumber)?.intValue ?? 0 > 0)
        // The layers the manifest lists have their real sizes too.
        let manifest = try parseJSON(raw) as! [String: Any]
        for layer in manifest["layers"] as! [[String: Any]] {
            #expect((layer["size"] as? NSNumber)?.intValue ?? 0 > 0, "\(layer)")
        }
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }
}
