import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Fixtures of the multi-platform tests, made once per test run: root file systems of
/// linux/arm64 and linux/amd64 (`mmdebstrap --variant=extract` of busybox-static and
/// libc-bin from the host's Debian mirror, a few seconds each, no emulation needed: no
/// maintainer script runs) and the test apt repository with arm64 packages.
enum MultiPlatformFixtures {
    static let directory: String = {
        let d = NSTemporaryDirectory() + "kiln-test-multi-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { _ = try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "kiln-test-multi-\(getpid())") }
        return d
    }()

    /// Why the sysroots cannot be made here, nil when they can.
    static var missing: String? {
        if !hasTool("mmdebstrap") { return "needs mmdebstrap" }
        if getuid() != 0 { return "mmdebstrap --mode=root needs root" }
        if !HostSources.reachable { return "the host's Debian mirror is not reachable from here" }
        if !TestRepo.available { return "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz" }
        return nil
    }

    static let sysroots: [String: String]? = {
        guard missing == nil, let mirror = DebianBases.mirror, let suite = DebianBases.hostSuite else { return nil }
        var out: [String: String] = [:]
        for arch in ["arm64", "amd64"] {
            let root = directory + "/sysroot-\(arch)"
            let r = try? run("mmdebstrap", ["--quiet", "--arch=\(arch)", "--variant=extract", "--include=busybox-static,libc-bin",
                                            "--mode=root", suite, root, mirror], check: false)
            guard r?.status == 0 else { return nil }
            out[arch] = root
        }
        return out
    }()

    /// `scripts/make-test-apt-repo` with arm64 packages (kiln-arch-data, kiln-hello).
    static let repo: String? = {
        let d = directory + "/repo"
        guard (try? run(packageRoot + "/scripts/make-test-apt-repo", [d], env: ["FOREIGN_ARCHS": "arm64"], check: false))?.status == 0 else { return nil }
        return d
    }()

    static var ready: Bool { sysroots != nil && repo != nil }

    /// The two-platform spec: busybox and getconf (dynamic: its loader and libc come
    /// along) from each platform's sysroot, packages from the test repository.
    static func spec(in dir: TempDir, name: String = "kiln-test/multi", extra: String = "") throws -> String {
        let repo = repo ?? "/nonexistent"
        try dir.write("image.yaml", """
            name: \(name)
            tag: v1
            platforms: [linux/amd64, linux/arm64/v8]
            sysroots:
              linux/amd64: \(sysroots?["amd64"] ?? "/nonexistent")
              linux/arm64/v8: \(sysroots?["arm64"] ?? "/nonexistent")
            repositories:
              - url: file:\(repo)/debian
                suite: kiln
                components: [main]
                keyring: \(repo)/keyring.gpg
            packages: [kiln-hello, kiln-arch-data]
            contents:
              - closure: /bin/busybox
              - closure: /usr/bin/getconf
            config:
              Entrypoint: ["/bin/busybox"]
            \(extra)
            """)
        return dir.path + "/image.yaml"
    }
}

private func json(_ s: String) throws -> [String: Any] { try parseJSON(s) as! [String: Any] }

private func platforms(ofIndex raw: String) throws -> [String] {
    let manifests = try json(raw)["manifests"] as! [[String: Any]]
    return manifests.map { m in
        let p = m["platform"] as! [String: Any]
        return [p["os"], p["architecture"], p["variant"]].compactMap { $0 as? String }.joined(separator: "/")
    }
}

private let hasQemuAarch64 = hasTool("qemu-aarch64-static")

@Suite(.serialized, .enabled(if: MultiPlatformFixtures.missing == nil, "\(MultiPlatformFixtures.missing ?? "")"))
struct MultiPlatformTests {
    let work = try! TempDir()

    /// The index of the two-platform spec in an OCI layout, with its arm64 image unpacked.
    func buildIndex() throws -> (spec: String, layout: String) {
        try #require(MultiPlatformFixtures.ready, "the sysroots or the test repository could not be made")
        let spec = try MultiPlatformFixtures.spec(in: work)
        try kiln(["lock", spec, "--cache-dir", work.path + "/cache"])
        try kiln(["build", spec, "--locked", "--format", "oci", "-o", work.path + "/out", "--cache-dir", work.path + "/cache",
                  "--sbom", work.path + "/image.spdx.json"])
        return (spec, work.path + "/out")
    }

