import Foundation
import Testing

/// `runAsRoot`: a script run as root in namespaces over an overlayfs of the image; the
/// overlay's upper directory becomes the layer.
@Suite(.serialized) struct RunAsRootTests {
    static let script = """
        useradd -m -u 1001 -s /bin/sh bob
        rm /etc/delme
        rm -rf /srv/tree
        mkdir /srv/tree
        echo 3 > /srv/tree/three
        chown 1001:1001 /srv/tree/three
        chmod 0604 /srv/tree/three
        echo scratch > /tmp/scratch
        ls /proc/1 > /dev/null
        echo "host: $(cat /proc/sys/kernel/hostname) pid: $$"
        """

    @Test func useraddDeletionAndReplacedDirectoryOnAToolMadeBase() throws {
        let dir = try TempDir()
        _ = try makeToolBase(in: dir)
        try dir.write("app.yaml", """
            name: kiln-test/rar
            tag: v1
            fromImage: oci:base-layout:tool
            runAsRoot: |
            \(Self.script.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            """)
        let r = try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/img"])
        // The script's output is shown; it ran as PID 1 in its own UTS namespace.
        #expect(r.stderr.contains("host: kiln pid: 1"), "\(r)")
        let img = try ociImage(dir.path + "/img", tag: "v1")
        #expect(img.layers.count == 4)  // 3 base layers, no empty contents layer, the runAsRoot layer

        // The layer: whiteout, opaque directory, owners and modes the script set; nothing
        // from /tmp, /proc or /dev.
        let hex = img.layers.last!.split(separator: ":")[1]
        let listing = try run("tar", ["-tvzf", "\(dir.path)/img/blobs/sha256/\(hex)"]).stdout
        let names = try run("tar", ["-tzf", "\(dir.path)/img/blobs/sha256/\(hex)"]).stdout.split(separator: "\n").map(String.init)
        #expect(names.contains("etc/.wh.delme"))
        #expect(names.contains("srv/tree/.wh..wh..opq"))
        #expect(names.contains("home/bob/"))
        #expect(!names.contains { $0.hasPrefix("tmp/") || $0.hasPrefix("proc/") || $0.hasPrefix("dev/") }, "\(names)")
        let three = listing.split(separator: "\n").first { $0.hasSuffix(" srv/tree/three") }
        #expect(three?.hasPrefix("-rw----r-- 1001/1001 ") == true && three?.contains(" 1970-01-01 00:00 ") == true, "\(listing)")
        #expect(names == names.sorted { a, b in
            a.split(separator: "/", omittingEmptySubsequences: false).lexicographicallyPrecedes(b.split(separator: "/", omittingEmptySubsequences: false)) { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        })

