import Foundation
import Testing

/// Builds the same spec from two differently made copies of its inputs, under different
/// users, umasks, time zones, locales and working directories; the outputs must be
/// identical to the byte in every format.
@Suite(.serialized) struct ReproducibilityTests {
    /// Creates the inputs; `variant` changes everything that must not matter.
    func makeInputs(_ root: String, variant: Bool) throws {
        let script = variant
            ? """
              umask 077
              mkdir -p files/z files/a/deep
              printf 'two\\n' > files/z/two.txt
              printf '#!/bin/sh\\necho hi\\n' > files/a/run.sh; chmod 700 files/a/run.sh
              printf 'one\\n' > files/a/deep/one.txt
              ln files/a/deep/one.txt files/z/one-link
              ln -s ../a/deep/one.txt files/z/sym
              tar -C files -czf bundle.tar.gz z
              touch -d '2001-02-03 04:05:06' files/z/two.txt files/a files/a/deep/one.txt bundle.tar.gz
              chown -R 65534:65534 .
              """
            : """
              umask 022
              mkdir -p files/a/deep files/z
              printf 'one\\n' > files/a/deep/one.txt
              ln -s ../a/deep/one.txt files/z/sym
              ln files/a/deep/one.txt files/z/one-link
              printf '#!/bin/sh\\necho hi\\n' > files/a/run.sh; chmod 755 files/a/run.sh
              printf 'two\\n' > files/z/two.txt
              sleep 1; tar -C files -czf bundle.tar.gz z
              """
        try sh(script, cwd: root)
        try """
            name: kiln-test/repro
            contents:
              - files
              - archive: bundle.tar.gz
                target: /unpacked
              - source: files/a/run.sh
                target: /usr/local/bin/run
              - closure: /bin/sh
            users:
              - {name: app, uid: 1000}
            perms:
              - {path: "/unpacked/**", mode: "0640", uid: 1000, gid: 1000}
            extraCommands: |
              mkdir -p var/log tmp
              echo built > var/log/build.txt
            config:
              Cmd: ["/usr/local/bin/run"]
              Env: ["A=1"]
            """.write(toFile: root + "/image.yaml", atomically: false, encoding: .utf8)
        if variant { try sh("chown 65534:65534 image.yaml", cwd: root) }
    }

    @Test(arguments: ["docker-archive", "oci-archive", "oci"])
    func identicalBytesWhateverTheInputsHistory(format: String) throws {
        let a = try TempDir(), b = try TempDir()
        try makeInputs(a.path, variant: false)
        try makeInputs(b.path, variant: true)
        try sh("chmod 777 \(b.path)")
        try kiln(["build", a.path + "/image.yaml", "--format", format, "-o", a.path + "/out"],
                 cwd: "/", env: ["TZ": "UTC", "LC_ALL": "C", "SOURCE_DATE_EPOCH": ""])
        // Another user, umask, time zone, locale and working directory.
        try run("/bin/sh", ["-c", "umask 077; exec setpriv --reuid=65534 --regid=65534 --clear-groups \(kilnPath) build image.yaml --format \(format) -o out"],
                cwd: b.path, env: ["TZ": "Asia/Tokyo", "LC_ALL": "fr_FR.UTF-8", "LANG": "de_DE.UTF-8", "SOURCE_DATE_EPOCH": ""])
        let sa = try snapshot(a.path + "/out"), sb = try snapshot(b.path + "/out")
        #expect(!sa.isEmpty)
        #expect(sa.keys.sorted() == sb.keys.sorted())
        for (k, v) in sa { #expect(sb[k] == v, "\(format): \(k) differs") }
        // And the image is valid.
        let ref = format == "oci" ? "oci:\(a.path)/out" : "\(format):\(a.path)/out"
        try run("skopeo", ["inspect", ref])
    }

    @Test func sourceDateEpochAndCreatedNowChangeTheOutput() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", "name: t/time\ntag: x\ncontents: []\n")
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci-archive", "-o", dir.path + "/one.tar"])
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci-archive", "-o", dir.path + "/two.tar"],
                 env: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(try dir.bytes("one.tar") != dir.bytes("two.tar"))
        let created = try parseJSON(try run("skopeo", ["inspect", "oci-archive:\(dir.path)/two.tar"]).stdout) as! [String: Any]
        #expect(created["Created"] as? String == "2023-11-14T22:13:20Z")
    }
}
