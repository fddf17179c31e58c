import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// runAsRoot on a base: the base's layers extracted once into the cache's snapshots and
/// stacked as overlay lower directories, the step's layer cached, volatile files scrubbed,
/// and the sandbox's /dev and network files.
@Suite(.serialized) struct RunAsRootCacheTests {
    let dir: TempDir
    let cache: String

    init() throws {
        dir = try TempDir()
        cache = dir.path + "/cache"
        _ = try makeToolBase(in: dir)
    }

    /// A spec on the three-layer tool base (`oci:base-layout:tool`).
    func spec(_ name: String = "app.yaml", script: String, extra: String = "") throws -> String {
        try dir.write(name, """
            name: kiln-test/rar-cache
            tag: v1
            fromImage: oci:\(dir.path)/base-layout:tool
            \(extra)
            runAsRoot: |
            \(script.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            """)
        return dir.path + "/" + name
    }

    @discardableResult
    func build(_ spec: String, _ out: String, _ more: [String] = [], env: [String: String] = [:], check: Bool = true) throws -> RunResult {
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/" + out, "--cache-dir", cache] + more, env: env, check: check)
    }

    /// The snapshot directories (not `tmp`) with the inode of each one's `root`.
    func snapshots(_ cacheDir: String? = nil) throws -> [String: UInt64] {
        let d = (cacheDir ?? cache) + "/snapshots"
        var out: [String: UInt64] = [:]
        for n in (try? FileManager.default.contentsOfDirectory(atPath: d)) ?? [] where n != "tmp" {
            var st = stat()
            if lstat(d + "/" + n + "/root", &st) == 0 { out[n] = UInt64(st.st_ino) }
        }
        return out
    }