    /// One platform of the layout, through skopeo's platform choice, unpacked with umoci.
    func unpack(_ layout: String, arch: String, variant: String? = nil) throws -> String {
        let one = work.path + "/one-\(arch)"
        try run("skopeo", ["copy", "-q", "--override-arch", arch] + (variant.map { ["--override-variant", $0] } ?? [])
                + ["oci:\(layout):v1", "oci:\(one):v1"])
        try run("umoci", ["unpack", "--image", one + ":v1", work.path + "/fs-\(arch)"])
        return work.path + "/fs-\(arch)/rootfs"
    }

    @Test func anIndexOfBothPlatformsInTheListedOrderThatSkopeoAndUmociRead() throws {
        let (spec, layout) = try buildIndex()
        let lock = try json(String(contentsOfFile: work.path + "/image.lock.json", encoding: .utf8))
        let locked = lock["packages"] as! [String: [[String: Any]]]
        #expect(Set(locked.keys) == ["amd64", "arm64"])
        #expect(locked["arm64"]!.contains { $0["name"] as? String == "kiln-arch-data" && $0["architecture"] as? String == "arm64" })

        let raw = try run("skopeo", ["inspect", "--raw", "oci:\(layout):v1"]).stdout
        #expect(try json(raw)["mediaType"] as? String == "application/vnd.oci.image.index.v1+json")
        #expect(try platforms(ofIndex: raw) == ["linux/amd64", "linux/arm64/v8"])
        let arm = try json(run("skopeo", ["inspect", "--override-arch", "arm64", "--override-variant", "v8", "oci:\(layout):v1"]).stdout)
        #expect(arm["Architecture"] as? String == "arm64")

        let armRoot = try unpack(layout, arch: "arm64", variant: "v8")
        #expect(try run("readelf", ["-h", armRoot + "/bin/busybox"]).stdout.contains("AArch64"))
        #expect(try run("readelf", ["-h", armRoot + "/usr/bin/getconf"]).stdout.contains("AArch64"))
        #expect(FileManager.default.fileExists(atPath: armRoot + "/lib/ld-linux-aarch64.so.1"))
        #expect(try String(contentsOfFile: armRoot + "/usr/share/kiln-arch/arm64", encoding: .utf8) == "built for arm64\n")
        #expect(!FileManager.default.fileExists(atPath: armRoot + "/usr/share/kiln-arch/amd64"))
        let amdRoot = try unpack(layout, arch: "amd64")
        #expect(try run("readelf", ["-h", amdRoot + "/bin/busybox"]).stdout.contains("X86-64"))
        #expect(try String(contentsOfFile: amdRoot + "/usr/share/kiln-arch/amd64", encoding: .utf8) == "built for amd64\n")
        #expect(try run(amdRoot + "/bin/busybox", ["echo", "ok"]).stdout == "ok\n")

        // One SBOM per platform, each of its own image.
        let digests = (try json(raw)["manifests"] as! [[String: Any]]).map { $0["digest"] as! String }
        for (suffix, digest) in zip(["linux-amd64", "linux-arm64-v8"], digests) {
            let sbom = try String(contentsOfFile: work.path + "/image.\(suffix).spdx.json", encoding: .utf8)
            #expect(sbom.contains(String(digest.dropFirst("sha256:".count))), "\(suffix)")
        }
        #expect(!FileManager.default.fileExists(atPath: work.path + "/image.spdx.json"))

        // Built again with another cache: the same index, to the byte.
        try kiln(["build", spec, "--locked", "--format", "oci", "-o", work.path + "/again", "--cache-dir", work.path + "/cache2"])
        #expect(try snapshot(layout) == snapshot(work.path + "/again"))
        // An oci-archive holds the same index.
        try kiln(["build", spec, "--locked", "--format", "oci-archive", "-o", work.path + "/out.tar", "--cache-dir", work.path + "/cache"])
        #expect(try run("skopeo", ["inspect", "--raw", "oci-archive:\(work.path)/out.tar:v1"]).stdout == raw)
    }

