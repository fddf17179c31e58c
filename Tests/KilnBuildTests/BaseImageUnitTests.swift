import CKilnSys
import Foundation
import KilnOCI
import Testing
@testable import KilnBuild

private let here = SourceLocation(file: "spec.yaml", line: 3)

@Suite struct BaseConfigTests {
    @Test func envMergesByNameWithTheSpecWinning() {
        #expect(ContainerConfig.mergeEnv(["PATH=/bin", "A=1", "B=2"], ["B=x", "C=3", "PATH=/usr/bin:/bin"])
                == ["PATH=/usr/bin:/bin", "A=1", "B=x", "C=3"])
        #expect(ContainerConfig.mergeEnv([], ["A=1"]) == ["A=1"])
        #expect(ContainerConfig.mergeEnv(["EMPTY=", "A=1"], ["EMPTY=now"]) == ["EMPTY=now", "A=1"])
    }

    @Test func fieldsAreInheritedUnlessTheSpecSetsThem() throws {
        var base = ContainerConfig()
        base.Entrypoint = ["/entry"]
        base.Cmd = ["base-cmd"]
        base.User = "1000"
        base.WorkingDir = "/srv"
        base.Labels = ["a": "1", "b": "2"]
        base.Env = ["PATH=/bin"]
        var spec = ContainerConfig()
        spec.Cmd = ["spec-cmd"]
        spec.Labels = ["b": "3", "c": "4"]
        let c = ContainerConfig.merged(base, spec)
        #expect(c.Entrypoint == ["/entry"])
        #expect(c.Cmd == ["spec-cmd"])
        #expect(c.User == "1000")
        #expect(c.WorkingDir == "/srv")
        #expect(c.Labels == ["a": "1", "b": "3", "c": "4"])
        #expect(c.Env == ["PATH=/bin"])
    }

    @Test func platformAndHistoryComeFromTheBase() throws {
        var base = ImageConfig(architecture: "arm64", os: "linux", variant: "v8", created: "2020-01-01T00:00:00Z",
                               rootfs: RootFS(diffIDs: [.sha256([1]), .sha256([2])]),
                               history: [History(createdBy: "one"), History(createdBy: "env", emptyLayer: true)])
        base.author = "someone"
        var spec = try Spec.parse(text: "name: t/x\n", path: "/s/spec.yaml")
        var c = ImageConfig.inherited(from: base, spec: spec, created: "1970-01-01T00:00:01Z",
                                      newHistory: [History(createdBy: "kiln build")])
        #expect(c.architecture == "arm64" && c.variant == "v8" && c.os == "linux")
        #expect(c.author == "someone")
        #expect(c.created == "1970-01-01T00:00:01Z")
        // One history entry per base layer (the missing one padded), then the new one.
        #expect(c.history?.map { $0.created_by ?? $0.comment ?? "" } == ["one", "env", "base layer", "kiln build"])
        #expect(c.rootfs.diff_ids.isEmpty)

        spec = try Spec.parse(text: "name: t/x\narchitecture: amd64\n", path: "/s/spec.yaml")
        c = ImageConfig.inherited(from: base, spec: spec, created: "x", newHistory: [])
        #expect(c.architecture == "amd64" && c.variant == nil)
    }
}