        // umoci sees the result; runc runs it.
        let bundle = dir.path + "/unpacked"
        try run("umoci", ["unpack", "--image", dir.path + "/img:v1", bundle])
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: bundle + "/rootfs/etc/delme"))
        #expect(try fm.contentsOfDirectory(atPath: bundle + "/rootfs/srv/tree") == ["three"])
        #expect((try fm.attributesOfItem(atPath: bundle + "/rootfs/home/bob")[.ownerAccountID] as? Int) == 1001)
        let passwd = try String(contentsOfFile: bundle + "/rootfs/etc/passwd", encoding: .utf8)
        #expect(passwd.contains("olduser:x:500:") && passwd.contains("bob:x:1001:1001::/home/bob:/bin/sh"), "\(passwd)")
        #expect(try String(contentsOfFile: bundle + "/rootfs/etc/shadow", encoding: .utf8).contains("bob:"))
        let out = try runWithRunc(dir.path + "/img", tag: "v1", in: dir,
                                  args: ["/bin/sh", "-c", "cat /srv/tree/three; ls /srv/tree; ls /etc/delme 2>&1 || true; ls /tmp 2>&1 || true"])
        #expect(out.hasPrefix("3\nthree\n"), "\(out)")
        #expect(!out.contains("scratch"))

        // Same inputs, same bytes.
        try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/again"])
        #expect(try ociImage(dir.path + "/again", tag: "v1").layers == img.layers)
    }

    @Test func worksWithoutABaseOverTheNewContents() throws {
        let dir = try TempDir()
        try dir.write("files/etc/motd", "hi\n")
        try dir.write("app.yaml", """
            name: kiln-test/rar-nobase
            tag: v1
            contents:
              - files
              - closure: /bin/sh
            runAsRoot: |
              read line < /etc/motd
              echo "$line there" > /etc/motd2
            """)
        try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/img"])
        let img = try ociImage(dir.path + "/img", tag: "v1")
        #expect(img.layers.count == 2)
        #expect((img.config["history"] as! [[String: Any]]).map { $0["created_by"] as? String } == ["kiln build", "kiln runAsRoot"])
        let hex = img.layers[1].split(separator: ":")[1]
        #expect(try run("tar", ["-xzOf", "\(dir.path)/img/blobs/sha256/\(hex)", "etc/motd2"]).stdout == "hi there\n")
    }

    @Test func aFailingScriptFailsTheBuildAndWritesNothing() throws {
        let dir = try TempDir()
        try dir.write("app.yaml", """
            name: kiln-test/rar-fail
            contents:
              - closure: /bin/sh
            runAsRoot: |
              echo first line
              echo about to fail >&2
              exit 7
            """)
        for format in ["oci", "docker-archive"] {
            let r = try kiln(["build", dir.path + "/app.yaml", "--format", format, "-o", dir.path + "/out"], check: false)
            #expect(r.status == 1)
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
            #expect(r.stderr.contains("app.yaml:4: runAsRoot failed with exit status 7") && r.stderr.contains("about to fail"), "\(r)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["app.yaml"])
        }
    }

    @Test func noNetworkUnlessAsked() throws {
        let dir = try TempDir()
        // Fails (exit 9) when it sees an interface other than lo.
        let check = """
            while read -r line; do
              case "$line" in Inter*|*face*|lo:*) ;; *) echo "saw $line"; exit 9 ;; esac
            done < /proc/net/dev
            """
        func spec(_ network: Bool) throws {
            try dir.write("app.yaml", """
                name: kiln-test/rar-net
                contents:
                  - closure: /bin/sh
                runAsRootNetwork: \(network)
                runAsRoot: |
                \(check.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
                """)
        }
        try spec(false)
        try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/isolated.tar"])
        let hostHasMore = try String(contentsOfFile: "/proc/net/dev", encoding: .utf8).split(separator: "\n").count > 3
        if hostHasMore {
            try spec(true)
            let r = try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/net.tar"], check: false)
            #expect(r.status == 1 && r.stderr.contains("exit status 9"), "\(r)")
        }
    }

    /// Without root, Kiln adds a user namespace: the script is still root inside, and
    /// what it owns is root's in the layer.
    @Test(.enabled(if: HostCapabilities.unprivilegedUserNamespaces,
                   "needs root with setpriv, and unprivileged user namespaces (kernel, sysctl or LSM forbid them)"))
    func worksWithoutRootInAUserNamespace() throws {
        let dir = try TempDir()
        try dir.write("files/etc/motd", "hi\n")
        try dir.write("app.yaml", """
            name: kiln-test/rootless
            contents:
              - files
              - closure: /bin/sh
              - closure: /bin/rm
            runAsRoot: |
              rm /etc/motd
              echo made > /etc/made
            """)
        try sh("chmod -R a+rwX '\(dir.path)'")
        let r = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "TMPDIR=\(dir.path)",
                                             kilnPath, "build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/img"], check: false)
        #expect(r.status == 0, "\(r)")
        let img = try ociImage(dir.path + "/img", tag: String(r.stdout.split(separator: " ")[1].split(separator: ":").last!))
        let hex = img.layers.last!.split(separator: ":")[1]
        let listing = try run("tar", ["-tvzf", "\(dir.path)/img/blobs/sha256/\(hex)"]).stdout
        #expect(listing.contains("0/0") && !listing.contains("65534"), "\(listing)")
        #expect(listing.contains("etc/.wh.motd") && listing.contains("etc/made"), "\(listing)")
    }

    @Test func anImageWithoutAShellIsExplained() throws {
        let dir = try TempDir()
        try dir.write("files/etc/x", "x")
        try dir.write("app.yaml", "name: kiln-test/rar-nosh\ncontents: [files]\nrunAsRoot: echo hi\n")
        let r = try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status == 1)
        #expect(r.stderr.contains("app.yaml:3: runAsRoot: the image has no /bin/sh"), "\(r)")
    }
}