    func tmpLeftovers(_ cacheDir: String? = nil) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: (cacheDir ?? cache) + "/snapshots/tmp")) ?? []
    }

    func diffIDs(_ out: String) throws -> [String] {
        ((try ociImage(dir.path + "/" + out, tag: "v1").config["rootfs"] as! [String: Any])["diff_ids"] as! [String])
    }

    /// `tar -tv` of the image's last layer (gzip or not).
    func listing(_ out: String) throws -> String {
        let hex = try lastLayer(out).split(separator: ":")[1]
        return try run("tar", ["-tvf", "\(dir.path)/\(out)/blobs/sha256/\(hex)"]).stdout
    }

    func lastLayer(_ out: String) throws -> String { try ociImage(dir.path + "/" + out, tag: "v1").layers.last! }

    @Test func snapshotsAreExtractedOnceAndTheStepIsCached() throws {
        let s = try spec(script: "echo ran-the-script\necho one > /srv/made")
        let first = try build(s, "one")
        #expect(first.stderr.contains("ran-the-script") && !first.stderr.contains("from the cache"), "\(first)")
        let snaps = try snapshots()
        // One snapshot per base layer, keyed by diffID (each stands alone).
        // (The umoci layer deletes files: its whiteouts mean something over the layers
        // below only, so it is keyed by chain ID.)
        #expect(snaps.count == 3 && snaps.keys.allSatisfy { $0.hasPrefix("root-") }, "\(snaps)")
        #expect(snaps.keys.filter { $0.contains("-chain-") }.count == 1, "\(snaps)")
        #expect(tmpLeftovers().isEmpty)

        // The same step again: from the cache, the script not run, the same layer.
        let second = try build(s, "two")
        #expect(!second.stderr.contains("ran-the-script") && second.stderr.contains("kiln: runAsRoot: layer ") && second.stderr.contains("from the cache"), "\(second)")
        #expect(try lastLayer("two") == lastLayer("one"))

        // A changed script runs over the same snapshots: nothing extracted again.
        let changed = try spec("changed.yaml", script: "echo ran-the-script\necho two > /srv/made")
        let third = try build(changed, "three")
        #expect(third.stderr.contains("ran-the-script") && !third.stderr.contains("from the cache"), "\(third)")
        #expect(try snapshots() == snaps)
        #expect(try lastLayer("three") != lastLayer("one"))

        // runAsRootCache: false and --no-cache run it again.
        let uncached = try spec("uncached.yaml", script: "echo ran-the-script\necho one > /srv/made", extra: "runAsRootCache: false")
        let fourth = try build(uncached, "four")
        #expect(fourth.stderr.contains("ran-the-script") && !fourth.stderr.contains("from the cache"), "\(fourth)")
        #expect(try lastLayer("four") == lastLayer("one"))
        let fifth = try build(s, "five", ["--no-cache"])
        #expect(fifth.stderr.contains("ran-the-script") && !fifth.stderr.contains("from the cache"), "\(fifth)")
        #expect(try diffIDs("five").last == diffIDs("one").last)
        #expect(try snapshots() == snaps)
    }

    @Test func theCacheKeyFollowsTheContentsTheEnvironmentAndTheBase() throws {
        try dir.write("files/etc/app.conf", "v1\n")
        let script = "echo ran-the-script\ncat /etc/app.conf > /srv/seen"
        let s = try spec(script: script, extra: "contents: [files]")
        try build(s, "one")
        #expect(try build(s, "same").stderr.contains("from the cache"))
        // New contents: the script runs and sees them.
        try dir.write("files/etc/app.conf", "v2\n")
        let r = try build(s, "contents")
        #expect(r.stderr.contains("ran-the-script"), "\(r)")
        // Another environment for the script.
        let env = try spec("env.yaml", script: script, extra: "contents: [files]\nconfig:\n  Env: [\"MODE=other\"]")
        #expect(try build(env, "env").stderr.contains("ran-the-script"))
        // Another base (one more layer on the tool base): its new layer is extracted, the
        // three below are reused.
        let before = try snapshots()
        try dir.write("base2.yaml", """
            name: kiln-test/base2
            tag: v1
            fromImage: oci:\(dir.path)/base-layout:tool
            contents: [files]
            """)
        try kiln(["build", dir.path + "/base2.yaml", "--format", "oci", "-o", dir.path + "/base2", "--cache-dir", cache])
        try dir.write("on2.yaml", """
            name: kiln-test/rar-cache
            tag: v1
            fromImage: oci:\(dir.path)/base2:v1
            runAsRoot: |
              echo ran-the-script
              cat /etc/app.conf > /srv/seen
            """)
        let on2 = try build(dir.path + "/on2.yaml", "on2")
        #expect(on2.stderr.contains("ran-the-script"), "\(on2)")
        let after = try snapshots()
        #expect(after.count == before.count + 1)
        for (k, v) in before { #expect(after[k] == v, "\(k) extracted again") }
    }

    @Test func concurrentBuildsShareTheSnapshots() throws {
        let a = try spec("a.yaml", script: "echo a > /srv/a")
        let b = try spec("b.yaml", script: "echo b > /srv/b")
        let procs = try [(a, "ca"), (b, "cb"), (a, "cc")].map { spec, out -> (Process, String) in
            let log = dir.path + "/\(out).log"
            FileManager.default.createFile(atPath: log, contents: nil)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: kilnPath)
            p.arguments = ["build", spec, "--format", "oci", "-o", dir.path + "/" + out, "--cache-dir", cache]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle(forWritingAtPath: log)
            try p.run()
            return (p, log)
        }
        for (p, log) in procs {
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "\((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
        #expect(try snapshots().count == 3)
        #expect(tmpLeftovers().isEmpty, "\(tmpLeftovers())")
        #expect(try lastLayer("ca") == lastLayer("cc"))
        let r = try build(a, "again")
        #expect(r.stderr.contains("from the cache"), "\(r)")
    }

    /// A build killed in the middle of an extraction leaves a temporary directory that no
    /// later build reads, and that `kiln cache prune` removes.
    @Test func aKillDuringExtractionLeavesNothingTrusted() throws {
        let s = try spec(script: "cat /data/keep/k > /srv/k")
        let log = dir.path + "/killed.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kilnPath)
        p.arguments = ["build", s, "--format", "oci", "-o", dir.path + "/killed", "--cache-dir", cache]
        p.environment = ProcessInfo.processInfo.environment.merging(["KILN_TEST_PAUSE_AT": "snapshot-extract"]) { $1 }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle(forWritingAtPath: log)
        try p.run()
        var paused = false
        for _ in 0..<600 where !paused {
            paused = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("kiln: test pause at snapshot-extract")
            if !paused { usleep(50_000) }
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(paused, "the build never reached the pause point")
        #expect(try snapshots().isEmpty)
        #expect(tmpLeftovers().count == 1, "the half-extracted snapshot is where nothing reads it")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/killed"))

        try build(s, "after")
        #expect(try snapshots().count == 3)
        let out = try runWithRunc(dir.path + "/after", tag: "v1", in: dir, args: ["/bin/cat", "/srv/k"])
        #expect(out == "k\n")
        let pruned = try kiln(["cache", "prune", "--cache-dir", cache])
        #expect(pruned.status == 0)
        #expect(tmpLeftovers().isEmpty)
        #expect(try snapshots().count == 3, "snapshots in use are kept")
        try kiln(["cache", "prune", "--all", "--cache-dir", cache])
        #expect(try snapshots().isEmpty)
    }

    /// More base layers than one mount stacks: the bottom ones merged into a snapshot
    /// keyed by chain ID; the layer is the same as with one lower per layer.
    @Test func aBaseWithMoreLayersThanTheMountTakesIsMerged() throws {
        let s = try spec(script: "ls /data /opt/replace > /srv/listing\nrm /data/keep/k-hardlink")
        try build(s, "stacked")
        let r = try kiln(["build", s, "--format", "oci", "-o", dir.path + "/merged", "--cache-dir", dir.path + "/cache2"],
                         env: ["KILN_TEST_MAX_LOWERS": "2"])
        #expect(r.status == 0)
        let snaps = try snapshots(dir.path + "/cache2")
        #expect(snaps.count == 2 && snaps.keys.contains { $0.contains("-chain-") }, "\(snaps)")
        let (m, st) = (try listing("merged"), try listing("stacked"))
        #expect(try lastLayer("merged") == lastLayer("stacked"), "\(m)\n---\n\(st)")
    }

    @Test func aCorruptBaseLayerIsRefusedAndNothingIsStored() throws {
        let s = try spec(script: "echo hi")
        // Flip one byte in the middle of the biggest base blob.
        let blobs = dir.path + "/base-layout/blobs/sha256"
        let layers = try ociImage(dir.path + "/base-layout", tag: "tool").layers.map { String($0.split(separator: ":")[1]) }
        func size(_ hex: String) -> Int {
            var st = stat()
            return lstat(blobs + "/" + hex, &st) == 0 ? Int(st.st_size) : 0
        }
        let biggest = layers.max { size($0) < size($1) }!
        let path = blobs + "/" + biggest
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[bytes.count / 2] ^= 0xff
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        try bytes.write(to: URL(fileURLWithPath: path))
        let r = try build(s, "corrupt", check: false)
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(r.stderr.contains("fromImage") && (r.stderr.contains("digest mismatch") || r.stderr.contains("gzip") || r.stderr.contains("corrupt")), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/corrupt"))
        let good = try snapshots().keys.filter { $0.hasSuffix(biggest) }
        #expect(good.isEmpty)
        #expect(tmpLeftovers().isEmpty)
    }

    /// A snapshot whose recorded digest is not its key was changed behind Kiln's back:
    /// the build stops with one line naming it, and trusts nothing in it.
    @Test func aDamagedSnapshotIsRefused() throws {
        try build(try spec(script: "echo one"), "one")
        let snaps = try snapshots()
        let victim = snaps.keys.sorted().first!
        try "sha256:0000".write(toFile: cache + "/snapshots/" + victim + "/digest", atomically: false, encoding: .utf8)
        let r = try build(try spec(script: "echo two"), "two", check: false)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(r.stderr.contains("snapshot") && r.stderr.contains(victim) && r.stderr.contains("damaged") && r.stderr.contains("kiln cache prune"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/two"))
        #expect(tmpLeftovers().isEmpty)
        try kiln(["cache", "prune", "--all", "--cache-dir", cache])
        try build(try spec(script: "echo two"), "three")
    }

    /// Without root the snapshots are the user's own (`u<uid>-…`): whiteouts made
    /// without privileges, opaque directories marked with `user.overlay.opaque`.
    @Test(.enabled(if: HostCapabilities.unprivilegedUserNamespaces,
                   "needs root with setpriv, and unprivileged user namespaces (kernel, sysctl or LSM forbid them)"))
    func rootlessSnapshotsStackTheBaseToo() throws {
        let s = try spec(script: "ls /data /opt/replace > /srv/listing")
        try sh("chmod -R a+rwX '\(dir.path)'")
        func rootless(_ out: String) throws -> RunResult {
            try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "TMPDIR=\(dir.path)", "HOME=\(dir.path)",
                                         kilnPath, "build", s, "--format", "oci", "-o", dir.path + "/" + out,
                                         "--cache-dir", dir.path + "/ucache"], check: false)
        }
        let r = try rootless("u1")
        #expect(r.status == 0, "\(r)")
        let snaps = try snapshots(dir.path + "/ucache")
        #expect(snaps.count == 3 && snaps.keys.allSatisfy { $0.hasPrefix("u65534-") }, "\(snaps)")
        let hex = try lastLayer("u1").split(separator: ":")[1]
        let listing = try run("tar", ["-xzOf", "\(dir.path)/u1/blobs/sha256/\(hex)", "srv/listing"]).stdout
        #expect(listing == "/data:\nadded\nk-symlink\nkeep\n\n/opt/replace:\nfresh\n", "\(listing)")
        #expect(try rootless("u2").stderr.contains("from the cache"))
    }

    /// A base layer writing through its own symlink is refused while it is extracted;
    /// nothing lands outside the snapshot and nothing is kept.
    @Test func aBaseLayerWritingThroughASymlinkIsRefused() throws {
        let outside = dir.path + "/outside"
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        try run("python3", ["-c", """
            import tarfile, io, sys
            t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
            i = tarfile.TarInfo('lnk'); i.type = tarfile.SYMTYPE; i.linkname = sys.argv[2]; t.addfile(i)
            d = b'pwned'; i = tarfile.TarInfo('lnk/pwned'); i.size = len(d); t.addfile(i, io.BytesIO(d))
            t.close()
            """, dir.path + "/evil.tar", outside])
        try run("umoci", ["raw", "add-layer", "--image", dir.path + "/base-layout:tool", "--tag", "evil", dir.path + "/evil.tar"])
        try dir.write("evil.yaml", "name: kiln-test/evil\ntag: v1\nfromImage: oci:\(dir.path)/base-layout:evil\nrunAsRoot: echo hi\n")
        let r = try build(dir.path + "/evil.yaml", "evil", check: false)
        #expect(r.status == 1 && r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(r.stderr.contains("lnk/pwned") && r.stderr.contains("symlink"), "\(r)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(tmpLeftovers().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/evil"))
    }

    @Test func aFailingScriptShowsItsLastLinesAndCachesNothing() throws {
        let s = try spec(script: "echo line one\necho line two\necho the last line >&2\nexit 3")
        let r = try build(s, "failed", check: false)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r)")
        #expect(r.stderr.contains("runAsRoot failed with exit status 3") && r.stderr.contains("the last line"), "\(r)")
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/layers")) ?? []
        #expect(!entries.contains { $0.hasPrefix("runasroot-") }, "\(entries)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/failed"))
    }

    /// The volatile files of apt, dpkg, debconf, ldconfig and Python are not in the layer;
    /// `scrub: false` keeps them. A deleted base file that is scrubbed stays as it was.
    @Test func volatileFilesAreScrubbed() throws {
        try sh("""
            mkdir -p \(dir.path)/vol/var/log/apt \(dir.path)/vol/var/cache/apt \(dir.path)/vol/var/lib/dpkg \
              \(dir.path)/vol/var/cache/debconf \(dir.path)/vol/var/cache/ldconfig \(dir.path)/vol/usr/lib/py/__pycache__
            echo base > \(dir.path)/vol/var/log/alternatives.log
            echo base > \(dir.path)/vol/usr/lib/py/__pycache__/old.pyc
            """)
        let script = """
            echo x > /var/cache/apt/pkgcache.bin
            echo x > /var/cache/apt/srcpkgcache.bin
            echo x > /var/cache/apt/keep.txt
            echo x > /var/log/apt/history.log
            echo x > /var/log/apt/term.log
            echo x > /var/log/dpkg.log
            rm /var/log/alternatives.log
            echo x > /var/lib/dpkg/status-old
            echo x > /var/lib/dpkg/status
            echo x > /var/cache/debconf/config.dat-old
            echo x > /var/cache/ldconfig/aux-cache
            mkdir -p /usr/lib/py/new/__pycache__
            echo x > /usr/lib/py/new/__pycache__/m.pyc
            echo x > /usr/lib/py/new/m.py
            echo x > /usr/lib/py/__pycache__/added.pyc
            """
        func names(_ out: String) throws -> [String] {
            let hex = try lastLayer(out).split(separator: ":")[1]
            return try run("tar", ["-tzf", "\(dir.path)/\(out)/blobs/sha256/\(hex)"]).stdout.split(separator: "\n").map(String.init)
        }
        let scrubbed = try names({ try build(try spec(script: script, extra: "contents: [vol]"), "scrubbed"); return "scrubbed" }())
        let gone = ["var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", "var/log/apt/history.log", "var/log/apt/term.log",
                    "var/log/dpkg.log", "var/log/.wh.alternatives.log", "var/lib/dpkg/status-old",
                    "var/cache/debconf/config.dat-old", "var/cache/ldconfig/aux-cache", "usr/lib/py/new/__pycache__/",
                    "usr/lib/py/new/__pycache__/m.pyc", "usr/lib/py/__pycache__/added.pyc"]
        for g in gone { #expect(!scrubbed.contains(g), "\(g) in \(scrubbed)") }
        for k in ["var/cache/apt/keep.txt", "var/lib/dpkg/status", "usr/lib/py/new/m.py"] { #expect(scrubbed.contains(k), "\(k) missing") }

        let kept = try names({ try build(try spec("keep.yaml", script: script, extra: "contents: [vol]\nscrub: false"), "kept"); return "kept" }())
        for g in gone { #expect(kept.contains(g), "\(g) not in \(kept)") }
    }

    /// A fresh devpts with /dev/ptmx, a tmpfs /dev/shm, the usual nodes; with the network,
    /// the host's resolv.conf and hosts, read-only and not in the layer.
    @Test func theSandboxHasPtysShmAndTheHostsNameServers() throws {
        let script = """
            while read -r src dst type opts rest; do
              case "$dst $type" in
                "/dev/pts devpts") case "$opts" in *ptmxmode=666*) echo "devpts ok" ;; esac ;;
                "/dev/shm tmpfs") echo "shm ok" ;;
                "/etc/resolv.conf "*) case "$opts" in ro,*) echo "resolv ro" ;; esac ;;
              esac
            done < /proc/mounts
            for n in null zero full random urandom tty; do test -c /dev/$n || echo "no /dev/$n"; done
            test -L /dev/ptmx && test -c /dev/pts/ptmx && echo "ptmx ok"
            exec 3<>/dev/ptmx
            ls /dev/pts
            echo shared > /dev/shm/x && echo "shm writable"
            cat /etc/resolv.conf > /srv/resolv-seen
            if echo nope > /etc/resolv.conf 2>/dev/null; then echo "resolv writable"; fi
            """
        let r = try build(try spec(script: script, extra: "runAsRootNetwork: true"), "dev")
        for line in ["devpts ok", "shm ok", "resolv ro", "ptmx ok", "shm writable"] { #expect(r.stderr.contains(line), "\(line): \(r)") }
        #expect(!r.stderr.contains("no /dev/") && !r.stderr.contains("resolv writable"), "\(r)")
        // A terminal opened: the private instance shows it as 0.
        #expect(r.stderr.contains("0\nptmx\n"), "\(r)")
        let hex = try lastLayer("dev").split(separator: ":")[1]
        let names = try run("tar", ["-tzf", "\(dir.path)/dev/blobs/sha256/\(hex)"]).stdout.split(separator: "\n").map(String.init)
        #expect(!names.contains { $0.hasPrefix("etc/") || $0.hasPrefix("dev/") }, "\(names)")
        let seen = try run("tar", ["-xzOf", "\(dir.path)/dev/blobs/sha256/\(hex)", "srv/resolv-seen"]).stdout
        #expect(seen == (try String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)))
    }
}

/// Rootless runAsRoot with a subordinate range: ids 1…N of the sandbox are the range
/// /etc/subuid grants, so owners other than root reach the layer.
@Suite struct RunAsRootSubordinateIDTests {
    /// True when nobody (65534), whom the test runs Kiln as, has ranges in both files.
    static let nobodyHasRanges: Bool = {
        func has(_ file: String) -> Bool {
            ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").contains {
                let f = $0.split(separator: ":")
                return f.count == 3 && (f[0] == "nobody" || f[0] == "65534") && (Int(f[2]) ?? 0) >= 2000
            }
        }
        return HostCapabilities.unprivilegedUserNamespaces && has("/etc/subuid") && has("/etc/subgid")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/newuidmap")
            && FileManager.default.isExecutableFile(atPath: "/usr/bin/newgidmap")
    }()

    @Test(.enabled(if: nobodyHasRanges,
                   "needs /etc/subuid and /etc/subgid to grant nobody (65534) at least 2000 ids, newuidmap/newgidmap, and unprivileged user namespaces"))
    func ownersBeyondRootReachTheLayer() throws {
        let dir = try TempDir()
        try dir.write("app.yaml", """
            name: kiln-test/subid
            tag: v1
            contents:
              - closure: /bin/sh
              - closure: /bin/mkdir
              - closure: /bin/chown
              - closure: /bin/cat
            runAsRoot: |
              mkdir -p /srv/x
              echo hi > /srv/x/f
              chown 1001:1002 /srv/x/f
              cat /proc/self/uid_map
            """)
        try sh("chmod -R a+rwX '\(dir.path)'")
        let r = try run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "env", "TMPDIR=\(dir.path)", "HOME=\(dir.path)",
                                             kilnPath, "build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/img",
                                             "--cache-dir", dir.path + "/cache"], check: false)
        #expect(r.status == 0, "\(r)")
        let img = try ociImage(dir.path + "/img", tag: "v1")
        let hex = img.layers.last!.split(separator: ":")[1]
        let listing = try run("tar", ["-tvzf", "\(dir.path)/img/blobs/sha256/\(hex)"]).stdout
        #expect(listing.contains("1001/1002") && listing.contains("srv/x/f"), "\(listing)")
        #expect(!listing.contains("65534"), "\(listing)")
    }
}
