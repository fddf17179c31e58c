import Foundation
import Testing

/// What a new user hits walking through platforms, artifacts, provenance, diff and the
/// report by hand: each bad input is one line naming what and where.
@Suite(.serialized) struct WalkthroughTests {
    @Test func attachToAPlatformTheIndexLacksNamesThePlatformAndWritesNothing() throws {
        let work = try TempDir()
        let layout = try twoPlatformLayout(in: work)
        try work.write("sig.json", "{}\n")
        let before = try snapshot(layout)
        let r = try kiln(["attach", "oci:\(layout):v1", work.path + "/sig.json", "--artifact-type", "application/vnd.example.sig",
                          "--platform", "linux/s390x"], check: false)
        #expect(r.status == 1)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(r.stderr.contains("linux/s390x") && r.stderr.contains("linux/amd64, linux/arm64/v8"), "\(r.stderr)")
        #expect(try snapshot(layout) == before)
    }

    /// Kiln's `packages` record each package in /var/lib/dpkg/status.d/NAME (no Status
    /// field, as distroless): diff compares those versions too.
    @Test func diffComparesThePackagesKilnRecordsInStatusD() throws {
        let dir = try TempDir()
        for v in [1, 2] {
            try dir.write("v\(v)/var/lib/dpkg/status.d/libfoo1", "Package: libfoo1\nVersion: 1.\(v)-1\nArchitecture: amd64\n")
            try dir.write("v\(v)/var/lib/dpkg/status.d/libfoo1.md5sums", "d41d8cd98f00b204e9800998ecf8427e  usr/lib/foo\n")
            try dir.write("v\(v)/var/lib/dpkg/status.d/bar", "Package: bar\nVersion: 2.0\nArchitecture: all\n")
            try dir.write("v\(v).yaml", "name: kiln-test/walk\ntag: v\(v)\ncontents: [v\(v)]\n")
            try kiln(["build", dir.path + "/v\(v).yaml", "--format", "oci", "-o", dir.path + "/l", "--cache-dir", dir.path + "/cache"])
        }
        let r = try kiln(["diff", "oci:\(dir.path)/l:v1", "oci:\(dir.path)/l:v2"], check: false)
        #expect(r.status == 1, "\(r)")
        #expect(r.stdout.contains("package libfoo1: 1.1-1 → 1.2-1"), "\(r.stdout)")
        #expect(!r.stdout.contains("package bar") && !r.stdout.contains("neither image has a dpkg status"), "\(r.stdout)")
    }