@Suite struct AccountMergeTests {
    let base = AccountFiles(
        passwd: "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n",
        group: "root:x:0:\ndaemon:x:1:\nshadow:x:42:\n",
        shadow: "root:$6$secret:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        gshadow: "root:*::\ndaemon:*::\nshadow:*::\n")

    @Test func baseLinesAreKeptAndNewOnesAppended() throws {
        let m = try base.merging(users: [Spec.User(name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/sh", location: here)],
                                 groups: [Spec.Group(name: "staff", gid: 50, members: ["app"], location: here)])
        #expect(m.passwd == "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\napp:x:1000:1000::/home/app:/bin/sh\n")
        #expect(m.group == "root:x:0:\ndaemon:x:1:\nshadow:x:42:\nstaff:x:50:app\napp:x:1000:\n")
        // The root password survives; the new user is locked.
        #expect(m.shadow == "root:$6$secret:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\napp:!:::::::\n")
        #expect(m.gshadow == "root:*::\ndaemon:*::\nshadow:*::\nstaff:!::app\napp:!::\n")
    }

    @Test func aSpecUserReplacesTheBaseLineOfTheSameName() throws {
        let m = try base.merging(users: [Spec.User(name: "daemon", uid: 1, gid: 1, home: "/srv", shell: "/bin/sh", location: here)], groups: [])
        #expect(m.passwd?.contains("daemon:x:1:1::/srv:/bin/sh\n") == true)
        #expect(m.passwd?.components(separatedBy: "daemon:").count == 2)
        #expect(m.shadow == base.shadow)
    }

    @Test func idsTakenByAnotherNameAreErrors() {
        #expect { try base.merging(users: [Spec.User(name: "evil", uid: 0, gid: 0, home: "/", shell: "/bin/sh", location: here)], groups: []) }
            throws: { "\($0)".contains("spec.yaml:3") && "\($0)".contains("uid 0 of `evil` is already used by `root`") }
        #expect { try base.merging(users: [], groups: [Spec.Group(name: "shadowy", gid: 42, location: here)]) }
            throws: { "\($0)".contains("gid 42 of `shadowy` is already used by `shadow`") }
    }

    @Test func anEmptyBaseGetsRootAndAllFourFiles() throws {
        let m = try AccountFiles().merging(users: [], groups: [])
        #expect(m.passwd == "root:x:0:0::/root:/bin/sh\n")
        #expect(m.group == "root:x:0:\n")
        #expect(m.shadow == "root:!:::::::\n")
        #expect(m.gshadow == "root:!::\n")
    }
}

@Suite struct OverlayUpperTests {
    /// True when the tests run as root.
    static var isRoot: Bool { geteuid() == 0 }

    /// An upper directory as overlayfs leaves it: a 0:0 character device for a deletion,
    /// `trusted.overlay.opaque=y` on a replaced directory, overlayfs' own xattrs to drop.
    @Test(.enabled(if: isRoot, "mknod and trusted.* xattrs need root"))
    func upperDirectoryBecomesOCIChanges() throws {
        let dir = NSTemporaryDirectory() + "kiln-upper-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/etc", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/opt/replaced", withIntermediateDirectories: true)
        #expect(mknod(dir + "/etc/deleted", S_IFCHR | 0, 0) == 0)
        #expect(setxattr(dir + "/opt/replaced", "trusted.overlay.opaque", "y", 1, 0) == 0)
        #expect(setxattr(dir + "/etc", "trusted.overlay.origin", "zzz", 3, 0) == 0)
        #expect(setxattr(dir + "/etc", "user.kept", "v", 1, 0) == 0)
        FileManager.default.createFile(atPath: dir + "/opt/replaced/new", contents: Data("n".utf8))
        #expect(chown(dir + "/opt/replaced/new", 1234, 5678) == 0)
        #expect(chmod(dir + "/opt/replaced/new", 0o4711) == 0)
        #expect(link(dir + "/opt/replaced/new", dir + "/opt/replaced/hard") == 0)

        let tree = try RunAsRoot.changes(inUpper: dir)
        let entries = tree.entries(mtime: 7)
        #expect(entries.map(\.header.name) == ["etc/", "etc/.wh.deleted", "opt/", "opt/replaced/", "opt/replaced/.wh..wh..opq",
                                               "opt/replaced/hard", "opt/replaced/new"])
        let etc = entries[0].header
        #expect(etc.xattrs == ["user.kept": Array("v".utf8)])
        let hard = entries[5].header, new = entries[6].header
        #expect(hard.kind == .regular && hard.mode == 0o4711 && hard.uid == 1234 && hard.gid == 5678)
        #expect(new.kind == .hardlink && new.linkName == "opt/replaced/hard")
        #expect(entries.allSatisfy { $0.header.mtime == 7 })
    }

    @Test func setupFailuresSayWhatToEnable() {
        let overlay = RunAsRoot.explain(step: Int32(KILN_SB_OVERLAY.rawValue), errno: ENODEV, userns: false, options: "o")
        #expect(overlay.contains("no overlayfs") && overlay.contains("modprobe overlay"))
        let userns = RunAsRoot.explain(step: Int32(KILN_SB_USERNS.rawValue), errno: EPERM, userns: true, options: "o")
        #expect(userns.contains("user namespace") && userns.contains("sysctl"))
        let ns = RunAsRoot.explain(step: Int32(KILN_SB_NAMESPACES.rawValue), errno: EPERM, userns: false, options: "o")
        #expect(ns.contains("namespaces") && ns.contains("CAP_SYS_ADMIN"))
        #expect(RunAsRoot.explain(step: Int32(KILN_SB_EXEC.rawValue), errno: ENOENT, userns: false, options: "o").contains("no /bin/sh"))
    }
}

@Suite struct BaseSpecKeyTests {
    @Test func baseKeysParseAndResolveRelativePaths() throws {
        let s = try Spec.parse(text: """
            name: t/x
            fromImage: oci-archive:../base.tar:v1
            fromImageName: example/base
            fromImageTag: v1
            runAsRoot: |
              echo hi
            runAsRootNetwork: true
            """, path: "/specs/app/spec.yaml")
        #expect(s.fromImage == "oci-archive:/specs/base.tar:v1")
        #expect(s.fromImageName == "example/base")
        #expect(s.fromImageTag == "v1")
        #expect(s.runAsRoot == "echo hi\n")
        #expect(s.runAsRootNetwork)
    }

    @Test func mistakesNameTheLineAndKey() {
        func message(_ yaml: String) -> String {
            do { _ = try Spec.parse(text: yaml, path: "spec.yaml"); return "" } catch { return "\(error)" }
        }
        #expect(message("name: t/x\nfromImageTag: v1\n").hasPrefix("spec.yaml:2: fromImageTag: needs `fromImage`"))
        #expect(message("name: t/x\nfromImage: nowhere\n").hasPrefix("spec.yaml:2: fromImage:"))
        #expect(message("name: t/x\nfromImag: oci:x\n").contains("fromImage"))
        #expect(message("name: t/x\nrunAsRootNetwork: true\n").contains("without `runAsRoot`"))
        #expect(message("name: t/x\nfromImage: oci:x\nfromImageTag: \"bad tag\"\n").hasPrefix("spec.yaml:3: fromImageTag"))
    }
}
