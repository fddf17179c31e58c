import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Contents on a base never break it silently (README "Contents on a base").
enum BaseSafetyHost {
    static var canRun: Bool { geteuid() == 0 && hasTool("runc") && hasTool("umoci") }
    /// The Debian 13 base of the isolate test: mmdebstrap from the host's Debian mirror
    /// (DebianBaseSupport.swift), when it is reachable.
    static var trixie: Bool { canRun && DebianBases.trixieBase != nil }
}

/// A merged-/usr base made by Kiln from host programs (`bin`, `lib`, `lib64` are symlinks
/// into `/usr`, as on the host): `sh`, `ls`, `wc`, `cat`. OCI layout, tag `v1`.
private func makeMergedUsrBase(in dir: TempDir) throws -> String {
    try dir.write("base.yaml", """
        name: kiln-test/merged-usr
        tag: v1
        contents:
          - closure: /bin/sh
          - closure: /bin/ls
          - closure: /usr/bin/wc
          - closure: /bin/cat
        config:
          Env: ["PATH=/usr/bin:/bin"]
        """)
    let layout = dir.path + "/base-layout"
    try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", layout])
    return layout
}

/// The entries of the top layer of `layout:tag` (`tar -t`).
private func topLayerEntries(_ layout: String, tag: String) throws -> [String] {
    let layers = try ociImage(layout, tag: tag).layers
    let hex = layers.last!.split(separator: ":")[1]
    return try run("tar", ["-tf", "\(layout)/blobs/sha256/\(hex)"]).stdout.split(separator: "\n").map(String.init)
}

@Suite(.serialized, .enabled(if: BaseSafetyHost.canRun, "needs root, runc and umoci"))
struct BaseSafetyTests {
    let cache = try! TempDir()
    var cacheFlags: [String] { ["--cache-dir", cache.path + "/cache"] }

