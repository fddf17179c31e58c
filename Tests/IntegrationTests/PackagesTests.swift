import Foundation
import Testing

/// The signed test repository of `scripts/make-test-apt-repo`, made once per test run.
enum TestRepo {
    static let tools = ["dpkg-deb", "dpkg-scanpackages", "gpg", "gpgv", "gcc", "xz"]
    static var available: Bool { tools.allSatisfy(hasTool) }

    static let dir: String = {
        let d = NSTemporaryDirectory() + "kiln-apt-\(UUID().uuidString.prefix(8))"
        _ = try? run(packageRoot + "/scripts/make-test-apt-repo", [d])
        return d
    }()

    static var uri: String { "file:" + dir + "/debian" }
    static var keyring: String { dir + "/keyring.gpg" }
}

func hasTool(_ name: String) -> Bool {
    (try? run("/bin/sh", ["-c", "command -v \(name)"], check: false).status) == 0
}

/// Writes a spec installing `packages` from the test repository (or `repository`).
func writePackageSpec(in dir: TempDir, name: String = "kiln-test/pkgs", packages: [String],
                      repository: String? = nil, keyring: String? = nil, extra: String = "") throws -> String {
    let spec = """
        name: \(name)
        tag: v1
        repositories:
          - url: \(repository ?? TestRepo.uri)
            suite: kiln
            components: [main]
            keyring: \(keyring ?? TestRepo.keyring)
        packages: [\(packages.joined(separator: ", "))]
        config:
          Entrypoint: ["/usr/bin/kiln-hello"]
        \(extra)
        """
    try dir.write("image.yaml", spec)
    return dir.path + "/image.yaml"
}

