import Foundation
import Testing

/// `--platform` on the commands that read one image (export, merge, push; pull and diff
/// check it while parsing), `kiln referrers`' notice when nothing refers to an image, and
/// the global options in every subcommand's --help.
@Suite(.serialized) struct PlatformOptionTests {
    /// This machine's platform as kiln names it, when it is one the fixture index holds.
    static let hostPlatform: String? = {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return ["x86_64": "linux/amd64", "aarch64": "linux/arm64/v8"][machine]
    }()

    /// /arch.txt of an exported root file system tar.
    func archFile(_ tar: String) throws -> String {
        try run("tar", ["-xOf", tar, "arch.txt"]).stdout
    }

    @Test(.enabled(if: hostPlatform != nil, "the fixture index holds linux/amd64 and linux/arm64/v8 only"))
    func exportAndMergeReadThePlatformOfAnIndex() throws {
        let dir = try TempDir()
        let layout = try twoPlatformLayout(in: dir)
        let image = "oci:\(layout):v1"

        try kiln(["export", "--platform", "linux/arm64/v8", image, "-o", dir.path + "/arm.tar"])
        #expect(try archFile(dir.path + "/arm.tar") == "arm64\n")
        try kiln(["export", image, "--platform", "linux/amd64", "-o", dir.path + "/amd.tar"])
        #expect(try archFile(dir.path + "/amd.tar") == "amd64\n")
        // Without --platform: this machine's, as pull and copy choose.
        try kiln(["export", image, "-o", dir.path + "/host.tar"])
        #expect(try archFile(dir.path + "/host.tar") == (Self.hostPlatform == "linux/amd64" ? "amd64\n" : "arm64\n"))
        // linux/arm64 is linux/arm64/v8 (arm64's default variant), as containerd matches.
        try kiln(["export", "--platform", "linux/arm64", image, "--format", "dir", "-o", dir.path + "/arm-dir"])
        #expect(try String(contentsOfFile: dir.path + "/arm-dir/arch.txt", encoding: .utf8) == "arm64\n")

        // An OCI archive's index too.
        let archive = try twoPlatformLayout(in: dir, format: "oci-archive", output: "image.tar")
        try kiln(["export", "--platform", "linux/arm64/v8", "oci-archive:\(archive):v1", "-o", dir.path + "/arm2.tar"])
        #expect(try archFile(dir.path + "/arm2.tar") == "arm64\n")

        // merge: --platform applies to every image that is an index.
        try kiln(["merge", "--platform", "linux/arm64/v8", image, "-o", dir.path + "/merged.tar"])
        let merged = try parseJSON(try run("tar", ["-xOf", dir.path + "/merged.tar", "manifest.json"]).stdout) as! [[String: Any]]
        let config = try parseJSON(try run("tar", ["-xOf", dir.path + "/merged.tar", merged[0]["Config"] as! String]).stdout) as! [String: Any]
        #expect(config["architecture"] as? String == "arm64")
        try run("tar", ["-xf", dir.path + "/merged.tar", "-C", dir.path, (merged[0]["Layers"] as! [String])[0]])
        #expect(try archFile(dir.path + "/" + (merged[0]["Layers"] as! [String])[0]) == "arm64\n")
    }