    @Test func aTargetBelowTheBasesLibSymlinkGoesThroughIt() throws {
        let dir = try TempDir()
        let base = try makeMergedUsrBase(in: dir)
        try dir.write("foo.txt", "foo\n")
        try dir.write("image.yaml", """
            name: kiln-test/on-base
            tag: v1
            fromImage: oci:\(base):v1
            contents:
              - {source: ./foo.txt, target: /lib/x86_64-linux-gnu/foo.txt}
            """)
        let out = dir.path + "/out"
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags)
        let entries = try topLayerEntries(out, tag: "v1")
        #expect(entries.contains("usr/lib/x86_64-linux-gnu/foo.txt"), "\(entries)")
        #expect(!entries.contains { $0 == "lib/" || $0.hasPrefix("lib/") }, "\(entries)")
        let ran = try runWithRunc(out, tag: "v1", in: dir, args: ["/bin/sh", "-c", "ls /lib/x86_64-linux-gnu | wc -l; cat /lib/x86_64-linux-gnu/foo.txt"])
        let lines = ran.split(separator: "\n")
        #expect(Int(lines.first ?? "") ?? 0 > 1, "\(ran)")
        #expect(lines.last == "foo")
    }

    @Test func filesTheBaseAlreadyHasAreLeftOut() throws {
        let dir = try TempDir()
        let base = try makeMergedUsrBase(in: dir)
        try dir.write("new.txt", "new\n")
        try dir.write("image.yaml", """
            name: kiln-test/on-base
            tag: v1
            fromImage: oci:\(base):v1
            contents:
              - closure: /bin/ls
              - {source: ./new.txt, target: /srv/new.txt}
            """)
        let out = dir.path + "/out"
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags)
        // ls and its libraries (and the /bin, /lib symlinks) are in the base already.
        #expect(try topLayerEntries(out, tag: "v1") == ["srv/", "srv/new.txt"])
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/bin/ls", "/srv"]) == "new.txt\n")
        // The base's listing is kept per layer, by diffID, for the next build.
        let diffIDs = (try ociImage(base, tag: "v1").config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        for d in diffIDs {
            let listing = cache.path + "/cache/base-listings/" + d.dropFirst("sha256:".count)
            #expect(FileManager.default.fileExists(atPath: listing), "no listing for \(d)")
        }
    }

    @Test func replacingABaseLibraryIsAnErrorUnlessAllowed() throws {
        let dir = try TempDir()
        let base = try makeMergedUsrBase(in: dir)
        try dir.write("libc.so.6", "not a libc\n")
        func spec(_ option: String) throws -> String {
            try dir.write("image.yaml", """
                name: kiln-test/on-base
                tag: v1
                fromImage: oci:\(base):v1
                \(option)
                contents:
                  - {source: ./libc.so.6, target: /lib/x86_64-linux-gnu/libc.so.6}
                """)
            return dir.path + "/image.yaml"
        }
        let out = dir.path + "/out"
        let r = try kiln(["build", try spec(""), "--format", "oci", "-o", out] + cacheFlags, check: false)
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("image.yaml:6: contents[0] would replace a file of the base with different one: /usr/lib/x86_64-linux-gnu/libc.so.6"), "\(r.stderr)")
        #expect(r.stderr.contains("`onConflict: replace`") && r.stderr.contains("`onConflict: keep`"))
        #expect(!FileManager.default.fileExists(atPath: out))

        // keep: the base's libc stays, so its programs still run.
        try kiln(["build", try spec("onConflict: keep"), "--format", "oci", "-o", out] + cacheFlags)
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/bin/ls", "/"]).contains("usr"))

        // replace: the item's file is in the new layer.
        let replaced = dir.path + "/replaced"
        try kiln(["build", try spec("onConflict: replace"), "--format", "oci", "-o", replaced] + cacheFlags)
        #expect(try topLayerEntries(replaced, tag: "v1").contains("usr/lib/x86_64-linux-gnu/libc.so.6"))
    }

    @Test func anIsolatedClosureRunsBesideTheBasesOwnPrograms() throws {
        let dir = try TempDir()
        let base = try makeMergedUsrBase(in: dir)
        try dir.write("image.yaml", """
            name: kiln-test/isolated
            tag: v1
            fromImage: oci:\(base):v1
            contents:
              - {closure: /usr/bin/perl, isolate: true, target: /usr/local/bin/perl}
            """)
        let out = dir.path + "/out"
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags)
        let entries = try topLayerEntries(out, tag: "v1")
        let outside = entries.filter { !$0.hasPrefix("opt/") && !$0.hasPrefix("usr/local/") && $0 != "usr/" }
        #expect(outside.isEmpty, "the isolated closure touches the base: \(outside)")
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/usr/local/bin/perl", "-e", "print qq(isolated $0\\n)"])
                == "isolated -e\n")
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/bin/ls", "/usr/local/bin"]) == "perl\n")
    }

    @Test func anIsolatedClosureNeedsNoShellInTheImage() throws {
        let dir = try TempDir()
        try dir.write("base.yaml", """
            name: kiln-test/no-shell
            tag: v1
            contents:
              - closure: /bin/ls
            """)
        let base = dir.path + "/base-layout"
        try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", base])
        try dir.write("image.yaml", """
            name: kiln-test/isolated
            tag: v1
            fromImage: oci:\(base):v1
            contents:
              - {closure: /usr/bin/perl, isolate: true}
            """)
        let out = dir.path + "/out"
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags)
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/usr/bin/perl", "-e", "print qq(no shell\\n)"]) == "no shell\n")
    }

    @Test func isolateOnAProgramThatIsNotELFIsOneClearError() throws {
        let dir = try TempDir()
        let base = try makeMergedUsrBase(in: dir)
        try dir.write("script", "#!/bin/sh\necho hi\n", mode: 0o755)
        try dir.write("image.yaml", """
            name: kiln-test/isolated
            tag: v1
            fromImage: oci:\(base):v1
            contents:
              - {closure: ./script, isolate: true}
            """)
        let out = dir.path + "/out"
        let r = try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags, check: false)
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("image.yaml:5: contents[0].closure") && r.stderr.contains("script is not an ELF file"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// The host's perl (glibc 2.36 on Debian 12) on a Debian 13 base (glibc 2.41) made by
    /// mmdebstrap from the host's Debian mirror.
    @Test(.enabled(if: BaseSafetyHost.trixie, "needs root, runc, umoci, mmdebstrap and the host's Debian mirror (for a Debian 13 minbase)"))
    func hostPerlIsolatedOnADebian13BaseFromMmdebstrap() throws {
        let dir = try TempDir()
        let base = DebianBases.trixieBase!
        // Without isolation, the host's glibc would replace the base's: refused.
        try dir.write("plain.yaml", """
            name: kiln-test/perl
            tag: v1
            fromImage: \(base)
            contents:
              - closure: /usr/bin/perl
            """)
        let refused = try kiln(["build", dir.path + "/plain.yaml", "--format", "oci", "-o", dir.path + "/plain"] + cacheFlags, check: false)
        #expect(refused.status != 0 && refused.stderr.contains("would replace"), "\(refused.stderr)")

        try dir.write("image.yaml", """
            name: kiln-test/perl
            tag: v1
            fromImage: \(base)
            contents:
              - {closure: /usr/bin/perl, isolate: true, target: /usr/local/bin/perl}
            """)
        let out = dir.path + "/out"
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", out] + cacheFlags)
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/usr/local/bin/perl", "-e", "print qq(perl ok\\n)"]) == "perl ok\n")
        #expect(try runWithRunc(out, tag: "v1", in: dir, args: ["/bin/ls", "/usr/local/bin"]) == "perl\n")
    }
}

