import Foundation
import Testing
@testable import KilnDebian

/// Pairs with `lhs < rhs` under dpkg's ordering: Debian Policy §5.6.12's examples and
/// dpkg's own test vectors (lib/dpkg/t/t-version.c), plus real-archive shapes.
private let ascending: [(String, String)] = [
    ("1.0~rc1", "1.0"),
    ("1.0~rc1", "1.0~rc2"),
    ("1.0~~", "1.0~"),
    ("1.0~~a", "1.0~"),
    ("1.0~", "1.0"),
    ("1.0", "1.0a"),
    ("1.0", "1.0+b1"),
    ("1.0", "1.0.1"),
    ("1.0-1", "1.0-1.1"),
    ("1.0-1", "1.0-2"),
    ("1.0-1", "1.0-1+b1"),
    ("1.0-1", "1.0-1ubuntu1"),
    ("1.0-1~bpo12+1", "1.0-1"),
    ("2.0", "1:0.1"),
    ("1:1.0", "2:0.1"),
    ("0.9", "1.0"),
    ("1.2", "1.10"),
    ("1.0a", "1.0b"),
    ("1.0a", "1.0.0"),  // letters sort before non-letters
    ("1.0Z", "1.0a"),
    ("1.0+", "1.0."),
    ("1.0.~x", "1.0."),
    ("1.0-0", "1.0-0.1"),
    ("2.36-9", "2.36-9+deb12u4"),
    ("2.36-9+deb12u4", "2.38-1"),
    ("72.1~rc-1~", "72.1-3"),
    ("1.14.0-1", "1.14.0-1+b1"),
    ("3.11.2-1", "3.11.2-6"),
    ("2025a-0+deb12u1", "2025b-0+deb12u1"),
    ("9", "10"),
    ("1.9", "1.10~beta"),
    ("0.0.26", "0.0.26-3"),
    ("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1.1"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("1.0.0~beta1", "1.0.0~rc1"),
    ("1.0.0~rc1", "1.0.0-1"),
    ("5.2.15-2", "5.2.15-2+b7"),
    ("1.2.3", "1.2.3-0.1"),
    ("3.0.11-1~deb12u2", "3.0.11-1~deb12u3"),
    ("10.46-1", "10.46-1+b1"),
]

/// Pairs equal under dpkg (epoch 0 is implicit, revision "0" equals none, numbers
/// compare without leading zeros).
private let equal: [(String, String)] = [
    ("1.0", "0:1.0"),
    ("1.0", "1.0-0"),
    ("1.0", "1.00"),
    ("1.01", "1.1"),
    ("00:1.0", "1.0"),
    ("1.0-00", "1.0"),
    ("1.0a", "1.0a0"),
    ("2:3.4-5", "2:3.4-5"),
]

private let invalid: [String] = [
    "", " ", "a1.0", "1.0-", ":1.0", "x:1.0", "-1:1.0", "1.0 beta", "1.0_1", "1:2:3",
    "1.0-a:b", "1.0-1_2", "1.0/2", "1:", "1:-1",
]

@Suite("DebianVersion")
struct VersionTests {
    @Test("parses epoch, upstream and revision (Policy §5.6.12)")
    func parts() throws {
        let v = try DebianVersion("1:2.36-9+deb12u4")
        #expect(v.epoch == 1)
        #expect(v.upstream == "2.36")
        #expect(v.revision == "9+deb12u4")
        #expect(v.description == "1:2.36-9+deb12u4")

        let w = try DebianVersion("72.1~rc-1~")
        #expect(w.epoch == 0 && w.upstream == "72.1~rc" && w.revision == "1~")

        // Hyphens belong to the upstream version up to the last one.
        let x = try DebianVersion("1.0-beta-2")
        #expect(x.upstream == "1.0-beta" && x.revision == "2")

        let y = try DebianVersion(" 3.0 ")
        #expect(y.description == "3.0" && y.revision == "")
    }

    @Test("rejects versions Policy forbids", arguments: invalid)
    func rejects(_ text: String) {
        #expect(throws: ResolveError.self) { try DebianVersion(text) }
    }

    @Test("error names the version and the reason")
    func errorMessage() {
        do {
            _ = try DebianVersion("a1.0")
            Issue.record("accepted a1.0")
        } catch {
            #expect(error.description == "invalid Debian version \"a1.0\": upstream version does not start with a digit")
        }
    }

    @Test("orders as dpkg does")
    func ordering() throws {
        for (a, b) in ascending {
            let x = try DebianVersion(a), y = try DebianVersion(b)
            #expect(x < y, "\(a) < \(b)")
            #expect(!(y < x), "!(\(b) < \(a))")
            #expect(x != y, "\(a) != \(b)")
        }
    }

    @Test("equality is dpkg's, and hashing agrees with it")
    func equality() throws {
        for (a, b) in equal {
            let x = try DebianVersion(a), y = try DebianVersion(b)
            #expect(x == y, "\(a) == \(b)")
            #expect(!(x < y) && !(y < x))
            #expect(x.hashValue == y.hashValue, "hash(\(a)) == hash(\(b))")
            #expect(Set([x, y]).count == 1)
        }
        // description keeps the text as given even when equal.
        #expect(try DebianVersion("0:1.0").description == "0:1.0")
    }

    @Test("sorting a shuffled list gives the dpkg order")
    func sorting() throws {
        let texts = ["1.0", "1.0~rc1", "1:0.1", "1.0-1", "1.0-1.1", "1.0a", "1.0+b1", "0.9", "1.0~~"]
        let sorted = try texts.shuffled().map { try DebianVersion($0) }.sorted().map(\.description)
        #expect(sorted == ["0.9", "1.0~~", "1.0~rc1", "1.0", "1.0-1", "1.0-1.1", "1.0a", "1.0+b1", "1:0.1"])
    }

    @Test("constraints apply the relation operators", arguments: [
        ("<<", "1.0", "0.9", true), ("<<", "1.0", "1.0", false),
        ("<=", "1.0", "1.0", true), ("<=", "1.0", "1.0-1", false),
        ("=", "1.0", "0:1.0-0", true), ("=", "1.0", "1.0+b1", false),
        (">=", "2.36", "2.36-9", true), (">=", "2.38", "2.36-9", false),
        (">>", "1.0", "1.0", false), (">>", "1.0", "1.0.1", true),
    ])
    func constraint(_ op: String, _ version: String, _ candidate: String, _ allowed: Bool) throws {
        let c = VersionConstraint(op: VersionConstraint.Op(rawValue: op)!, version: try DebianVersion(version))
        #expect(c.allows(try DebianVersion(candidate)) == allowed)
        #expect(c.description == "\(op) \(version)")
    }

    @Test("agrees with dpkg --compare-versions", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg")))
    func againstDpkg() throws {
        let pairs = ascending.map { ($0.0, $0.1) } + ascending.map { ($0.1, $0.0) } + equal
        // One shell for all pairs: print lt, eq or gt per line.
        var script = ""
        for (a, b) in pairs {
            script += "if dpkg --compare-versions '\(a)' lt '\(b)'; then echo lt; "
            script += "elif dpkg --compare-versions '\(a)' eq '\(b)'; then echo eq; else echo gt; fi\n"
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", script]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let answers = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        try #require(answers.count == pairs.count)
        for ((a, b), dpkg) in zip(pairs, answers) {
            let c = DebianVersion.compare(try DebianVersion(a), try DebianVersion(b))
            let ours = c < 0 ? "lt" : c == 0 ? "eq" : "gt"
            #expect(ours == dpkg, "\(a) vs \(b): dpkg says \(dpkg), we say \(ours)")
        }
    }
}
