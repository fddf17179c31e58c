import Foundation
import Testing

/// `kiln diff`: config, layers, files and packages of two images in any transport, its
/// file changes checked against `diff -rq` of the trees umoci unpacks, and its exit
/// status as diff(1)'s: 0 identical, 1 different, 2 cannot compare.
@Suite struct DiffTests {
    /// Two versions of a small app: one file changed, one added, one removed, a mode
    /// changed, an env var changed, and a dpkg status with one package upgraded.
    static func versions(_ dir: TempDir) throws -> (String, String) {
        for v in [1, 2] {
            try dir.write("v\(v)/etc/motd", v == 1 ? "hello\n" : "hello again\n")
            try dir.write("v\(v)/etc/same", "unchanged\n")
            try dir.write("v\(v)/usr/bin/tool", "#!/bin/sh\necho tool\n", mode: v == 1 ? 0o755 : 0o644)
            try dir.write("v\(v)/\(v == 1 ? "etc/old" : "etc/new")", "only in v\(v)\n")
            try dir.write("v\(v)/var/lib/dpkg/status", """
                Package: libfoo1
                Status: install ok installed
                Architecture: amd64
                Version: 1.\(v)-1

                Package: bar
                Status: install ok installed
                Architecture: all
                Version: 2.0

                """)
            try dir.write("v\(v).yaml", """
                name: kiln-test/diff
                tag: v\(v)
                created: 2024-01-01T00:00:00Z
                contents: [v\(v)]
                config: {Env: ["VERSION=\(v)"], Cmd: ["/usr/bin/tool"]}
                """)
        }
        return (dir.path + "/v1.yaml", dir.path + "/v2.yaml")
    }