    @Test func aPlatformTheIndexLacksOrAMalformedOneWritesNothing() throws {
        let dir = try TempDir()
        let layout = try twoPlatformLayout(in: dir)
        let image = "oci:\(layout):v1"

        let lacking = try kiln(["export", "--platform", "linux/s390x", image, "-o", dir.path + "/x.tar"], check: false)
        #expect(lacking.status == 1)
        #expect(lacking.stderr.contains("linux/s390x") && lacking.stderr.contains("the index has: linux/amd64, linux/arm64/v8"), "\(lacking)")
        #expect(lacking.stderr.split(separator: "\n").count == 1, "\(lacking)")
        let lackingMerge = try kiln(["merge", "--platform", "linux/riscv64", image, "-o", dir.path + "/x.tar"], check: false)
        #expect(lackingMerge.status == 1 && lackingMerge.stderr.contains("the index has: linux/amd64, linux/arm64/v8"), "\(lackingMerge)")

        // A malformed platform is a usage error (64) before anything is read or written.
        for args in [["export", image, "-o", dir.path + "/x.tar"],
                     ["merge", image, "-o", dir.path + "/x.tar"],
                     ["push", image, "docker://127.0.0.1:9/p/q:1"],
                     ["pull", "docker://127.0.0.1:9/p/q:1", "-o", dir.path + "/x.tar"],
                     ["diff", image, image],
                     ["copy", image, "oci:\(dir.path)/x.tar:1"],
                     ["inspect", image],
                     ["report", image, "-o", dir.path + "/x.tar"]] {
            for bad in ["linux", "linux/amd64/v1/x", "/amd64", "linux//v8"] {
                let r = try kiln(args + ["--platform", bad], check: false)
                #expect(r.status == 64, "\(args[0]) --platform \(bad): \(r)")
                #expect(r.stderr.contains("OS/ARCH[/VARIANT]"), "\(r)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/x.tar"))
    }

    @Test func pushSendsThePlatformOfAnIndex() throws {
        let reg = try TestRegistry()
        defer { reg.stop() }
        let env = try KilnEnv()
        let dir = try TempDir()
        let layout = try twoPlatformLayout(in: dir)
        let ref = "docker://\(reg.host)/platforms/img:arm"
        try env.kiln(["push", "--platform", "linux/arm64/v8", "oci:\(layout):v1", ref])
        let pushed = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
        #expect(pushed["Architecture"] as? String == "arm64")
        // The pushed manifest is the index's arm64 entry, byte for byte.
        let index = try parseJSON(try env.kiln(["inspect", "oci:\(layout):v1", "--json"]).stdout) as! [String: Any]
        let arm = (index["manifests"] as! [[String: Any]]).first { ($0["platform"] as? [String: Any])?["architecture"] as? String == "arm64" }
        #expect(pushed["Digest"] as? String == arm?["digest"] as? String)
    }

    @Test func referrersSaysOnStderrWhenNothingRefers() throws {
        let dir = try TempDir()
        let spec = try writeFilesSpec(in: dir)
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout", "--cache-dir", dir.path + "/cache"])
        let image = "oci:\(dir.path)/layout:v1"
        let subject = try parseJSON(try kiln(["referrers", image, "--json"]).stdout) as! [String: Any]
        #expect((subject["referrers"] as? [Any])?.isEmpty == true)
        let digest = (subject["subject"] as! [String: Any])["digest"] as! String

        let plain = try kiln(["referrers", image])
        #expect(plain.stdout.isEmpty)
        #expect(plain.stderr == "kiln: no artifacts refer to \(image)@\(digest)\n", "\(plain)")
        let typed = try kiln(["referrers", image, "--artifact-type", "application/spdx+json"])
        #expect(typed.stdout.isEmpty)
        #expect(typed.stderr == "kiln: no artifacts of type application/spdx+json refer to \(image)@\(digest)\n", "\(typed)")
        // A notice: --quiet (before or after the subcommand) and --log-level warning hide it;
        // --json says it in the document instead.
        for args in [["referrers", image, "-q"], ["--quiet", "referrers", image], ["referrers", "--log-level", "warning", image],
                     ["referrers", image, "--json"]] {
            let r = try kiln(args)
            #expect(r.stderr.isEmpty, "\(args): \(r)")
        }

        // Once something refers to it, the list is on stdout and there is no notice.
        try dir.write("sbom.json", "{}")
        try kiln(["attach", image, dir.path + "/sbom.json", "--artifact-type", "application/spdx+json"])
        let listed = try kiln(["referrers", image])
        #expect(listed.stdout.contains("application/spdx+json") && listed.stderr.isEmpty, "\(listed)")
    }

    @Test func everySubcommandsHelpListsTheGlobalOptions() throws {
        for command in [["build"], ["lock"], ["copy"], ["attach"], ["referrers"], ["diff"], ["pull"], ["push"], ["inspect"], ["report"],
                        ["login"], ["logout"], ["export"], ["merge"], ["cache"], ["cache", "prune"], ["tarsum"]] {
            let help = try kiln(command + ["--help"]).stdout
            #expect(help.contains("-q, --quiet") && help.contains("--log-level <log-level>"), "kiln \(command.joined(separator: " ")) --help: \(help)")
        }
        let export = try kiln(["export", "--help"]).stdout
        #expect(export.contains("--platform <os/arch[/variant]>"), "\(export)")
        for command in ["merge", "push"] {
            #expect(try kiln([command, "--help"]).stdout.contains("--platform <os/arch[/variant]>"), "\(command)")
        }
    }
}