/// Layer diffIDs and history of a docker-archive, by the history comment of each layer.
func layersByComment(_ archive: String) throws -> [String: String] {
    let manifest = try parseJSON(try run("tar", ["-xOf", archive, "manifest.json"]).stdout) as! [[String: Any]]
    let configName = manifest[0]["Config"] as! String
    let config = try parseJSON(try run("tar", ["-xOf", archive, configName]).stdout) as! [String: Any]
    let diffIDs = (config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
    let history = (config["history"] as! [[String: Any]]).filter { $0["empty_layer"] as? Bool != true }
    var out: [String: String] = [:]
    for (h, d) in zip(history, diffIDs) { out[(h["comment"] as? String) ?? "?"] = d }
    return out
}

@Suite(.serialized, .enabled(if: TestRepo.available, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz (scripts/setup --test installs them)"))
struct PackagesTests {
    let cache = try! TempDir()
    var cacheFlags: [String] { ["--cache-dir", cache.path + "/cache"] }

    @Test func packageClosureRunsUnderPodmanWithOneLayerPerPackage() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"])
        let r = try kiln(["build", spec, "-o", dir.path + "/img.tar"] + cacheFlags)
        // Maintainer scripts are not run, and the build says which packages had them.
        #expect(r.stderr.contains("maintainer scripts not run") && r.stderr.contains("kiln-hello"))
        #expect(r.stderr.contains("no lock file"))

        let layers = try layersByComment(dir.path + "/img.tar")
        // kiln-hello Depends kiln-greeting (>= 1.0) (not 0.9), kiln-shell-utils | kiln-alt-utils
        // (the first does not exist), Pre-Depends kiln-base-files.
        for p in ["kiln-hello 1.0-1", "kiln-greeting 1.0", "kiln-base-files 1.0", "kiln-alt-utils 1.0"] {
            #expect(layers[p] != nil, "no layer for \(p): \(layers.keys.sorted())")
        }
        #expect(layers.count == 5)  // four packages and Kiln's metadata layer

        // Merged /usr: /lib/kiln/base.txt of the package is at usr/lib, /lib a symlink.
        try kiln(["export", "docker-archive:" + dir.path + "/img.tar", "-o", dir.path + "/rootfs.tar"])
        let listing = try run("tar", ["-tvf", dir.path + "/rootfs.tar"]).stdout
        #expect(listing.contains("usr/lib/kiln/base.txt"))
        #expect(listing.split(separator: "\n").contains { $0.contains(" lib -> usr/lib") })
        #expect(listing.contains("var/lib/dpkg/status.d/kiln-hello"))
        let status = try run("tar", ["-xOf", dir.path + "/rootfs.tar", "var/lib/dpkg/status.d/kiln-greeting"]).stdout
        #expect(status.contains("Package: kiln-greeting") && status.contains("Version: 1.0"))

        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", dir.path + "/img.tar"])
        let out = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                              "localhost/kiln-test/pkgs:v1"])
        #expect(out.stdout == "hello from kiln-greeting 1.0\n")
    }

    @Test func lockRoundTripIsByteIdenticalAfterWipingTheCache() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"])
        try kiln(["lock", spec] + cacheFlags)
        let lockText = try String(contentsOfFile: dir.path + "/image.lock.json", encoding: .utf8)
        let lock = try parseJSON(lockText) as! [String: Any]
        let arch = try run("dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let locked = (lock["packages"] as! [String: Any])[arch] as! [[String: Any]]
        #expect(locked.map { $0["name"] as! String } == ["kiln-alt-utils", "kiln-base-files", "kiln-greeting", "kiln-hello"])
        #expect(locked.allSatisfy { ($0["sha256"] as! String).count == 64 && ($0["filename"] as! String).hasSuffix(".deb") })
        #expect(((lock["repositories"] as! [[String: Any]])[0]["release"] as! String).hasPrefix("sha256:"))

        // The lock's bytes depend only on the spec and the repository.
        try kiln(["lock", spec, "--update", "--no-cache"])
        #expect(try String(contentsOfFile: dir.path + "/image.lock.json", encoding: .utf8) == lockText)

        let first = try kiln(["build", spec, "--locked", "-o", dir.path + "/a.tar"] + cacheFlags)
        #expect(!first.stderr.contains("no lock file"))
        try FileManager.default.removeItem(atPath: cache.path + "/cache")
        try kiln(["build", spec, "--locked", "-o", dir.path + "/b.tar"] + cacheFlags)
        #expect(try dir.bytes("a.tar") == dir.bytes("b.tar"))
        try kiln(["build", spec, "--locked", "--no-cache", "-o", dir.path + "/c.tar"])
        #expect(try dir.bytes("a.tar") == dir.bytes("c.tar"))

        // A warm cache and a lock: the repository is not needed at all.
        let moved = TestRepo.dir + "-moved"
        try FileManager.default.moveItem(atPath: TestRepo.dir, toPath: moved)
        defer { try? FileManager.default.moveItem(atPath: moved, toPath: TestRepo.dir) }
        try kiln(["build", spec, "--locked", "-o", dir.path + "/d.tar"] + cacheFlags)
        #expect(try dir.bytes("a.tar") == dir.bytes("d.tar"))
        try FileManager.default.moveItem(atPath: moved, toPath: TestRepo.dir)

        // The spec changed: --locked names the difference; without it the build resolves afresh.
        _ = try writePackageSpec(in: dir, packages: ["kiln-hello", "kiln-virtual-user"])
        let refused = try kiln(["build", spec, "--locked", "-o", dir.path + "/e.tar"] + cacheFlags, check: false)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("kiln-virtual-user") && refused.stderr.contains("kiln lock --update"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/e.tar"))
        try kiln(["lock", spec, "--update"] + cacheFlags)
        try kiln(["build", spec, "--locked", "-o", dir.path + "/e.tar"] + cacheFlags)
    }

    @Test func aLockedPackageThatVanishedFromItsRepositoryIsNamed() throws {
        let repo = try TempDir()
        try run("cp", ["-a", TestRepo.dir + "/.", repo.path])
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], repository: "file:" + repo.path + "/debian",
                                        keyring: repo.path + "/keyring.gpg")
        try kiln(["lock", spec, "--cache-dir", dir.path + "/c1"])
        try sh("rm \(repo.path)/debian/pool/main/k/kiln-greeting/kiln-greeting_1.0_all.deb")
        let r = try kiln(["build", spec, "--locked", "-o", dir.path + "/img.tar", "--cache-dir", dir.path + "/c2"], check: false)
        #expect(r.status == 1 && r.stderr.contains("kiln-greeting_1.0_all.deb") && r.stderr.contains("kiln lock --update"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))
    }

    @Test func twoImagesSharingAPackageShareItsLayer() throws {
        let a = try TempDir(), b = try TempDir()
        let specA = try writePackageSpec(in: a, name: "kiln-test/a", packages: ["kiln-hello"])
        let specB = try writePackageSpec(in: b, name: "kiln-test/b", packages: ["kiln-virtual-user", "kiln-greeting"],
                                         extra: "created: 2024-05-05T00:00:00Z")
        try kiln(["build", specA, "-o", a.path + "/img.tar", "--no-cache"])
        try kiln(["build", specB, "-o", b.path + "/img.tar", "--no-cache"])
        let la = try layersByComment(a.path + "/img.tar"), lb = try layersByComment(b.path + "/img.tar")
        #expect(la["kiln-greeting 1.0"] != nil)
        #expect(la["kiln-greeting 1.0"] == lb["kiln-greeting 1.0"])
        #expect(la["kiln-alt-utils 1.0"] == lb["kiln-alt-utils 1.0"])
    }

    @Test func servedOverHTTPOnLoopback() throws {
        let dir = try TempDir()
        let server = try HTTPServer(directory: TestRepo.dir)
        defer { server.stop() }
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], repository: "http://127.0.0.1:\(server.port)/debian")
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout"] + cacheFlags)
        try run("umoci", ["unpack", "--image", dir.path + "/layout:v1", dir.path + "/bundle"])
        let message = try String(contentsOfFile: dir.path + "/bundle/rootfs/usr/share/kiln-greeting/message", encoding: .utf8)
        #expect(message.hasPrefix("hello from kiln-greeting 1.0"))
    }

    @Test(arguments: [
        (["kiln-helo"], "kiln-hello"),                                  // unknown, with a did-you-mean
        (["kiln-broken"], "kiln-missing"),                              // unsatisfiable: names the dependency
        (["kiln-conflicting", "kiln-greeting"], "kiln-conflicting"),    // conflicts
    ])
    func badPackagesAreOneClearLine(packages: [String], mentioned: String) throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: packages)
        let r = try kiln(["build", spec, "-o", dir.path + "/img.tar"] + cacheFlags, check: false)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains(mentioned), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))
    }

    /// A base image whose dpkg database lists `installed` (name, version) pairs.
    func baseWithStatus(_ dir: TempDir, _ installed: [(String, String)]) throws -> String {
        let status = installed.map { "Package: \($0.0)\nStatus: install ok installed\nVersion: \($0.1)\nArchitecture: all\nMaintainer: x <x@x>\nDescription: x\n" }
            .joined(separator: "\n")
        try dir.write("base/var/lib/dpkg/status", status)
        try dir.write("base/usr/share/marker", "base\n")
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/base/bin", withDestinationPath: "usr/bin")
        try dir.write("base.yaml", "name: kiln-test/base\ntag: b\ncontents: [base]\n")
        try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", dir.path + "/base-layout"])
        return "oci:" + dir.path + "/base-layout:b"
    }

    @Test func onABaseInstalledPackagesSatisfyDependenciesAndJoinItsDatabase() throws {
        let dir = try TempDir()
        let base = try baseWithStatus(dir, [("kiln-base-files", "1.0")])
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], extra: "fromImage: \(base)")
        try kiln(["build", spec, "-o", dir.path + "/img.tar"] + cacheFlags)
        let layers = try layersByComment(dir.path + "/img.tar")
        #expect(layers["kiln-base-files 1.0"] == nil)  // the base has it
        #expect(layers["kiln-greeting 1.0"] != nil)
        try kiln(["export", "docker-archive:" + dir.path + "/img.tar", "-o", dir.path + "/rootfs.tar"])
        let status = try run("tar", ["-xOf", dir.path + "/rootfs.tar", "var/lib/dpkg/status"]).stdout
        #expect(status.contains("Package: kiln-base-files") && status.contains("Package: kiln-greeting\nStatus: install ok installed"))
        let list = try run("tar", ["-xOf", dir.path + "/rootfs.tar", "var/lib/dpkg/info/kiln-greeting.list"]).stdout
        #expect(list.contains("/usr/share/kiln-greeting/message"))
        #expect(try run("tar", ["-tf", dir.path + "/rootfs.tar"]).stdout.contains("usr/share/marker"))

        // An installed version the dependency does not accept is an error naming both.
        let old = try TempDir()
        let oldBase = try baseWithStatus(old, [("kiln-greeting", "0.9")])
        let oldSpec = try writePackageSpec(in: old, packages: ["kiln-hello"], extra: "fromImage: \(oldBase)")
        let r = try kiln(["build", oldSpec, "-o", old.path + "/img.tar"] + cacheFlags, check: false)
        #expect(r.status == 1 && r.stderr.contains("0.9") && r.stderr.contains("1.0"), "\(r)")
    }

    @Test func sameBytesWhateverTheUmaskTimeZoneDirectoryAndUser() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"])
        try kiln(["build", spec, "-o", dir.path + "/a.tar", "--no-cache"])
        let other = try TempDir()
        try run("/bin/sh", ["-c", "umask 077; cd \(other.path) && TZ=Pacific/Kiritimati LC_ALL=C \(kilnPath) build \(spec) -o \(dir.path)/b.tar --no-cache"])
        #expect(try dir.bytes("a.tar") == dir.bytes("b.tar"))
    }

    @Test(.enabled(if: getuid() == 0 && hasTool("setpriv"), "needs root and setpriv to build as another user"))
    func sameBytesBuiltByAnotherUser() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"])
        try kiln(["build", spec, "-o", dir.path + "/a.tar", "--no-cache"])
        try run("chmod", ["-R", "a+rwX", dir.path, TestRepo.dir])
        try run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "HOME=/tmp", kilnPath, "build", spec, "-o", dir.path + "/c.tar", "--no-cache"])
        #expect(try dir.bytes("a.tar") == dir.bytes("c.tar"))
    }

    @Test func pushedPackageImageIsWhatSkopeoSeesAndCopies() throws {
        let reg = try TestRegistry()
        defer { reg.stop() }
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"])
        let ref = "docker://\(reg.host)/kiln/pkgs:v1"
        let pushed = try parseJSON(try kiln(["build", spec, "--push", ref, "--json"] + cacheFlags).stdout) as! [String: Any]
        let info = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
        #expect(info["Digest"] as? String == pushed["manifestDigest"] as? String)
        #expect((info["Layers"] as! [Any]).count == 5)
        // The same build to an OCI layout has the same manifest: one synthesis for all sinks.
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout"] + cacheFlags)
        let local = try parseJSON(try run("skopeo", ["inspect", "oci:\(dir.path)/layout:v1"]).stdout) as! [String: Any]
        #expect(local["Digest"] as? String == info["Digest"] as? String)
        try run("skopeo", ["copy", "--src-tls-verify=false", ref, "oci:\(dir.path)/copied:v1"])
        try run("umoci", ["unpack", "--image", dir.path + "/copied:v1", dir.path + "/bundle"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/bundle/rootfs/usr/bin/kiln-hello"))
    }

    @Test func unreachableRepositoryAndWrongKeyAreOneClearLine() throws {
        let dir = try TempDir()
        // Port 9 (discard) on loopback: nothing listens there.
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], repository: "http://127.0.0.1:9/debian")
        let r = try kiln(["build", spec, "-o", dir.path + "/img.tar", "--no-cache"], check: false)
        #expect(r.status == 1 && r.stderr.contains("127.0.0.1:9"), "\(r)")
        #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }.count == 1, "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))

        let wrong = try writePackageSpec(in: dir, packages: ["kiln-hello"], keyring: TestRepo.dir + "/keyring2.gpg")
        let w = try kiln(["build", wrong, "-o", dir.path + "/img.tar", "--no-cache"], check: false)
        #expect(w.status == 1 && w.stderr.contains("InRelease"), "\(w)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))
    }

    @Test func tamperedRepositoriesAreRefusedWithNothingWritten() throws {
        // A copy of the repository to damage, one way at a time.
        func damaged(_ body: (String) throws -> Void) throws -> (RunResult, TempDir) {
            // (A failed build must leave no output; the intact copy's output is checked by status.)
            let repo = try TempDir()
            try run("cp", ["-a", TestRepo.dir + "/.", repo.path])
            try body(repo.path + "/debian")
            let dir = try TempDir()
            let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], repository: "file:" + repo.path + "/debian")
            let r = try kiln(["build", spec, "-o", dir.path + "/img.tar", "--no-cache"], check: false)
            #expect(FileManager.default.fileExists(atPath: dir.path + "/img.tar") == (r.status == 0))
            return (r, dir)
        }
        let (badSig, _) = try damaged { repo in
            try sh("sed -i 's/^Codename: kiln/Codename: kilm/' \(repo)/dists/kiln/InRelease")
        }
        #expect(badSig.status == 1 && badSig.stderr.contains("InRelease"), "\(badSig)")

        let (badDeb, _) = try damaged { repo in
            try sh("f=$(ls \(repo)/pool/main/k/kiln-greeting/*1.0*.deb); printf 'X' | dd of=$f bs=1 seek=200 conv=notrunc 2>/dev/null")
        }
        #expect(badDeb.status == 1 && badDeb.stderr.contains("kiln-greeting"), "\(badDeb)")

        let (intact, _) = try damaged { _ in }
        #expect(intact.status == 0, "\(intact)")  // the undamaged copy builds: the failures above are the damage
    }

    @Test(.enabled(if: hasTool("pyspdxtools"), "needs pyspdxtools (pip install spdx-tools; scripts/setup --test installs it)"))
    func sbomIsValidSPDXAndDeterministic() throws {
        let dir = try TempDir()
        try dir.write("note.txt", "a file item\n")
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], extra: """
            contents:
              - source: note.txt
                target: /etc/note.txt
            """)
        try kiln(["build", spec, "-o", dir.path + "/a.tar", "--sbom", dir.path + "/a.spdx.json"] + cacheFlags)
        try kiln(["build", spec, "-o", dir.path + "/b.tar", "--sbom", dir.path + "/b.spdx.json", "--no-cache"])
        #expect(try dir.bytes("a.spdx.json") == dir.bytes("b.spdx.json"))
        try run("pyspdxtools", ["-i", dir.path + "/a.spdx.json"])
        let doc = try parseJSON(try String(contentsOfFile: dir.path + "/a.spdx.json", encoding: .utf8)) as! [String: Any]
        let packages = doc["packages"] as! [[String: Any]]
        let hello = try #require(packages.first { $0["name"] as? String == "kiln-hello" })
        #expect(hello["versionInfo"] as? String == "1.0-1")
        let refs = hello["externalRefs"] as! [[String: Any]]
        #expect((refs[0]["referenceLocator"] as! String).hasPrefix("pkg:deb/debian/kiln-hello@1.0-1?arch="))
        let files = doc["files"] as! [[String: Any]]
        let algorithms = Set((files[0]["checksums"] as! [[String: Any]]).map { $0["algorithm"] as! String })
        #expect(algorithms == ["SHA1", "SHA256"])
    }
}