    /// An SBOM, provenance or image path that cannot be written is one line before any
    /// work: no image is left behind by a build that then fails on its SBOM.
    @Test(arguments: [["--sbom", "missing/x.spdx.json"], ["--sbom", "adir"], ["--provenance", "missing/p.json"],
                      ["-o", "missing/out.tar"], ["-o", "adir"], ["--format", "oci-archive", "-o", "adir"]])
    func outputPathsThatCannotBeWrittenAreRefusedBeforeTheBuild(_ flags: [String]) throws {
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work)
        try FileManager.default.createDirectory(atPath: work.path + "/adir", withIntermediateDirectories: false)
        let before = try FileManager.default.contentsOfDirectory(atPath: work.path).sorted()
        let args = ["build", spec, "--cache-dir", work.path + "/cache"] + (flags.contains("-o") ? [] : ["-o", work.path + "/out.tar"])
            + flags.map { $0.contains("/") || $0 == "adir" ? work.path + "/" + $0 : $0 }
        let r = try kiln(args, check: false)
        #expect(r.status == 1, "\(r)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(flags[flags.count - 2]) && !r.stderr.contains(".tmp-"), "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path).sorted() == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: work.path + "/adir").isEmpty)
    }

    @Test func aReportInAMissingDirectoryIsOneLineBeforeAnyWork() throws {
        let work = try TempDir()
        let layout = try twoPlatformLayout(in: work)
        let r = try kiln(["report", "oci:\(layout):v1", "-o", work.path + "/missing/r.html"], check: false)
        #expect(r.status == 1 && r.stderr.contains("-o \(work.path)/missing/r.html: no directory"), "\(r.stderr)")
    }

    /// A usage error found while running (the spec's platforms against --platform) shows
    /// the subcommand's usage, as one found while parsing does, not the root's.
    @Test func aUsageErrorFromRunShowsTheSubcommandsUsage() throws {
        let work = try TempDir()
        _ = try twoPlatformLayout(in: work)
        let r = try kiln(["build", work.path + "/image.yaml", "-o", work.path + "/x.tar", "--cache-dir", work.path + "/cache"], check: false)
        #expect(r.status == 64)
        #expect(r.stderr.hasPrefix("Error: a docker-archive holds one platform"), "\(r.stderr)")
        #expect(r.stderr.contains("Usage: kiln build [<options>] <spec>") && r.stderr.contains("See 'kiln build --help'"), "\(r.stderr)")
        let prune = try kiln(["cache", "prune", "--older-than", "3x", "--cache-dir", work.path + "/cache"], check: false)
        #expect(prune.status == 64 && prune.stderr.contains("See 'kiln cache prune --help'"), "\(prune.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work.path + "/x.tar"))
    }

    /// copy and push compress layers, they build none: their --no-cache says so.
    @Test(arguments: ["copy", "push"])
    func noCacheHelpFitsCopyAndPush(_ command: String) throws {
        let help = try kiln([command, "--help"]).stdout
        #expect(help.contains("--no-cache") && help.contains("compress)"), "\(help)")
    }

    /// Copying (or pushing) one image out of an index without --platform says which
    /// platform it took, so the others are not left behind without a word.
    @Test func copyOfOneImageOfAnIndexSaysWhichPlatformItTook() throws {
        let work = try TempDir()
        let layout = try twoPlatformLayout(in: work)
        let r = try kiln(["copy", "oci:\(layout):v1", "oci:\(work.path)/one:v1"])
        #expect(r.stderr.contains("is an index of several platforms: took linux/") && r.stderr.contains("kiln copy --all"), "\(r.stderr)")
        let picked = try kiln(["copy", "oci:\(layout):v1", "oci:\(work.path)/one:v2", "--platform", "linux/arm64"])
        #expect(!picked.stderr.contains("index of several platforms"), "\(picked.stderr)")
        let single = try kiln(["copy", "oci:\(work.path)/one:v2", "oci:\(work.path)/two:v1"])
        #expect(!single.stderr.contains("index of several platforms"), "\(single.stderr)")
        let quiet = try kiln(["copy", "-q", "oci:\(layout):v1", "oci:\(work.path)/one:v3"])
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr)")
    }

    /// An artifact by digest (as kiln referrers lists it) given to a command that reads
    /// an image's files says it is an artifact, not that its config lacks .architecture.
    @Test func anArtifactGivenForAnImageIsNamedAsOne() throws {
        let reg = try TestRegistry()
        let env = try KilnEnv()
        let work = try TempDir()
        let spec = try writeFilesSpec(in: work, marker: "walk")
        let ref = "docker://\(reg.host)/walk/img:v1"
        try env.kiln(["build", spec, "--push", ref, "-q"])
        try work.write("sig", "signature")
        let attached = try parseJSON(try env.kiln(["attach", ref, work.path + "/sig", "--artifact-type", "application/vnd.example.sig",
                                                   "--json", "-q"]).stdout) as! [String: Any]
        let digest = (attached["artifact"] as! [String: Any])["digest"] as! String
        let artifact = "docker://\(reg.host)/walk/img@\(digest)"
        for (args, status) in [(["inspect", "--files", artifact], Int32(1)), (["report", artifact, "-o", work.path + "/r.html"], 1),
                               (["diff", artifact, ref], 2)] {
            let r = try env.kiln(args, check: false)
            #expect(r.status == status, "\(args): \(r)")
            #expect(r.stderr == "kiln: error: \(artifact) is an artifact (application/vnd.example.sig), not an image: `kiln inspect \(artifact)` shows it\n",
                    "\(args): \(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: work.path + "/r.html"))
    }

    /// kiln lock's summary counts packages in English: "1 package for amd64".
    @Test(.enabled(if: TestRepo.available, "needs the test apt repository's tools"))
    func lockSummarySaysOnePackage() throws {
        let dir = try TempDir()
        let spec = try writePackageSpec(in: dir, packages: ["kiln-greeting"])
        let out = try kiln(["lock", spec, "--cache-dir", dir.path + "/cache"]).stdout
        let arch = try run("dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let lock = try parseJSON(try String(contentsOfFile: dir.path + "/image.lock.json", encoding: .utf8)) as! [String: Any]
        let count = ((lock["packages"] as? [String: Any])?[arch] as? [Any])?.count
        #expect(count == 1, "\(lock)")
        #expect(out.contains("1 package for \(arch)") && !out.contains("1 packages"), "\(out)")
    }
}
