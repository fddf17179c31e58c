import Foundation
import Testing

/// `apt-get update && apt-get install` in the runAsRoot sandbox against the fixture apt
/// repository (scripts/make-test-apt-repo, put into the image as contents: no network):
/// the same layer bytes twice with the cache disabled, and no sandbox warnings.
@Suite(.serialized,
       .enabled(if: DebianBases.hostSuiteBase != nil,
                "needs a Debian minbase with apt: KILN_TEST_DEBIAN_BASE, or mmdebstrap, root and the host's apt mirror (see DebianBaseSupport.swift)"),
       .enabled(if: TestRepo.available, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz (scripts/setup --test installs them)"))
struct RunAsRootAptTests {
    @Test func anAptInstallGivesTheSameLayerTwice() throws {
        let dir = try TempDir()
        try run("cp", ["-a", TestRepo.dir, dir.path + "/repo"])
        try dir.write("apt.yaml", """
            name: kiln-test/apt
            tag: v1
            fromImage: \(DebianBases.hostSuiteBase!)
            contents:
              - source: repo
                target: /srv/repo
            runAsRoot: |
              echo "deb [signed-by=/srv/repo/keyring.gpg] file:/srv/repo/debian kiln main" > /srv/kiln.list
              O="-o Dir::Etc::SourceList=/srv/kiln.list -o Dir::Etc::SourceParts=-"
              apt-get $O update
              DEBIAN_FRONTEND=noninteractive apt-get $O install -y kiln-hello kiln-greeting
            """)
        var layers: [String] = []
        for out in ["one", "two"] {
            let r = try kiln(["build", dir.path + "/apt.yaml", "--format", "oci", "-o", dir.path + "/" + out, "--no-cache"])
            #expect(r.stderr.contains("Setting up kiln-hello"), "\(r)")
            // No "Can not write log (Is /dev/pts mounted?)" or any other apt warning.
            #expect(!r.stderr.contains("/dev/pts") && !r.stderr.contains("W: ") && !r.stderr.contains("E: "), "\(r)")
            layers.append(try ociImage(dir.path + "/" + out, tag: "v1").layers.last!)
        }
        #expect(layers[0] == layers[1])
        let hex = layers[0].split(separator: ":")[1]
        let names = try run("tar", ["-tzf", "\(dir.path)/one/blobs/sha256/\(hex)"]).stdout.split(separator: "\n").map(String.init)
        #expect(names.contains("usr/bin/kiln-hello") && names.contains("var/lib/dpkg/status"))
        for volatile in ["var/cache/apt/pkgcache.bin", "var/log/dpkg.log", "var/log/apt/history.log", "var/log/apt/term.log",
                         "var/lib/dpkg/status-old", "var/cache/ldconfig/aux-cache"] {
            #expect(!names.contains(volatile), "\(volatile) in the layer")
        }
    }
}
