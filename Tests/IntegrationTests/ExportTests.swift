import Foundation
import Testing

/// `kiln export`: every layer applied, compared entry by entry with umoci's unpack.
@Suite(.serialized) struct ExportTests {
    /// An image with whiteouts, an opaque directory, hard links, symlinks, owners, a
    /// setuid file and an xattr: the tool-made base plus a runAsRoot layer.
    func image(in dir: TempDir) throws -> String {
        _ = try makeToolBase(in: dir)
        try dir.write("app.yaml", """
            name: kiln-test/export
            tag: v1
            fromImage: oci:base-layout:tool
            runAsRoot: |
              rm /etc/delme
              rm -rf /srv/tree && mkdir /srv/tree && echo 3 > /srv/tree/three
              chown 1001:1002 /srv/tree/three && chmod 4755 /srv/tree/three
            """)
        try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/img"])
        return dir.path + "/img"
    }

    @Test func matchesUmociUnpackEntryByEntry() throws {
        let dir = try TempDir()
        let layout = try image(in: dir)
        try run("umoci", ["unpack", "--image", layout + ":v1", dir.path + "/bundle"])
        let expected = try treeListing(dir.path + "/bundle/rootfs")
        #expect(expected["srv/tree/three"]?.hasPrefix("f 04755 1001:1002 ") == true, "\(expected["srv/tree/three"] ?? "")")
        #expect(expected["data/gone"] == nil && expected["opt/replace/a"] == nil && expected["etc/delme"] == nil)

        // As a directory.
        try kiln(["export", "oci:\(layout):v1", "--format", "dir", "-o", dir.path + "/rootfs"])
        let asDir = try treeListing(dir.path + "/rootfs")
        #expect(asDir == expected, "\(Set(asDir.map { "\($0) \($1)" }).symmetricDifference(expected.map { "\($0) \($1)" }))")
        // Hard links stay hard links.
        let a = try FileManager.default.attributesOfItem(atPath: dir.path + "/rootfs/data/keep/k")
        let b = try FileManager.default.attributesOfItem(atPath: dir.path + "/rootfs/data/keep/k-hardlink")
        #expect(a[.systemFileNumber] as? Int == b[.systemFileNumber] as? Int)

        // As a tar, extracted by GNU tar.
        try kiln(["export", "oci:\(layout):v1", "-o", dir.path + "/rootfs.tar"])
        try FileManager.default.createDirectory(atPath: dir.path + "/from-tar", withIntermediateDirectories: false)
        try run("tar", ["--numeric-owner", "--xattrs", "-xpf", dir.path + "/rootfs.tar", "-C", dir.path + "/from-tar"])
        #expect(try treeListing(dir.path + "/from-tar") == expected)
        let verbose = try run("tar", ["-tvf", dir.path + "/rootfs.tar"]).stdout
        #expect(verbose.contains("data/keep/k-hardlink link to data/keep/k") || verbose.contains("data/keep/k link to data/keep/k-hardlink"), "\(verbose)")
        #expect(verbose.contains("data/k-symlink -> keep/k"))
    }

    @Test func tarOutputIsDeterministicWithFixedMtimes() throws {
        let dir = try TempDir()
        let layout = try image(in: dir)
        try kiln(["export", "oci:\(layout):v1", "-o", dir.path + "/one.tar"])
        try kiln(["export", "oci:\(layout):v1", "-o", dir.path + "/two.tar"])
        #expect(try dir.bytes("one.tar") == dir.bytes("two.tar"))
        let names = try run("tar", ["-tf", dir.path + "/one.tar"]).stdout.split(separator: "\n").map(String.init)
        #expect(names.first == "bin")
        #expect(!names.contains { $0.hasPrefix("/") || $0.hasPrefix("./") || $0.contains(".wh.") })
        let times = try run("tar", ["--full-time", "-tvf", dir.path + "/one.tar"]).stdout
        #expect(times.split(separator: "\n").allSatisfy { $0.contains(" 1970-01-01 00:00:00 ") })

        // --keep-mtime keeps what the layers say (umoci stamps its layers with the time it ran).
        try kiln(["export", "oci:\(layout):v1", "--keep-mtime", "-o", dir.path + "/kept.tar"])
        let kept = try run("tar", ["--full-time", "-tvf", dir.path + "/kept.tar"]).stdout
        #expect(kept.split(separator: "\n").contains { !$0.contains(" 1970-01-01 ") })

        // A docker-archive exports to the same bytes.
        try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/img.tar"])
        try kiln(["export", "docker-archive:\(dir.path)/img.tar", "-o", dir.path + "/three.tar"])
        #expect(try dir.bytes("one.tar") == dir.bytes("three.tar"))
    }

    @Test func refusesToWriteIntoAnExistingDirectory() throws {
        let dir = try TempDir()
        try dir.write("files/f", "x")
        try dir.write("image.yaml", "name: kiln-test/small\ntag: v1\ncontents: [files]\n")
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", dir.path + "/img"])
        try dir.write("existing/keep", "mine")
        let r = try kiln(["export", "oci:\(dir.path)/img:v1", "--format", "dir", "-o", dir.path + "/existing"], check: false)
        #expect(r.status == 1 && r.stderr.contains("already exists"), "\(r)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/existing") == ["keep"])
        let bad = try kiln(["export", "oci:\(dir.path)/img:v1", "--format", "zip", "-o", dir.path + "/x"], check: false)
        #expect(bad.status != 0 && bad.stderr.contains("zip"))
    }
}