@Suite(.serialized, .enabled(if: TestRepo.available, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz (scripts/setup --test installs them)"))
struct PackagesOnABaseTests {
    let cache = try! TempDir()
    var cacheFlags: [String] { ["--cache-dir", cache.path + "/cache"] }

    /// A base whose dpkg status lists kiln-greeting 1.0 as installed.
    private func base(in dir: TempDir) throws -> String {
        try dir.write("status", """
            Package: kiln-greeting
            Status: install ok installed
            Version: 1.0
            Architecture: all
            Maintainer: Kiln <kiln@example.invalid>
            Description: greeting

            """)
        try dir.write("base.yaml", """
            name: kiln-test/pkg-base
            tag: v1
            contents:
              - {source: ./status, target: /var/lib/dpkg/status}
            """)
        let layout = dir.path + "/base-layout"
        try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", layout])
        return layout
    }

    @Test func aPackageTheBaseHasAtTheSameVersionIsNotAddedAgain() throws {
        let dir = try TempDir()
        let layout = try base(in: dir)
        let spec = try writePackageSpec(in: dir, packages: ["kiln-greeting"], extra: "fromImage: oci:\(layout):v1")
        let out = dir.path + "/out"
        try kiln(["build", spec, "--format", "oci", "-o", out] + cacheFlags)
        let built = try ociImage(out, tag: "v1").layers
        let below = try ociImage(layout, tag: "v1").layers
        #expect(built == below)
    }

    @Test func contentsFollowTheMergedUsrSymlinksThePackagesMake() throws {
        let dir = try TempDir()
        try dir.write("foo.txt", "foo\n")
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"],
                                        extra: "contents:\n  - {source: ./foo.txt, target: /lib/kiln/foo.txt}")
        let out = dir.path + "/img.tar"
        try kiln(["build", spec, "-o", out] + cacheFlags)
        try kiln(["export", "docker-archive:" + out, "-o", dir.path + "/rootfs.tar"])
        let listing = try run("tar", ["-tvf", dir.path + "/rootfs.tar"]).stdout
        #expect(listing.contains("usr/lib/kiln/foo.txt") && listing.contains("usr/lib/kiln/base.txt"), "\(listing)")
        #expect(listing.split(separator: "\n").contains { $0.contains(" lib -> usr/lib") }, "\(listing)")
    }

    @Test func anotherVersionOfAnInstalledPackageIsAnErrorUnlessReplace() throws {
        let dir = try TempDir()
        let layout = try base(in: dir)
        let out = dir.path + "/out"
        var spec = try writePackageSpec(in: dir, packages: ["kiln-greeting=0.9"], extra: "fromImage: oci:\(layout):v1")
        let r = try kiln(["build", spec, "--format", "oci", "-o", out] + cacheFlags, check: false)
        #expect(r.status != 0)
        // One error line (after the notice that there is no lock file).
        #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error") }.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("packages: kiln-greeting 0.9 would replace kiln-greeting 1.0 installed in the base"), "\(r.stderr)")
        #expect(r.stderr.contains("`onConflict: replace`"))
        #expect(!FileManager.default.fileExists(atPath: out))

        spec = try writePackageSpec(in: dir, packages: ["kiln-greeting=0.9"], extra: "fromImage: oci:\(layout):v1\nonConflict: replace")
        try kiln(["build", spec, "--format", "oci", "-o", out] + cacheFlags)
        let bundle = dir.path + "/bundle"
        try run("umoci", ["unpack", "--image", out + ":v1", bundle])
        let status = try String(contentsOfFile: bundle + "/rootfs/var/lib/dpkg/status", encoding: .utf8)
        #expect(status.contains("Version: 0.9") && !status.contains("Version: 1.0"), "\(status)")
    }
}
