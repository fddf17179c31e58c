import Foundation
import Testing
@testable import KilnDebian

/// Records from Packages text, as one repository.
private func index(_ text: String, repo: Int = 0) throws -> [PackageRecord] {
    try ControlParagraph.parseAll(text).map { try PackageRecord(paragraph: $0, repositoryIndex: repo) }
}

/// A Packages paragraph; extra fields as "Name: value" lines.
private func pkg(_ name: String, _ version: String, arch: String = "amd64", _ extra: String...) -> String {
    (["Package: \(name)", "Version: \(version)", "Architecture: \(arch)",
      "Filename: pool/\(name)_\(version)_\(arch).deb", "Size: 100", "SHA256: \(String(repeating: "0", count: 64))"]
     + extra).joined(separator: "\n") + "\n\n"
}

private func requests(_ specs: String...) throws -> [PackageRequest] {
    try specs.enumerated().map { try PackageRequest(parsing: $0.element, origin: "image.yaml: packages[\($0.offset)]") }
}

private func installed(_ name: String, _ version: String, provides: String = "") throws -> InstalledPackage {
    InstalledPackage(name: name, version: try DebianVersion(version), architecture: "amd64",
                     provides: try Relations.parseList(provides))
}

/// "name version" of every resolved package, in order.
private func names(_ r: Resolution) -> [String] { r.packages.map { "\($0.name) \($0.version)" } }

/// The one-line message of the error `body` throws.
private func message(_ body: () throws -> Void) -> String? {
    do { try body() } catch { return "\(error)" }
    return nil
}

/// A small Debian: python3 and its closure.
private let python = [
    pkg("python3", "3.11.2-1+b1", "Multi-Arch: allowed", "Depends: python3.11 (>= 3.11.2-1~), libpython3-stdlib (= 3.11.2-1+b1)",
        "Recommends: ca-certificates"),
    pkg("libpython3-stdlib", "3.11.2-1+b1", "Depends: libpython3.11-stdlib (>= 3.11.2-1~)"),
    pkg("python3.11", "3.11.2-6", "Pre-Depends: libc6 (>= 2.36)", "Depends: libpython3.11-stdlib (= 3.11.2-6), mime-support | media-types"),
    pkg("libpython3.11-stdlib", "3.11.2-6", "Depends: libc6 (>= 2.34), tzdata, libssl3 (>= 3.0.0)"),
    pkg("libc6", "2.36-9+deb12u4", "Depends: libgcc-s1", "Multi-Arch: same"),
    pkg("libgcc-s1", "12.2.0-14", "Depends: gcc-12-base (= 12.2.0-14)"),
    pkg("gcc-12-base", "12.2.0-14"),
    pkg("libssl3", "3.0.11-1~deb12u2", "Depends: libc6 (>= 2.34)"),
    pkg("tzdata", "2025b-0+deb12u1", arch: "all", "Depends: debconf (>= 0.5) | debconf-2.0"),
    pkg("debconf", "1.5.82", arch: "all"),
    pkg("media-types", "10.0.0", arch: "all"),
    pkg("ca-certificates", "20230311", arch: "all", "Depends: openssl (>= 1.1.1)"),
    pkg("openssl", "3.0.11-1~deb12u2", "Depends: libssl3 (>= 3.0.9)"),
    pkg("dash", "0.5.12-2", "Essential: yes", "Depends: libc6 (>= 2.34)"),
    pkg("zlib1g", "1:1.2.13.dfsg-1", "Depends: libc6 (>= 2.14)"),
].joined()