    @Test(.enabled(if: hasQemuAarch64, "needs qemu-aarch64-static"))
    func theArm64BusyboxRunsUnderQemu() throws {
        let (_, layout) = try buildIndex()
        let root = try unpack(layout, arch: "arm64", variant: "v8")
        #expect(try run("qemu-aarch64-static", ["-L", root, root + "/bin/busybox", "echo", "ok"]).stdout == "ok\n")
    }

    @Test(.enabled(if: hasTool("podman") && hasTool("runc"), "needs podman and runc"))
    func onePlatformAsADockerArchiveRunsInPodman() throws {
        try #require(MultiPlatformFixtures.ready, "the sysroots or the test repository could not be made")
        let spec = try MultiPlatformFixtures.spec(in: work, name: "kiln-test/multi-amd64")
        // Two platforms do not fit a docker-archive: a usage error naming them.
        let refused = try kiln(["build", spec, "-o", work.path + "/both.tar", "--cache-dir", work.path + "/cache"], check: false)
        #expect(refused.status == 64)
        #expect(refused.stderr.contains("a docker-archive holds one platform: add --platform linux/amd64 (the spec has: linux/amd64, linux/arm64/v8)"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work.path + "/both.tar"))
        try kiln(["build", spec, "--platform", "linux/amd64", "-o", work.path + "/amd64.tar", "--cache-dir", work.path + "/cache"])
        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", work.path + "/amd64.tar"])
        let out = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "localhost/kiln-test/multi-amd64:v1", "cat",
                              "/usr/share/kiln-arch/amd64"])
        #expect(out.stdout == "built for amd64\n")
    }

    @Test(.enabled(if: registryToolsPresent, "needs docker-registry"))
    func anIndexPushedToARegistryIsPulledByPlatform() throws {
        try #require(MultiPlatformFixtures.ready, "the sysroots or the test repository could not be made")
        let reg = try TestRegistry()
        defer { kill(reg.process.processIdentifier, SIGKILL); reg.process.waitUntilExit() }
        let env = try KilnEnv()
        let spec = try MultiPlatformFixtures.spec(in: work)
        let ref = "docker://\(reg.host)/kiln/multi:v1"
        let pushed = try json(env.kiln(["build", spec, "--push", ref, "--json", "--cache-dir", work.path + "/cache"]).stdout)
        let manifests = pushed["manifests"] as! [[String: Any]]
        #expect(manifests.count == 2)
        let raw = try run("skopeo", ["inspect", "--raw", "--tls-verify=false", ref]).stdout
        #expect(try platforms(ofIndex: raw) == ["linux/amd64", "linux/arm64/v8"])
        #expect(try "sha256:" + sha256Hex(Array(raw.utf8)) == pushed["indexDigest"] as? String)

        try env.kiln(["copy", "--platform", "linux/arm64/v8", ref, "oci:\(work.path)/pulled:v1"])
        let config = try json(run("skopeo", ["inspect", "--config", "oci:\(work.path)/pulled:v1"]).stdout)
        #expect(config["architecture"] as? String == "arm64" && config["variant"] as? String == "v8")
        let armDigest = (manifests[1]["image"] as! [String: Any])["manifestDigest"] as? String
        #expect(try json(run("skopeo", ["inspect", "--tls-verify=false", "--override-arch", "arm64", "--override-variant", "v8", ref]).stdout)["Digest"] as? String
            == pushed["indexDigest"] as? String)
        try run("skopeo", ["copy", "-q", "--src-tls-verify=false", "--override-arch", "arm64", "--override-variant", "v8", ref, "oci:\(work.path)/skopeo:v1"])
        let copied = try json(run("skopeo", ["inspect", "--raw", "oci:\(work.path)/skopeo:v1"]).stdout)
        #expect(copied["mediaType"] as? String == "application/vnd.oci.image.manifest.v1+json")
        #expect(try run("skopeo", ["inspect", "--format", "{{.Digest}}", "oci:\(work.path)/skopeo:v1"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == armDigest)
    }
}

/// Bad inputs of multi-platform builds, end to end: one line, a non-zero exit, nothing written.
@Suite struct MultiPlatformErrorTests {
    let work = try! TempDir()

    func build(_ yaml: String, _ args: [String] = ["--format", "oci"]) throws -> RunResult {
        try work.write("image.yaml", yaml)
        let r = try kiln(["build", work.path + "/image.yaml", "-o", work.path + "/out", "--no-cache"] + args, check: false)
        #expect(!FileManager.default.fileExists(atPath: work.path + "/out"), "\(r)")
        return r
    }

