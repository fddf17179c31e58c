import Foundation
import Testing

/// The plan cache: an unchanged rebuild takes its layers without planning (the build
/// says so), and every kind of change to what the contents name — each stat field, an
/// added or removed file, a retargeted symlink, the spec, the archive, the
/// extraCommands script, SOURCE_DATE_EPOCH, the tag — makes a new plan whose output is
/// exactly what a build without any cache gives.
@Suite struct PlanCacheTests {
    @Test func everyChangeInvalidatesAndNothingElseDoes() throws {
        let dir = try TempDir()
        try sh("""
            mkdir -p root/etc root/bin tar-src
            for i in $(seq 1 50); do echo "file $i" > root/etc/f$i; done
            echo '#!/bin/sh' > root/bin/tool; chmod 755 root/bin/tool
            ln -s f1 root/etc/link
            echo inside > tar-src/inside && tar -C tar-src -cf items.tar inside
            """, cwd: dir.path)
        func spec(script: String = "echo generated > generated") throws {
            try dir.write("image.yaml", """
                name: kiln-test/plan
                tag: v1
                created: 2024-01-01T00:00:00Z
                contents:
                  - root
                  - archive: items.tar
                    target: /opt
                extraCommands: |
                  \(script)
                """)
        }
        try spec()
        let cache = dir.path + "/cache"
        var n = 0
        /// Builds with the cache; true when the plan came from it. Checks the output
        /// against a build with no cache at all.
        func build(_ env: [String: String] = [:], extra: [String] = []) throws -> Bool {
            n += 1
            let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/out\(n).tar", "--cache-dir", cache] + extra, env: env)
            try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/fresh\(n).tar", "--no-cache"] + extra, env: env)
            #expect(try dir.bytes("out\(n).tar") == dir.bytes("fresh\(n).tar"), "build \(n) differs from a build without cache")
            return r.stderr.contains("from the cache, unplanned")
        }
        #expect(try !build())
        #expect(try build(), "an unchanged rebuild was planned again")
        let changes: [(String, () throws -> Void)] = [
            ("content, same size", { try sh("printf 'file X\\n' > root/etc/f2", cwd: dir.path) }),
            ("mtime only", { try sh("touch -d '2001-01-01' root/etc/f3", cwd: dir.path) }),
            ("mode", { try sh("chmod 600 root/etc/f4", cwd: dir.path) }),
            ("owner", { try sh("chown 1234:1234 root/etc/f5", cwd: dir.path) }),
            ("file added", { try sh("echo new > root/etc/new", cwd: dir.path) }),
            ("file removed", { try sh("rm root/etc/f6", cwd: dir.path) }),
            ("file renamed", { try sh("mv root/etc/f7 root/etc/f7b", cwd: dir.path) }),
            ("symlink retargeted", { try sh("ln -sfn f8 root/etc/link", cwd: dir.path) }),
            ("hard link made", { try sh("ln root/etc/f9 root/bin/f9", cwd: dir.path) }),
            ("archive rewritten", { try sh("echo changed > tar-src/inside && tar -C tar-src -cf items.tar inside", cwd: dir.path) }),
            ("extraCommands script", { try spec(script: "echo other > generated") }),
        ]
        for (what, change) in changes {
            try change()
            #expect(try !build(), "\(what): the old plan was used")
            #expect(try build(), "\(what): the rebuild after it was planned again")
        }
        // Settings outside the files: SOURCE_DATE_EPOCH (the spec's own `created` wins, so
        // nothing changes) and the tag (which does).
        #expect(try build(["SOURCE_DATE_EPOCH": "1700000000"]), "an environment that changes nothing was planned again")
        #expect(try !build(extra: ["--tag", "kiln-test/plan:other"]))
        #expect(try build(extra: ["--tag", "kiln-test/plan:other"]))
    }
}