    @Test func reportsWhatChangedAndExits1() throws {
        let dir = try TempDir()
        let (v1, v2) = try Self.versions(dir)
        try kiln(["build", v1, "--format", "oci", "-o", dir.path + "/l1"])
        try kiln(["build", v2, "-o", dir.path + "/v2.tar"])
        let r = try kiln(["diff", "oci:\(dir.path)/l1:v1", "docker-archive:\(dir.path)/v2.tar", "--json"], check: false)
        #expect(r.status == 1, "\(r)")
        let d = try parseJSON(r.stdout) as! [String: Any]
        let files = d["files"] as! [[String: Any]]
        let byPath = Dictionary(uniqueKeysWithValues: files.map { ($0["path"] as! String, $0["change"] as! String) })
        #expect(byPath["etc/motd"] == "changed" && byPath["etc/new"] == "added" && byPath["etc/old"] == "removed"
                && byPath["usr/bin/tool"] == "changed" && byPath["etc/same"] == nil, "\(byPath)")
        let config = (d["config"] as! [[String: Any]]).map { $0["field"] as! String }
        #expect(config == ["config.Env"], "\(config)")
        let packages = d["packages"] as! [[String: Any]]
        #expect(packages.count == 1 && packages[0]["name"] as? String == "libfoo1"
                && packages[0]["before"] as? String == "1.1-1" && packages[0]["after"] as? String == "1.2-1", "\(packages)")

        // The content changes are those `diff -rq` finds between the trees umoci unpacks
        // (a mode change is not content, so diff does not report usr/bin/tool).
        try kiln(["build", v2, "--format", "oci", "-o", dir.path + "/l2"])
        try run("umoci", ["unpack", "--image", dir.path + "/l1:v1", dir.path + "/b1"])
        try run("umoci", ["unpack", "--image", dir.path + "/l2:v2", dir.path + "/b2"])
        let oracle = try run("diff", ["-rq", "--no-dereference", dir.path + "/b1/rootfs", dir.path + "/b2/rootfs"], check: false)
        let diffLines = Set(oracle.stdout.split(separator: "\n").map(String.init))
        var expected: Set<String> = []
        for f in files {
            let p = f["path"] as! String
            let parent = (("/" + p) as NSString).deletingLastPathComponent, name = (p as NSString).lastPathComponent
            switch f["change"] as! String {
            case "added": expected.insert("Only in \(dir.path)/b2/rootfs\(parent): \(name)")
            case "removed": expected.insert("Only in \(dir.path)/b1/rootfs\(parent): \(name)")
            default:
                let after = (f["after"] as! [String: Any])["digest"] as? String
                let before = (f["before"] as! [String: Any])["digest"] as? String
                if before != nil, before != after {
                    expected.insert("Files \(dir.path)/b1/rootfs/\(p) and \(dir.path)/b2/rootfs/\(p) differ")
                }
            }
        }
        #expect(diffLines == expected, "diff -rq: \(diffLines)\nkiln: \(expected)")

        // The text form names each change on a line of its own.
        let text = try kiln(["diff", "oci:\(dir.path)/l1:v1", "oci:\(dir.path)/l2:v2"], check: false)
        #expect(text.status == 1)
        for line in ["config config.Env: [\"VERSION=1\"] → [\"VERSION=2\"]", "A /etc/new", "D /etc/old", "M /etc/motd",
                     "package libfoo1: 1.1-1 → 1.2-1"] {
            #expect(text.stdout.contains(line), "\(line) missing from:\n\(text.stdout)")
        }
    }

    /// The same image in two formats (and through a registry) is identical: exit 0,
    /// although the manifests differ.
    @Test func theSameImageAnywhereIsIdentical() throws {
        let dir = try TempDir()
        let (v1, _) = try Self.versions(dir)
        try kiln(["build", v1, "--format", "oci", "-o", dir.path + "/l1"])
        try kiln(["build", v1, "-o", dir.path + "/v1.tar"])
        let r = try kiln(["diff", "oci:\(dir.path)/l1:v1", "docker-archive:\(dir.path)/v1.tar"], check: false)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.hasPrefix("identical"), "\(r)")
        let reg = try TestRegistry()
        let env = try KilnEnv()
        try env.kiln(["push", "oci:\(dir.path)/l1:v1", "docker://\(reg.host)/kiln/diff:v1"])
        let remote = try env.kiln(["diff", "docker://\(reg.host)/kiln/diff:v1", "docker-archive:\(dir.path)/v1.tar"], check: false)
        #expect(remote.status == 0, "\(remote)")
        #expect(env.leftovers.isEmpty, "\(env.leftovers)")
    }

    /// An image that cannot be read: exit 2 and one line; a malformed argument is a
    /// usage error (64) as everywhere.
    @Test func unreadableIs2AndUsageIs64() throws {
        let dir = try TempDir()
        let (v1, _) = try Self.versions(dir)
        try kiln(["build", v1, "--format", "oci", "-o", dir.path + "/l1"])
        let missing = try kiln(["diff", "oci:\(dir.path)/l1:v1", "oci:\(dir.path)/absent"], check: false)
        #expect(missing.status == 2, "\(missing)")
        #expect(missing.stderr.hasPrefix("kiln: error: ") && missing.stderr.split(separator: "\n").count == 1, "\(missing)")
        let usage = try kiln(["diff", "nonsense", "oci:\(dir.path)/l1:v1"], check: false)
        #expect(usage.status == 64, "\(usage)")
    }
    /// Images of two platforms are not compared file by file: exit 2 with one line saying
    /// so, unless `--platform` asks for it (then they differ: exit 1).
    @Test func differentPlatformsSaySoUnlessAsked() throws {
        let dir = try TempDir()
        let (v1, _) = try Self.versions(dir)
        try kiln(["build", v1, "--format", "oci", "-o", dir.path + "/amd"])
        let spec = try String(contentsOfFile: v1, encoding: .utf8)
        try dir.write("arm.yaml", spec.replacingOccurrences(of: "tag: v1", with: "tag: v1\narchitecture: s390x"))
        try kiln(["build", dir.path + "/arm.yaml", "--format", "oci", "-o", dir.path + "/arm"])
        let r = try kiln(["diff", "oci:\(dir.path)/amd:v1", "oci:\(dir.path)/arm:v1"], check: false)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.hasPrefix("kiln: error: ") && r.stderr.contains("linux/s390x")
                && r.stderr.contains("different platforms") && r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(r.stdout.isEmpty)
        let anyway = try kiln(["diff", "oci:\(dir.path)/amd:v1", "oci:\(dir.path)/arm:v1", "--platform", "linux/s390x", "--json"], check: false)
        #expect(anyway.status == 1, "\(anyway)")
        let d = try parseJSON(anyway.stdout) as! [String: Any]
        #expect((d["config"] as! [[String: Any]]).contains { $0["field"] as? String == "architecture" })
    }
}