    @Test func anELFOfTheWrongMachineInTheSysroot() throws {
        // The host's own program where the arm64 one should be.
        try FileManager.default.createDirectory(atPath: work.path + "/root/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: work.path + "/root/bin/true")
        let r = try build("""
            name: t/x
            platforms: [linux/arm64/v8]
            sysroots: {linux/arm64/v8: root}
            contents:
              - closure: /bin/true
            """)
        #expect(r.status == 1)
        #expect(r.stderr.hasSuffix("image.yaml:5: contents[0].closure: /bin/true is an x86-64 ELF, but the platform is linux/arm64/v8\n"), "\(r.stderr)")
    }

    @Test func aMissingSysroot() throws {
        let r = try build("""
            name: t/x
            platforms: [linux/amd64, linux/arm64/v8]
            sysroots: {linux/arm64/v8: sysroots/arm64}
            contents:
              - closure: /bin/true
            """)
        #expect(r.status == 1)
        #expect(r.stderr.contains("image.yaml:3: sysroots.linux/arm64/v8: \(work.path)/sysroots/arm64: no such directory"), "\(r.stderr)")
        let none = try build("name: t/x\nplatforms: [linux/amd64, linux/arm64/v8]\ncontents:\n  - closure: /bin/true\n")
        #expect(none.status == 1)
        #expect(none.stderr.contains("contents[0].closure: /bin/true: linux/arm64/v8 is not the host's platform (linux/amd64)"), "\(none.stderr)")
    }

    @Test func aBaseIndexWithoutAWantedPlatform() throws {
        try work.write("hello.txt", "hello\n")
        try work.write("base.yaml", "name: t/base\ntag: v1\nplatforms: [linux/amd64, linux/386]\ncontents:\n  - source: hello.txt\n")
        try kiln(["build", work.path + "/base.yaml", "--format", "oci", "-o", work.path + "/base", "--no-cache"])
        let r = try build("name: t/x\nfromImage: oci:base:v1\nplatforms: [linux/amd64, linux/arm64/v8]\ncontents:\n  - source: hello.txt\n    target: /again.txt\n")
        #expect(r.status == 1)
        #expect(r.stderr.contains("image.yaml:2: fromImage: oci:\(work.path)/base:v1: the base has no image for linux/arm64/v8 (its index has: linux/amd64, linux/386)"), "\(r.stderr)")
        // The platforms it has: each image on its own base image.
        try work.write("image.yaml", "name: t/x\ntag: v1\nfromImage: oci:base:v1\nplatforms: [linux/386, linux/amd64]\ncontents:\n  - source: hello.txt\n    target: /again.txt\n")
        try kiln(["build", work.path + "/image.yaml", "--format", "oci", "-o", work.path + "/out", "--no-cache"])
        for arch in ["386", "amd64"] {
            let built = try json(run("skopeo", ["inspect", "--override-arch", arch, "oci:\(work.path)/out:v1"]).stdout)
            let baseLayers = try json(run("skopeo", ["inspect", "--override-arch", arch, "oci:\(work.path)/base:v1"]).stdout)["Layers"] as! [String]
            #expect((built["Layers"] as! [String]).first == baseLayers.first, "\(arch)")
            #expect(built["Architecture"] as? String == arch)
        }
        // A single-image base of another platform is refused too.
        try kiln(["build", work.path + "/base.yaml", "--platform", "linux/386", "--format", "oci", "-o", work.path + "/base386", "--no-cache"])
        try FileManager.default.removeItem(atPath: work.path + "/out")
        let single = try build("name: t/x\nfromImage: oci:base386:v1\nplatforms: [linux/amd64]\ncontents:\n  - source: hello.txt\n    target: /again.txt\n")
        #expect(single.status == 1)
        #expect(single.stderr.contains("is an image for linux/386, not linux/amd64"), "\(single.stderr)")
    }

    @Test(.enabled(if: registryToolsPresent, "needs docker-registry"))
    func aRegistryIndexBaseGivesEachPlatformItsManifest() throws {
        let reg = try TestRegistry()
        defer { kill(reg.process.processIdentifier, SIGKILL); reg.process.waitUntilExit() }
        let env = try KilnEnv()
        try work.write("hello.txt", "hello\n")
        try work.write("base.yaml", "name: t/base\ntag: v1\nplatforms: [linux/amd64, linux/386]\ncontents:\n  - source: hello.txt\n")
        let base = "docker://\(reg.host)/kiln/base:v1"
        try env.kiln(["build", work.path + "/base.yaml", "--push", base, "--no-cache"])
        let r = try build("name: t/x\nfromImage: \(base)\nplatforms: [linux/amd64, linux/arm64/v8]\ncontents:\n  - source: hello.txt\n    target: /again.txt\n")
        #expect(r.status == 1)
        #expect(r.stderr.contains("image.yaml:2: fromImage: "), "\(r.stderr)")
        #expect(r.stderr.contains("no image for platform linux/arm64/v8 (the index has: linux/amd64, linux/386)"), "\(r.stderr)")
        try work.write("image.yaml", "name: t/x\ntag: v1\nfromImage: \(base)\nplatforms: [linux/386, linux/amd64]\ncontents:\n  - source: hello.txt\n    target: /again.txt\n")
        let built = try env.kiln(["build", work.path + "/image.yaml", "--format", "oci", "-o", work.path + "/out", "--no-cache"])
        // The tag is resolved once: one pin notice for both platforms.
        #expect(built.stderr.components(separatedBy: "pin it with").count == 2, "\(built.stderr)")
        for arch in ["386", "amd64"] {
            let image = try json(run("skopeo", ["inspect", "--override-arch", arch, "oci:\(work.path)/out:v1"]).stdout)
            let baseImage = try json(run("skopeo", ["inspect", "--tls-verify=false", "--override-arch", arch, base]).stdout)
            #expect((image["Layers"] as! [String]).first == (baseImage["Layers"] as! [String]).first, "\(arch)")
            #expect(image["Architecture"] as? String == arch)
        }
    }

    @Test func eachPlatformTakesItsOwnSysrootsFilesAlsoFromTheCache() throws {
        for arch in ["amd64", "arm64"] {
            try work.write("root-\(arch)/etc/marker", "for \(arch)\n")
        }
        try work.write("image.yaml", """
            name: t/x
            tag: v1
            platforms: [linux/amd64, linux/arm64/v8]
            sysroots: {linux/amd64: root-amd64, linux/arm64/v8: root-arm64}
            contents:
              - source: /etc/marker
                target: /etc/marker
            """)
        var layers: [[String]] = []
        for i in 0..<2 {
            try kiln(["build", work.path + "/image.yaml", "--format", "oci", "-o", work.path + "/out\(i)", "--cache-dir", work.path + "/cache"])
            layers.append(try ["amd64", "arm64"].map { arch in
                try (json(run("skopeo", ["inspect", "--override-arch", arch, "oci:\(work.path)/out\(i):v1"]).stdout)["Layers"] as! [String])[0]
            })
        }
        #expect(layers[0][0] != layers[0][1])
        #expect(layers[1] == layers[0])
        let one = work.path + "/arm"
        try run("skopeo", ["copy", "-q", "--override-arch", "arm64", "oci:\(work.path)/out1:v1", "oci:\(one):v1"])
        try run("umoci", ["unpack", "--image", one + ":v1", work.path + "/fs"])
        #expect(try String(contentsOfFile: work.path + "/fs/rootfs/etc/marker", encoding: .utf8) == "for arm64\n")
    }

    @Test func platformUsageErrors() throws {
        let twice = try build("name: t/x\nplatforms: [linux/amd64, linux/arm64/v8]\n", [])
        #expect(twice.status == 64)
        #expect(twice.stderr.contains("a docker-archive holds one platform"), "\(twice.stderr)")
        let unknown = try build("name: t/x\nplatforms: [linux/amd64]\n", ["--platform", "linux/s390x"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.contains("--platform linux/s390x: not among the spec's platforms (the spec has: linux/amd64)"), "\(unknown.stderr)")
        let malformed = try build("name: t/x\n", ["--platform", "amd64"])
        #expect(malformed.status == 64)
        #expect(malformed.stderr.contains("did you mean `linux/amd64`?"), "\(malformed.stderr)")
    }
}