@Suite("Resolver")
struct ResolverTests {
    @Test("transitive Pre-Depends and Depends, reasons and dependents; Essential not added")
    func closure() throws {
        let r = try Resolver(available: index(python), architecture: "amd64").resolve(requests("python3"))
        #expect(r.packages.map(\.name) == [
            "debconf", "gcc-12-base", "libc6", "libgcc-s1", "libpython3-stdlib", "libpython3.11-stdlib",
            "libssl3", "media-types", "python3", "python3.11", "tzdata",
        ])
        #expect(r.reasons["python3"] == ["python3"])
        #expect(r.reasons["libpython3.11-stdlib"] == ["python3", "python3.11", "libpython3.11-stdlib"])
        #expect(r.reasons["gcc-12-base"] == ["python3", "python3.11", "libc6", "libgcc-s1", "gcc-12-base"])
        #expect(r.dependents["libc6"] == ["libpython3.11-stdlib", "libssl3", "python3.11"])
        #expect(r.dependents["python3"] == [])
        #expect(r.dependents["media-types"] == ["python3.11"])  // via the second alternative
        #expect(Set(r.dependents.keys) == Set(r.packages.map(\.name)))
        #expect(r.satisfiedByInstalled == [])
        // dash is Essential: yes but nobody asked for it.
        #expect(!r.packages.contains { $0.name == "dash" })
    }

    @Test("Recommends are followed only when asked")
    func recommends() throws {
        let resolver = try Resolver(available: index(python + pkg("extra", "1", "Recommends: nosuch, zlib1g")), architecture: "amd64")
        let with = try resolver.resolve(requests("python3", "extra"), recommends: true)
        #expect(with.packages.contains { $0.name == "ca-certificates" })
        #expect(with.packages.contains { $0.name == "openssl" })
        #expect(with.reasons["openssl"] == ["python3", "ca-certificates", "openssl"])
        // An unsatisfiable recommendation is skipped, as apt does.
        #expect(with.packages.contains { $0.name == "zlib1g" })
        let without = try resolver.resolve(requests("python3"))
        #expect(!without.packages.contains { $0.name == "ca-certificates" })
    }

    @Test("candidate: highest version, ties to the earlier repository, image architecture or all")
    func candidates() throws {
        let main = try index(pkg("curl", "7.88.1-10+deb12u5") + pkg("curl", "7.88.1-10+deb12u12", arch: "i386")
                             + pkg("jq", "1.6-2.1"), repo: 0)
        let security = try index(pkg("curl", "7.88.1-10+deb12u12") + pkg("jq", "1.6-2.1"), repo: 1)
        let older = try index(pkg("curl", "7.88.1-10"), repo: 2)
        let r = try Resolver(available: older + security + main, architecture: "amd64").resolve(requests("curl", "jq"))
        #expect(names(r) == ["curl 7.88.1-10+deb12u12", "jq 1.6-2.1"])
        #expect(r.packages[0].architecture == "amd64" && r.packages[0].repositoryIndex == 1)
        #expect(r.packages[1].repositoryIndex == 0)
        // Only i386 has this version: not a candidate on amd64.
        let i386only = try Resolver(available: index(pkg("x", "1", arch: "i386")), architecture: "amd64")
        #expect(message { _ = try i386only.resolve(requests("x")) } == "image.yaml: packages[0]: unknown package \"x\"")
    }

    @Test("name=version pins; an absent version lists the available ones")
    func pins() throws {
        let resolver = try Resolver(available: index(pkg("tzdata", "2025a-0+deb12u1", arch: "all"), repo: 0)
                                    + index(pkg("tzdata", "2025b-0+deb12u1", arch: "all"), repo: 1), architecture: "amd64")
        #expect(names(try resolver.resolve(requests("tzdata=2025a-0+deb12u1"))) == ["tzdata 2025a-0+deb12u1"])
        #expect(names(try resolver.resolve(requests("tzdata"))) == ["tzdata 2025b-0+deb12u1"])
        // dpkg equality: 0:2025a-0+deb12u1 is the same version.
        #expect(names(try resolver.resolve(requests("tzdata=0:2025a-0+deb12u1"))) == ["tzdata 2025a-0+deb12u1"])
        // A plain request after a pin does not undo it.
        #expect(names(try resolver.resolve(requests("tzdata", "tzdata=2025a-0+deb12u1"))) == ["tzdata 2025a-0+deb12u1"])
        #expect(message { _ = try resolver.resolve(requests("tzdata=2024a-1")) }
                == "image.yaml: packages[0]: tzdata version 2024a-1 is not available (available: 2025b-0+deb12u1, 2025a-0+deb12u1)")
        #expect(message { _ = try resolver.resolve(requests("tzdata=2025a-0+deb12u1", "tzdata=2025b-0+deb12u1")) }
                == "image.yaml: packages[1]: tzdata=2025b-0+deb12u1 conflicts with tzdata=2025a-0+deb12u1 requested at image.yaml: packages[0] (one version of tzdata per image)")
    }

    @Test("a relation the candidate fails takes the highest version that satisfies it")
    func olderVersion() throws {
        let r = try Resolver(available: index(
            pkg("app", "1", "Depends: libfoo (<< 2)") + pkg("libfoo", "2.1") + pkg("libfoo", "1.9") + pkg("libfoo", "1.5")
        ), architecture: "amd64").resolve(requests("app"))
        #expect(names(r) == ["app 1", "libfoo 1.9"])
    }

    @Test("a chosen version that a later relation rejects names both requirers")
    func chosenMismatch() throws {
        let resolver = try Resolver(available: index(
            pkg("a", "1", "Depends: libfoo") + pkg("b", "1", "Depends: libfoo (<< 2)") + pkg("libfoo", "2.0") + pkg("libfoo", "1.0")
        ), architecture: "amd64")
        #expect(message { _ = try resolver.resolve(requests("a", "b")) }
                == "libfoo 2.0 was chosen for a → libfoo but b → libfoo (<< 2) rejects it")
        // A pinned version is chosen first, so a is satisfied with it and b too.
        #expect(names(try resolver.resolve(requests("a", "b", "libfoo=1.0"))) == ["a 1", "b 1", "libfoo 1.0"])
        #expect(message { _ = try resolver.resolve(requests("b", "libfoo=2.0")) }
                == "libfoo 2.0 was requested at image.yaml: packages[1] but b → libfoo (<< 2) rejects it")
    }

    @Test("alternatives: the first already chosen or installed wins, else the first satisfiable")
    func alternatives() throws {
        let available = try index(
            pkg("app", "1", "Depends: mta-a | mta-b, nosuch | libbar (>= 2) | libbaz")
            + pkg("mta-a", "1") + pkg("mta-b", "1") + pkg("libbar", "1") + pkg("libbaz", "1")
        )
        let resolver = Resolver(available: available, architecture: "amd64")
        #expect(names(try resolver.resolve(requests("app"))) == ["app 1", "libbaz 1", "mta-a 1"])
        // mta-b requested: already chosen, so it wins over mta-a.
        #expect(names(try resolver.resolve(requests("mta-b", "app"))) == ["app 1", "libbaz 1", "mta-b 1"])
        // mta-b installed in the base: it wins and nothing is added for it.
        let withBase = Resolver(available: available, installed: [try installed("mta-b", "0.5")], architecture: "amd64")
        let r = try withBase.resolve(requests("app"))
        #expect(names(r) == ["app 1", "libbaz 1"])
        #expect(r.satisfiedByInstalled == ["mta-b"])
    }

    @Test("virtual packages: provides, versioned provides, several providers, virtual requests")
    func virtual() throws {
        let available = try index(
            pkg("mawk", "1.3.4", "Provides: awk")
            + pkg("gawk", "5.2.1", "Provides: awk")
            + pkg("needs-awk", "1", "Depends: awk")
            + pkg("needs-awk-v", "1", "Depends: awk (>= 5)")
            + pkg("libfoo-ng", "2", "Provides: libfoo (= 2.5)")
            + pkg("needs-foo", "1", "Depends: libfoo (>= 2)")
            + pkg("needs-foo-3", "1", "Depends: libfoo (>= 3)")
            + pkg("mailer", "1", "Provides: mail-transport-agent")
        )
        let resolver = Resolver(available: available, architecture: "amd64")
        // Several providers, none chosen: the name that sorts first.
        #expect(names(try resolver.resolve(requests("needs-awk"))) == ["gawk 5.2.1", "needs-awk 1"])
        // A chosen provider is used.
        #expect(names(try resolver.resolve(requests("mawk", "needs-awk"))) == ["mawk 1.3.4", "needs-awk 1"])
        #expect(try resolver.resolve(requests("mawk", "needs-awk")).dependents["mawk"] == ["needs-awk"])
        // Unversioned provides never satisfy a versioned dependency.
        #expect(message { _ = try resolver.resolve(requests("needs-awk-v")) }
                == "needs-awk-v → awk (>= 5): no version satisfies it (available: gawk 5.2.1 provides awk, mawk 1.3.4 provides awk)")
        // Versioned provides satisfy when the provided version does.
        #expect(names(try resolver.resolve(requests("needs-foo"))) == ["libfoo-ng 2", "needs-foo 1"])
        #expect(message { _ = try resolver.resolve(requests("needs-foo-3")) }
                == "needs-foo-3 → libfoo (>= 3): no version satisfies it (available: libfoo-ng 2 provides libfoo (= 2.5))")
        // A virtual request with exactly one provider installs it; with several it is an error.
        #expect(names(try resolver.resolve(requests("mail-transport-agent"))) == ["mailer 1"])
        #expect(message { _ = try resolver.resolve(requests("awk")) }
                == "image.yaml: packages[0]: awk is a virtual package provided by gawk, mawk; request one of them explicitly")
        // The base provides it.
        let base = Resolver(available: available, installed: [try installed("mawk", "1.3.4", provides: "awk")], architecture: "amd64")
        let r = try base.resolve(requests("awk", "needs-awk"))
        #expect(names(r) == ["needs-awk 1"])
        #expect(r.satisfiedByInstalled == ["mawk"])
    }

    @Test(":any needs Multi-Arch: allowed; foreign architecture qualifiers cannot be met")
    func archQualifiers() throws {
        let available = try index(
            pkg("perl", "5.36.0-7", "Multi-Arch: allowed")
            + pkg("make", "4.3-4.1")
            + pkg("uses-perl", "1", arch: "all", "Depends: perl:any")
            + pkg("uses-make", "1", "Depends: make:any")
            + pkg("uses-i386", "1", "Depends: libc6:i386 | perl:amd64")
            + pkg("only-i386", "1", "Depends: libc6:i386")
        )
        let resolver = Resolver(available: available, architecture: "amd64")
        #expect(names(try resolver.resolve(requests("uses-perl"))) == ["perl 5.36.0-7", "uses-perl 1"])
        #expect(names(try resolver.resolve(requests("uses-i386"))) == ["perl 5.36.0-7", "uses-i386 1"])
        #expect(message { _ = try resolver.resolve(requests("uses-make")) }
                == "uses-make → make:any: no version satisfies it (available: 4.3-4.1, make is not Multi-Arch: allowed, which :any needs)")
        #expect(message { _ = try resolver.resolve(requests("only-i386")) }
                == "only-i386 → libc6:i386: no version satisfies it (available: libc6:i386 is not installable on amd64)")
    }

    @Test("installed packages satisfy relations they meet and are not added again")
    func installedPackages() throws {
        let base = [try installed("libc6", "2.36-9+deb12u4"), try installed("tzdata", "2024a-0+deb12u1"),
                    try installed("libgcc-s1", "12.2.0-14"), try installed("gcc-12-base", "12.2.0-14")]
        let resolver = Resolver(available: try index(python), installed: base, architecture: "amd64")
        let r = try resolver.resolve(requests("python3", "tzdata"))
        #expect(!r.packages.contains { ["libc6", "tzdata", "libgcc-s1", "gcc-12-base"].contains($0.name) })
        #expect(r.satisfiedByInstalled == ["libc6", "tzdata"])
        #expect(r.packages.contains { $0.name == "python3.11" })
        // An installed version the relation rejects is an error naming both versions.
        let old = Resolver(available: try index(python + pkg("libfoo", "1", "Depends: libc6 (>= 2.38)") + pkg("libc6", "2.38-1")),
                           installed: [try installed("libc6", "2.36-9")], architecture: "amd64")
        #expect(message { _ = try old.resolve(requests("libfoo")) }
                == "libc6 2.36-9 is installed in the base but libfoo needs libc6 (>= 2.38) (libfoo → libc6 (>= 2.38))")
    }

    @Test("Conflicts and Breaks between chosen packages are errors; conflicts with one's own provides are not")
    func conflicts() throws {
        let available = try index(
            pkg("exim4", "4.96", "Provides: mail-transport-agent", "Conflicts: mail-transport-agent")
            + pkg("postfix", "3.7", "Provides: mail-transport-agent", "Conflicts: mail-transport-agent")
            + pkg("nscd", "2.35") + pkg("libc6", "2.36-9", "Breaks: nscd (<< 2.36)")
            + pkg("nscd-new", "2.36") + pkg("uses-nscd", "1", "Depends: nscd")
        )
        let resolver = Resolver(available: available, architecture: "amd64")
        #expect(names(try resolver.resolve(requests("exim4"))) == ["exim4 4.96"])
        #expect(message { _ = try resolver.resolve(requests("exim4", "postfix")) }
                == "exim4 4.96 Conflicts mail-transport-agent, but postfix 3.7 is also being installed")
        #expect(message { _ = try resolver.resolve(requests("uses-nscd", "libc6")) }
                == "libc6 2.36-9 Breaks nscd (<< 2.36), but nscd 2.35 is also being installed")
    }

    @Test("an alternative that conflicts with a chosen package is passed over, either way round")
    func alternativesAvoidConflicts() throws {
        let available = try index(
            pkg("desktop", "1", "Depends: audio-a, settings, mixer")
            + pkg("audio-a", "1", "Conflicts: pulse", "Provides: sound-server")
            + pkg("settings", "1", "Depends: pulse | pipewire")
            + pkg("mixer", "1", "Depends: mixer-old | mixer-new")
            + pkg("mixer-old", "1", "Breaks: sound-server")
            + pkg("mixer-new", "2")
            + pkg("pulse", "1") + pkg("pipewire", "1")
        )
        let r = try Resolver(available: available, architecture: "amd64").resolve(requests("desktop"))
        #expect(names(r) == ["audio-a 1", "desktop 1", "mixer 1", "mixer-new 2", "pipewire 1", "settings 1"])
        // With no other way, the conflict is reported.
        let forced = try Resolver(available: available + index(pkg("needs-pulse", "1", "Depends: pulse")), architecture: "amd64")
        #expect(message { _ = try forced.resolve(requests("desktop", "needs-pulse")) }
                == "audio-a 1 Conflicts pulse, but pulse 1 is also being installed")
    }

    @Test("unknown packages suggest close names; unsatisfiable dependencies print the chain")
    func unknownAndUnsatisfiable() throws {
        let available = try index(python + pkg("libfoo", "1.0") + pkg("bar", "1", "Depends: libfoo (>= 2)")
                                  + pkg("baz", "1", "Depends: nosuch-lib"))
        let resolver = Resolver(available: available, architecture: "amd64")
        #expect(message { _ = try resolver.resolve(requests("pyhton3")) }
                == "image.yaml: packages[0]: unknown package \"pyhton3\" (did you mean python3?)")
        #expect(message { _ = try resolver.resolve(requests("qqqqqqqqqq")) }
                == "image.yaml: packages[0]: unknown package \"qqqqqqqqqq\"")
        let deep = try Resolver(available: available + index(
            pkg("python3.11", "3.11.2-7", "Depends: libfoo (>= 2)", "Pre-Depends: libc6 (>= 2.36)"), repo: 1
        ), architecture: "amd64")
        #expect(message { _ = try deep.resolve(requests("python3")) }
                == "python3 → python3.11 → libfoo (>= 2): no version satisfies it (available: 1.0)")
        #expect(message { _ = try resolver.resolve(requests("baz")) }
                == "baz → nosuch-lib: no version satisfies it (available: none)")
    }

    @Test("the result does not depend on the order of the available packages")
    func deterministic() throws {
        let available = try index(python + pkg("mawk", "1.3.4", "Provides: awk") + pkg("gawk", "5.2.1", "Provides: awk")
                                  + pkg("needs-awk", "1", "Depends: awk"))
            + index(pkg("libc6", "2.36-9+deb12u4", "Depends: libgcc-s1", "Multi-Arch: same"), repo: 1)
        let want = try Resolver(available: available, architecture: "amd64").resolve(requests("python3", "needs-awk"))
        for _ in 0..<10 {
            let got = try Resolver(available: available.shuffled(), architecture: "amd64").resolve(requests("python3", "needs-awk"))
            #expect(got.packages == want.packages)
            #expect(got.reasons == want.reasons)
            #expect(got.dependents == want.dependents)
        }
        #expect(want.packages.first { $0.name == "libc6" }?.repositoryIndex == 0)
    }

    /// The host's apt lists, when this machine has them (a Debian host or container).
    static let hostLists: [String] = {
        let dir = "/var/lib/apt/lists"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix("_binary-amd64_Packages.lz4") }.sorted().map { "\(dir)/\($0)" }
    }()

    static let canCompareWithApt = !hostLists.isEmpty
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/apt-get")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/lz4")

    /// Runs a program and returns its standard output.
    static func run(_ path: String, _ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }

    /// The same packages as apt itself chooses, from the host's real indexes, for an empty
    /// base: `apt-get --simulate --no-install-recommends` with an empty dpkg status.
    @Test("chooses what apt-get chooses on the host's real indexes", .enabled(if: canCompareWithApt))
    func sameAsApt() throws {
        var available: [PackageRecord] = []
        for (i, list) in Self.hostLists.enumerated() {
            let text = try Self.run("/usr/bin/lz4", ["-dc", list])
            available += try ControlParagraph.parseAll(text).map { try PackageRecord(paragraph: $0, repositoryIndex: i) }
        }
        let resolver = Resolver(available: available, architecture: "amd64")
        let status = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-empty-status-\(UUID().uuidString)").path
        try Data().write(to: URL(fileURLWithPath: status))
        defer { try? FileManager.default.removeItem(atPath: status) }
        for request in [["python3"], ["curl"], ["build-essential"], ["apache2"], ["openssh-server"], ["python3-pip", "python3-venv"]] {
            let simulated = try Self.run("/usr/bin/apt-get", ["-o", "Dir::State::status=\(status)", "--simulate",
                                                             "--no-install-recommends", "install"] + request)
            // "Inst libc6 (2.36-9+deb12u13 Debian:12.13/stable [amd64])"
            let apt = simulated.split(separator: "\n").filter { $0.hasPrefix("Inst ") }.map { line in
                let parts = line.split(separator: " ")
                return "\(parts[1]) \(parts[2].dropFirst())"
            }.sorted()
            try #require(!apt.isEmpty, "apt-get chose nothing for \(request)")
            let ours = names(try resolver.resolve(try request.map { try PackageRequest(parsing: $0, origin: "test") })).sorted()
            #expect(ours == apt, "\(request)")
        }
    }

    /// The host's own Debian index, when this machine has one: the whole of bookworm main.
    static let hostIndex = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"

    @Test("a real Packages index parses and python3 resolves",
          .enabled(if: FileManager.default.fileExists(atPath: hostIndex) && FileManager.default.isExecutableFile(atPath: "/usr/bin/lz4")))
    func realIndex() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/lz4")
        p.arguments = ["-dc", Self.hostIndex]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)

        let clock = ContinuousClock()
        let start = clock.now
        let paragraphs = try ControlParagraph.parseAll(text)
        let parsed = clock.now
        let records = try paragraphs.map { try PackageRecord(paragraph: $0, repositoryIndex: 0) }
        let recorded = clock.now
        let resolver = Resolver(available: records, architecture: "amd64")
        let r = try resolver.resolve(requests("python3"))
        let done = clock.now
        print("real index: \(paragraphs.count) paragraphs; parse \(parsed - start), records \(recorded - parsed), resolve \(done - recorded)")
        #expect(paragraphs.count > 50_000)
        #expect(r.packages.contains { $0.name == "python3" })
        #expect(r.packages.contains { $0.name == "libc6" })
        #expect(r.reasons["libc6"]?.first == "python3")
        // Generous bound for debug builds on a shared machine; release is far below.
        #expect(done - start < .seconds(20))
    }
}
