import Foundation
import Testing
@testable import KilnDebian

@Suite struct AptSourcesTests {
    @Test func oneLineEntries() throws {
        let text = """
        # Debian, as a 2022 installer wrote it
        deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian/ bookworm main contrib non-free-firmware
        deb-src http://deb.debian.org/debian bookworm main
        deb http://security.debian.org/debian-security bookworm-security main  # security

        deb [ trusted=yes ] file:///srv/flat ./
        """
        let s = try AptSources.parseOneLine(text, file: "/etc/apt/sources.list")
        #expect(s.count == 3)
        #expect(s[0] == AptSource(uri: "http://deb.debian.org/debian", suite: "bookworm",
                                  components: ["main", "contrib", "non-free-firmware"],
                                  signedBy: ["/usr/share/keyrings/debian-archive-keyring.gpg"],
                                  architectures: ["amd64", "arm64"], origin: "/etc/apt/sources.list:2"))
        #expect(s[1].uri == "http://security.debian.org/debian-security")
        #expect(s[1].components == ["main"])
        #expect(s[1].signedBy.isEmpty && s[1].architectures == nil)
        #expect(s[1].origin == "/etc/apt/sources.list:4")
        #expect(s[2].uri == "file:///srv/flat" && s[2].suite == "./" && s[2].isFlat && s[2].components.isEmpty)
    }

    @Test func oneLineErrorsNameFileAndLine() {
        #expect(throws: RepositoryError.self) { try AptSources.parseOneLine("deb http://x/debian bookworm", file: "a.list") }
        do {
            _ = try AptSources.parseOneLine("\n\ndeb http://x/ ./ main\n", file: "a.list")
            Issue.record("a flat suite with components was accepted")
        } catch {
            #expect("\(error)".hasPrefix("a.list:3: "))
        }
        #expect(throws: RepositoryError.self) { try AptSources.parseOneLine("rpm http://x/ a main", file: "a.list") }
        #expect(throws: RepositoryError.self) { try AptSources.parseOneLine("deb [arch=amd64 http://x/ a main", file: "a.list") }
        #expect(throws: RepositoryError.self) {
            try AptSources.parseOneLine("deb [signed-by=keys/x.gpg] http://x/ a main", file: "a.list")
        }
    }

    @Test func deb822MultiURIMultiSuite() throws {
        let text = """
        # comment lines are allowed
        Types: deb deb-src
        URIs: http://a.example/debian http://b.example/debian/
        Suites: bookworm bookworm-updates
        Components: main contrib
        Architectures: amd64
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

        Types: deb-src
        URIs: http://a.example/debian
        Suites: bookworm
        Components: main

        Types: deb
        URIs: http://c.example/
        Suites: sid
        Components: main
        Enabled: no

        Types: deb
        URIs: file:/srv/flat
        Suites: sub/
        """
        let s = try AptSources.parseDeb822(text, file: "/etc/apt/sources.list.d/debian.sources")
        #expect(s.map { "\($0.uri) \($0.suite)" } == [
            "http://a.example/debian bookworm", "http://a.example/debian bookworm-updates",
            "http://b.example/debian bookworm", "http://b.example/debian bookworm-updates",
            "file:/srv/flat sub/",
        ])
        #expect(s[0].components == ["main", "contrib"])
        #expect(s[0].architectures == ["amd64"])
        #expect(s[3].signedBy == ["/usr/share/keyrings/debian-archive-keyring.gpg"])
        #expect(s[0].origin == "/etc/apt/sources.list.d/debian.sources:2")
        #expect(s[4].isFlat && s[4].components.isEmpty && s[4].origin.hasSuffix(":20"))
    }

    @Test func deb822InlineKeyIsWrittenOut() throws {
        let text = """
        Types: deb
        URIs: https://repo.example/apt
        Suites: stable
        Components: main
        Signed-By:
         -----BEGIN PGP PUBLIC KEY BLOCK-----
         .
         mDMEZZJyOhYJKwYBBAHaRw8BAQdAexample
         =abcd
         -----END PGP PUBLIC KEY BLOCK-----
        """
        let s = try AptSources.parseDeb822(text, file: "x.sources")
        let key = try #require(s.first?.signedBy.first)
        let written = try String(contentsOfFile: key, encoding: .utf8)
        #expect(written == "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZZJyOhYJKwYBBAHaRw8BAQdAexample\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n")
        // The same key parsed again reuses the file.
        #expect(try AptSources.parseDeb822(text, file: "x.sources").first?.signedBy == [key])
    }

    @Test func deb822Errors() {
        #expect(throws: RepositoryError.self) { try AptSources.parseDeb822("URIs: http://x/\nSuites: a\nComponents: main\n", file: "x.sources") }
        #expect(throws: RepositoryError.self) { try AptSources.parseDeb822("Types: deb\nSuites: a\nComponents: main\n", file: "x.sources") }
        #expect(throws: RepositoryError.self) { try AptSources.parseDeb822("Types: deb\nURIs: http://x/\nSuites: a\n", file: "x.sources") }
        #expect(throws: RepositoryError.self) { try AptSources.parseDeb822("Types: deb\nthis is not a field\n", file: "x.sources") }
        #expect(throws: RepositoryError.self) {
            try AptSources.parseDeb822("Types: deb\nURIs: http://x/\nSuites: a\nComponents: main\nSigned-By: 0123456789ABCDEF0123456789ABCDEF01234567\n", file: "x.sources")
        }
    }

    @Test func hostReadsAFakeRoot() throws {
        let root = try TestAptRepo.makeTempDirectory("kiln-apt-root")
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/etc/apt/sources.list.d", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/etc/apt/trusted.gpg.d", withIntermediateDirectories: true)
        try "deb http://deb.example/debian bookworm main\n".write(toFile: root + "/etc/apt/sources.list", atomically: true, encoding: .utf8)
        try "deb [signed-by=/usr/share/keyrings/extra.gpg] http://extra.example/ stable main\n"
            .write(toFile: root + "/etc/apt/sources.list.d/extra.list", atomically: true, encoding: .utf8)
        try "Types: deb\nURIs: http://new.example/\nSuites: trixie\nComponents: main\n\nTypes: deb\nURIs: http://off.example/\nSuites: x\nComponents: main\nEnabled: no\n"
            .write(toFile: root + "/etc/apt/sources.list.d/new.sources", atomically: true, encoding: .utf8)
        // Ignored as apt ignores them: other suffixes, names with other characters.
        try "deb http://ignored.example/ a main\n".write(toFile: root + "/etc/apt/sources.list.d/old.list.save", atomically: true, encoding: .utf8)
        try "deb http://ignored.example/ b main\n".write(toFile: root + "/etc/apt/sources.list.d/bad name.list", atomically: true, encoding: .utf8)
        for name in ["debian.gpg", "extra.asc", "notes.txt"] {
            fm.createFile(atPath: root + "/etc/apt/trusted.gpg.d/" + name, contents: Data([1]))
        }

        let s = try AptSources.host(root: root)
        #expect(s.map(\.uri) == ["http://deb.example/debian", "http://extra.example", "http://new.example"])
        #expect(s[0].origin == root + "/etc/apt/sources.list:1")
        #expect(s[1].signedBy == [root + "/usr/share/keyrings/extra.gpg"])
        #expect(s[2].origin == root + "/etc/apt/sources.list.d/new.sources:1")
        #expect(AptSources.trustedKeyrings(root: root) == [root + "/etc/apt/trusted.gpg.d/debian.gpg", root + "/etc/apt/trusted.gpg.d/extra.asc"])

        let empty = try TestAptRepo.makeTempDirectory("kiln-apt-root")
        #expect(try AptSources.host(root: empty).isEmpty)
        #expect(AptSources.trustedKeyrings(root: empty).isEmpty)
    }

    @Test func suiteDirectories() {
        func base(_ uri: String, _ suite: String) -> String {
            VerifiedRepository(source: AptSource(uri: uri, suite: suite, components: suite.hasSuffix("/") ? [] : ["main"], origin: "t"),
                               release: ReleaseFile(fields: [:], sha256: [:], digest: ""), index: 0).base
        }
        #expect(base("http://deb.example/debian", "bookworm") == "http://deb.example/debian/dists/bookworm/")
        #expect(base("file:/srv/flat", "./") == "file:/srv/flat/")
        #expect(base("file:/srv/flat", "sub/") == "file:/srv/flat/sub/")
        #expect(AptFetcher.localPath("file:/srv/a%20b") == "/srv/a b")
        #expect(AptFetcher.localPath("file:///srv/x") == "/srv/x")
        #expect(AptFetcher.localPath("file://localhost/srv/x") == "/srv/x")
        #expect(AptFetcher.localPath("file://other/srv/x") == nil)
        #expect(AptFetcher.localPath("http://x/") == nil)
    }
}
