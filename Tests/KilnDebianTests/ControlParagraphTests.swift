import Testing
@testable import KilnDebian

private let packagesText = """
Package: tzdata
Version: 2025b-0+deb12u1
Architecture: all
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Installed-Size: 2853
Depends: debconf (>= 0.5) | debconf-2.0
Provides: tzdata-bookworm
Section: localization
Priority: required
Multi-Arch: foreign
Filename: pool/main/t/tzdata/tzdata_2025b-0+deb12u1_all.deb
Size: 260968
SHA256: 5a3b4a3b1f3a9e1f1d10e3bd0b0b0b94b1b2e7ad3b7a8e6f11cbe25cbe0b0b0b
Description: time zone and daylight-saving time data
 This package contains data required for the implementation of
 standard local time for many representative locations around the globe.
 .
 It is updated periodically.

Package: libc6
Source: glibc (2.36-9+deb12u4)
Version: 2.36-9+deb12u4+b1
Architecture: amd64
Pre-Depends: libgcc-s1
Breaks: hurd (<< 1:0.9.git20220818-1), nscd (<< 2.36)
Multi-Arch: same
Filename: pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb
Size: 2757936
SHA256: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
Description: GNU C Library: Shared libraries
"""

@Suite("ControlParagraph")
struct ControlParagraphTests {
    @Test("parses paragraphs, continuation lines and field order")
    func parse() throws {
        let ps = try ControlParagraph.parseAll(packagesText)
        try #require(ps.count == 2)
        #expect(ps[0].fields.first?.name == "Package")
        #expect(ps[0].fields.map(\.name).last == "Description")
        #expect(ps[0]["Description"] == """
            time zone and daylight-saving time data
             This package contains data required for the implementation of
             standard local time for many representative locations around the globe.
             .
             It is updated periodically.
            """)
        #expect(ps[1]["Package"] == "libc6")
        #expect(ps[1]["Depends"] == nil)
    }

    @Test("field names are case-insensitive (Policy §5.1)")
    func caseInsensitive() throws {
        let p = try #require(try ControlParagraph.parseAll(packagesText).first)
        #expect(p["package"] == "tzdata")
        #expect(p["PACKAGE"] == "tzdata")
        #expect(p["multi-arch"] == "foreign")
        #expect(p["sha256"]?.hasPrefix("5a3b") == true)
        #expect(p["Packag"] == nil)
    }

    @Test("serialized reproduces the text exactly")
    func roundTrip() throws {
        let ps = try ControlParagraph.parseAll(packagesText)
        #expect(ps.map(\.serialized).joined(separator: "\n") == packagesText + "\n")
        // A field whose first line is empty, as dpkg writes Conffiles.
        let status = "Package: base-files\nConffiles:\n /etc/debian_version 2c7d\n /etc/issue 3d5e\nStatus: install ok installed\n"
        let p = try ControlParagraph.parseAll(status)
        #expect(p.count == 1)
        #expect(p[0]["Conffiles"] == "\n /etc/debian_version 2c7d\n /etc/issue 3d5e")
        #expect(p[0].serialized == status)
        // Built by hand.
        let q = ControlParagraph(fields: [.init(name: "Package", value: "a"), .init(name: "Description", value: "x\n y")])
        #expect(q.serialized == "Package: a\nDescription: x\n y\n")
        #expect(try ControlParagraph.parseAll(q.serialized) == [q])
    }

    @Test("comments, extra blank lines, whitespace-only separators, CRLF and trailing spaces")
    func tolerance() throws {
        let text = "\n\n# a comment\nPackage: a  \r\nVersion: 1\r\n   \t\nPackage: b\n# inside\nDescription: one\n# between\n two\n\n\n"
        let ps = try ControlParagraph.parseAll(text)
        try #require(ps.count == 2)
        #expect(ps[0].fields == [.init(name: "Package", value: "a"), .init(name: "Version", value: "1")])
        #expect(ps[1]["Description"] == "one\n two")
        #expect(try ControlParagraph.parseAll("").isEmpty)
        #expect(try ControlParagraph.parseAll("\n \n#x\n").isEmpty)
    }

    @Test("syntax errors name the line", arguments: [
        ("Package: a\n continued\n\n continuation\n", 4, "continuation line with no field before it"),
        ("Package: a\nno colon here\n", 2, "expected \"Field: value\", found \"no colon here\""),
        ("Package: a\nVersion: 1\npackage: b\n", 3, "field package appears twice in one paragraph"),
        ("Package: a\n: value\n", 2, "empty or malformed field name"),
        ("-----BEGIN PGP SIGNED MESSAGE-----\n", 1, "expected \"Field: value\", found \"-----BEGIN PGP SIGNED MESSAGE-----\""),
    ])
    func errors(_ text: String, _ line: Int, _ reason: String) {
        #expect(throws: ResolveError.controlSyntax(line: line, reason: reason)) {
            try ControlParagraph.parseAll(text)
        }
    }
}

@Suite("Relations")
struct RelationTests {
    @Test("parses groups, alternatives, versions and qualifiers")
    func parse() throws {
        let r = try Relations.parse("a (>= 1) | b, c:any,\n d (<< 2:1.0-1~), e(=1.0)")
        #expect(r.map { $0.map(\.description) } == [["a (>= 1)", "b"], ["c:any"], ["d (<< 2:1.0-1~)"], ["e (= 1.0)"]])
        #expect(r[1][0].archQualifier == "any")
        #expect(r[1][0].name == "c")
        #expect(r[0][0].constraint == VersionConstraint(op: .ge, version: try DebianVersion("1")))
        #expect(try Relations.parse("").isEmpty)
        #expect(try Relations.parse("  ").isEmpty)
        #expect(try Relations.parse("a,").count == 1)
    }

    @Test("obsolete < and > mean <= and >= (Policy §7.1)")
    func obsoleteOperators() throws {
        let r = try Relations.parse("a (< 1), b (> 2), c (<= 3), d (>> 4), e (<< 5)")
        #expect(r.map { $0[0].constraint!.op } == [.le, .ge, .le, .gt, .lt])
    }

    @Test("architecture restrictions drop alternatives; build profiles are skipped")
    func restrictions() throws {
        let field = "a [amd64], b [!amd64] | c, d [linux-any] <!nocheck>, e <cross> <!stage1>, f [any-arm64] | g"
        #expect(try Relations.parse(field, architecture: "amd64").map { $0.map(\.name) } == [["a"], ["c"], ["d"], ["e"], ["g"]])
        #expect(try Relations.parse(field, architecture: "arm64").map { $0.map(\.name) } == [["b", "c"], ["d"], ["e"], ["f", "g"]])
        // Without an architecture nothing is dropped.
        #expect(try Relations.parse(field).map { $0.map(\.name) } == [["a"], ["b", "c"], ["d"], ["e"], ["f", "g"]])
    }

    @Test("malformed fields are errors naming the field", arguments: [
        ("a (>= )", "missing version for a"),
        ("a (~ 1)", "missing relation operator for a"),
        ("a (=> 1)", "unknown relation operator \"=>\" for a"),
        ("a (>= 1", "missing ')' after the version for a"),
        ("a | | b", "expected a package name at '|'"),
        ("a b", "unexpected 'b'"),
        ("${shlibs:Depends}", "expected a package name at '$'"),
        ("a [amd64", "missing ']' for a"),
    ])
    func errors(_ field: String, _ reason: String) {
        #expect(throws: ResolveError.invalidRelation(field, reason: reason)) { try Relations.parse(field) }
    }

    @Test("bad versions inside relations are reported")
    func badVersion() {
        #expect(throws: ResolveError.self) { try Relations.parse("a (>= x1)") }
    }

    @Test("Provides/Conflicts reject alternatives")
    func lists() throws {
        #expect(try Relations.parseList("a (= 1), b").map(\.description) == ["a (= 1)", "b"])
        #expect(throws: ResolveError.self) { try Relations.parseList("a | b") }
    }
}

@Suite("PackageRecord")
struct PackageRecordTests {
    @Test("reads the index fields")
    func fields() throws {
        let ps = try ControlParagraph.parseAll(packagesText)
        let tz = try PackageRecord(paragraph: ps[0], repositoryIndex: 1)
        #expect(tz.name == "tzdata" && tz.version.description == "2025b-0+deb12u1" && tz.architecture == "all")
        #expect(tz.source == "tzdata" && tz.sourceVersion == "2025b-0+deb12u1")
        #expect(tz.filename == "pool/main/t/tzdata/tzdata_2025b-0+deb12u1_all.deb")
        #expect(tz.size == 260968)
        #expect(tz.sha256.count == 64)
        #expect(tz.depends.map { $0.map(\.description) } == [["debconf (>= 0.5)", "debconf-2.0"]])
        #expect(tz.provides.map(\.name) == ["tzdata-bookworm"])
        #expect(tz.multiArch == "foreign" && !tz.essential)
        #expect(tz.repositoryIndex == 1)
        #expect(tz.paragraph == ps[0])

        let libc = try PackageRecord(paragraph: ps[1], repositoryIndex: 0)
        #expect(libc.source == "glibc" && libc.sourceVersion == "2.36-9+deb12u4")
        #expect(libc.preDepends.map { $0.map(\.name) } == [["libgcc-s1"]])
        #expect(libc.breaks.map(\.description) == ["hurd (<< 1:0.9.git20220818-1)", "nscd (<< 2.36)"])
    }

    @Test("status paragraphs without Filename/Size/SHA256; field names in any case")
    func statusParagraph() throws {
        let p = try ControlParagraph.parseAll("package: dash\nessential: yes\nversion: 0.5.12-2\narchitecture: amd64\npre-depends: libc6 (>= 2.34)\n")[0]
        let r = try PackageRecord(paragraph: p, repositoryIndex: 0)
        #expect(r.filename == "" && r.size == 0 && r.sha256 == "")
        #expect(r.essential)
        #expect(r.preDepends.map { $0.map(\.description) } == [["libc6 (>= 2.34)"]])
    }

    @Test("missing or malformed fields are errors naming the package", arguments: [
        ("Version: 1\nArchitecture: all\n", "package paragraph: no Package field (fields: Version, Architecture)"),
        ("Package: a\nArchitecture: all\n", "package a: no Version field"),
        ("Package: a\nVersion: 1\n", "package a: no Architecture field"),
        ("Package: a\nVersion: 1\nArchitecture: all\nSize: x\n", "package a: Size \"x\" is not a byte count"),
        ("Package: a\nVersion: 1\nArchitecture: all\nProvides: b (>= 1)\n", "package a: Provides: b (>= 1) (only \"=\" is allowed, Policy §7.5)"),
        ("Package: a\nVersion: v1\nArchitecture: all\n", "package a: Version: invalid Debian version \"v1\": upstream version does not start with a digit"),
        ("Package: a\nVersion: 1\nArchitecture: all\nDepends: b (>= \n", "package a: Depends: invalid relation \"b (>=\": missing ')' after the version for b"),
    ])
    func errors(_ text: String, _ message: String) throws {
        let p = try ControlParagraph.parseAll(text)[0]
        do {
            _ = try PackageRecord(paragraph: p, repositoryIndex: 0)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("status file keeps only installed packages")
    func status() throws {
        let text = """
        Package: bash
        Status: install ok installed
        Version: 5.2.15-2+b7
        Architecture: amd64
        Provides: sh

        Package: old
        Status: deinstall ok config-files
        Version: not a version at all
        Architecture: amd64

        Package: held
        Status: hold ok installed
        Version: 1.0
        Architecture: all

        Package: broken
        Status: install reinstreq half-installed
        Version: 1.0
        Architecture: amd64
        """
        let inst = try InstalledPackage.parseStatus(text)
        #expect(inst.map(\.name) == ["bash", "held"])
        #expect(inst[0].provides.map(\.name) == ["sh"])
        #expect(inst[0].version == (try DebianVersion("5.2.15-2+b7")))
    }

    @Test("requests parse name and name=version")
    func requests() throws {
        let a = try PackageRequest(parsing: "tzdata=2025b-0+deb12u1", origin: "image.yaml:3")
        #expect(a.name == "tzdata" && a.version == "2025b-0+deb12u1" && a.origin == "image.yaml:3")
        let b = try PackageRequest(parsing: " curl ", origin: "x")
        #expect(b.name == "curl" && b.version == nil)
        #expect(throws: ResolveError.self) { try PackageRequest(parsing: "=1.0", origin: "x") }
        #expect(throws: ResolveError.self) { try PackageRequest(parsing: "curl=", origin: "x") }
        #expect(throws: ResolveError.self) { try PackageRequest(parsing: "cu rl", origin: "x") }
    }
}