/// The host's apt sources, when this machine reaches them (checked with a 15 s fetch of
/// the first source's InRelease).
enum HostSources {
    static let reachable: Bool = {
        guard hasTool("curl") else { return false }
        let script = """
            f=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
            [ -n "$f" ] || exit 1
            uri=$(awk '/^URIs:/ {print $2; exit}' "$f"); suite=$(awk '/^Suites:/ {print $2; exit}' "$f")
            curl -sf --max-time 15 -o /dev/null "$uri/dists/$suite/InRelease"
            """
        return (try? run("/bin/sh", ["-c", script], check: false).status) == 0
    }()
}

@Suite(.serialized, .enabled(if: HostSources.reachable, "the host's apt sources are not reachable from here"))
struct HostPackagesTests {
    @Test func python3AndCACertificatesFromTheHostsSourcesRunUnderPodman() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/python
            tag: v1
            repositories: [host]
            packages: [python3, ca-certificates]
            config:
              Entrypoint: ["/usr/bin/python3"]
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", dir.path + "/img.tar"])
        let out = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                              "localhost/kiln-test/python:v1", "-c",
                              "import json, ssl; print(json.dumps(ssl.create_default_context().cert_store_stats()['x509_ca'] > 100))"])
        #expect(out.stdout == "true\n")
    }
}

/// `python3 -m http.server` on 127.0.0.1 and a free port, serving a directory.
final class HTTPServer {
    let process = Process()
    let port: Int

    init(directory: String) throws {
        port = Int.random(in: 20000...60000)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<100 {
            if (try? run("curl", ["-sf", "-o", "/dev/null", "http://127.0.0.1:\(port)/"], check: false).status) == 0 { return }
            usleep(50_000)
        }
        stop()
        throw CommandFailed(command: "python3 -m http.server", result: RunResult(status: 1, stdout: "", stderr: "did not start on port \(port)"))
    }

    func stop() {
        // SIGKILL: children of the test process may inherit a mask that blocks SIGTERM.
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
