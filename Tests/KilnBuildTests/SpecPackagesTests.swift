import Testing
@testable import KilnBuild

/// A spec with `packages: [python3]` and the given `repositories` items (each already indented).
private func withRepositories(_ items: String) -> String {
    "name: hello\npackages: [python3]\nrepositories:\n" + items
}

@Suite struct SpecPackagesTests {
    @Test func allKeys() throws {
        let s = try parse("""
        name: hello
        repositories:
          - host
          - url: https://mirror.example/debian
            suite: bookworm
            components: [main, contrib]
            keyring: keys/debian-archive.gpg
          - url: file:///srv/repo
            suite: ./
            keyring: /etc/keys/local.gpg
          - url: file:/srv/other
            suite: dists/stable/
            components: []
            keyring: ../shared/./k.gpg
        packages:
          - python3
          - ca-certificates
          - tzdata=2025b-0+deb12u1
          - libstdc++6=1:12.2.0-14~bpo.1
          - g++
        recommends: true
        configure: true
        """)
        #expect(s.repositories == [
            .host(location: SourceLocation(file: specPath, line: 3, column: 5)),
            .explicit(url: "https://mirror.example/debian", suite: "bookworm", components: ["main", "contrib"],
                      keyring: "/specs/app/keys/debian-archive.gpg", location: SourceLocation(file: specPath, line: 4, column: 5)),
            .explicit(url: "file:///srv/repo", suite: "./", components: [], keyring: "/etc/keys/local.gpg",
                      location: SourceLocation(file: specPath, line: 8, column: 5)),
            .explicit(url: "file:/srv/other", suite: "dists/stable/", components: [], keyring: "/specs/shared/k.gpg",
                      location: SourceLocation(file: specPath, line: 11, column: 5)),
        ])
        #expect(s.packages.map(\.name) == ["python3", "ca-certificates", "tzdata", "libstdc++6", "g++"])
        #expect(s.packages.map(\.version) == [nil, nil, "2025b-0+deb12u1", "1:12.2.0-14~bpo.1", nil])
        #expect(s.packages[2].location == SourceLocation(file: specPath, line: 18, column: 5))
        #expect(s.recommends == true)
        #expect(s.configure == true)
        // `packages` without `layering` or `layers` layers by package.
        #expect(s.layering == .packages)
        #expect(s.keyLocations["packages"]?.line == 15)
        #expect(s.keyLocations["repositories"]?.line == 2)
    }

    @Test func defaults() throws {
        let s = try parse("name: hello\n")
        #expect(s.repositories.isEmpty && s.packages.isEmpty)
        #expect(s.recommends == false && s.configure == false)
        #expect(s.layering == .single)

        let p = try parse("name: hello\nrepositories: [host]\npackages: [python3]\n")
        #expect(p.recommends == false && p.configure == false)
        #expect(p.layering == .packages)
        // Null values mean absent, as for the other keys.
        let n = try parse("name: hello\nrepositories:\npackages:\nrecommends:\nconfigure:\n")
        #expect(n.packages.isEmpty && n.repositories.isEmpty && n.layering == .single)
    }

    @Test func explicitLayeringWins() throws {
        let base = "name: hello\nrepositories: [host]\npackages: [python3]\n"
        #expect(try parse(base + "layering: auto\n").layering == .auto)
        #expect(try parse(base + "layering: single\n").layering == .single)
        #expect(try parse(base + "layering: packages\n").layering == .packages)
        #expect(try parse(base + "layers: [/opt/*]\n").layering == .explicit([["/opt/*"]]))
    }

    @Test func packagesNeedRepositories() {
        expectError("name: hello\npackages:\n  - python3\n", line: 2,
                    "packages: needs `repositories`", "`host`")
        expectError("name: hello\nrepositories: []\npackages: [python3]\n", line: 3, "packages: needs `repositories`")
    }

    @Test func keysWithoutPackages() {
        expectError("name: hello\nrepositories: [host]\n", line: 2, "repositories: has no effect without `packages`")
        expectError("name: hello\nrecommends: true\n", line: 2, "recommends: has no effect without `packages`")
        expectError("name: hello\nconfigure: false\n", line: 2, "configure: has no effect without `packages`")
        expectError("name: hello\nrepositories: [host]\npackages: []\n", line: 2, "repositories: has no effect")
        expectError("name: hello\nlayering: packages\n", line: 2, "layering: ", "no `packages`")
        expectError("name: hello\nmaxLayers: 5\nlayering: packages\npackages: []\n", line: 3, "layering: ", "no `packages`")
    }

    @Test func topLevelTypos() {
        expectError("name: hello\npakages: [python3]\n", line: 2, "pakages: unknown key; did you mean `packages`?")
        expectError("name: hello\nrepositores: [host]\n", line: 2, "repositores: unknown key; did you mean `repositories`?")
        expectError("name: hello\nrecomends: true\n", line: 2, "recomends: unknown key; did you mean `recommends`?")
        expectError("name: hello\nconfigur: true\n", line: 2, "configur: unknown key; did you mean `configure`?")
        expectError("name: hello\nlayering: pakages\n", line: 2, "layering: unknown strategy `pakages`; did you mean `packages`?")
        expectError("name: hello\nlayering: zzzzzz\n", line: 2, "(expected auto, popularity, single or packages)")
    }

    @Test func packageNames() {
        let base = "name: hello\nrepositories: [host]\npackages:\n  - python3\n"
        for bad in ["Python3", "a", "-dev", ".x", "lib_foo", "ça"] {
            expectError(base + "  - \(bad)\n", line: 5, "packages[1]: invalid package name `\(bad)`", "§5.6.1")
        }
        expectError(base + "  - python3:amd64\n", line: 5, "invalid package name `python3:amd64`", "architecture qualifiers")
        expectError(base + "  - python3/bookworm-backports\n", line: 5, "invalid package name", "`name/suite`")
        expectError(base + "  - \"=1.0\"\n", line: 5, "packages[1]: invalid package name ``")
        expectError(base + "  - {tzdata: 2025b}\n", line: 5, "packages[1]: expected `name` or `name=version`, got a map")
        expectError(base + "  - [python3]\n", line: 5, "packages[1]: expected a string, got a list")
        expectError("name: hello\nrepositories: [host]\npackages: python3\n", line: 3, "packages: expected a list of package names")
    }

    @Test func versions() {
        let base = "name: hello\nrepositories: [host]\npackages:\n"
        expectError(base + "  - tzdata=\n", line: 4, "packages[0]: `tzdata=` has an empty version")
        expectError(base + "  - tzdata=2025b_1\n", line: 4, "packages[0]: invalid version `2025b_1` of `tzdata`", "§5.6.12")
        expectError(base + "  - tzdata=1.0=2\n", line: 4, "invalid version `1.0=2`")
        expectError(base + "  - \"tzdata=1.0 2\"\n", line: 4, "invalid version `1.0 2`")
    }

    @Test func duplicatePackages() {
        let base = "name: hello\nrepositories: [host]\npackages:\n  - python3\n  - tzdata\n"
        expectError(base + "  - python3\n", line: 6, "packages[2]: duplicate package `python3` (first on line 4)")
        expectError(base + "  - tzdata=2025b-0+deb12u1\n", line: 6, "packages[2]: duplicate package `tzdata` (first on line 5)")
    }

    @Test func repositoryURLs() throws {
        func spec(_ url: String) -> String {
            withRepositories("  - url: \(url)\n    suite: bookworm\n    components: [main]\n    keyring: k.gpg\n")
        }
        expectError(spec("ftp://mirror.example/debian"), line: 4, "repositories[0].url: `ftp://mirror.example/debian` is not an http://, https:// or file: URL")
        expectError(spec("mirror.example/debian"), line: 4, "repositories[0].url: ", "is not an http://")
        expectError(spec("https://"), line: 4, "repositories[0].url: `https://` names no host")
        expectError(spec("http:///debian"), line: 4, "names no host")
        expectError(spec("file:srv/repo"), line: 4, "repositories[0].url: `file:srv/repo` needs an absolute path")
        expectError(spec("file://server/srv/repo"), line: 4, "repositories[0].url: `file://server/srv/repo` names a host")
        expectError(spec("\"https://a.example/x y\""), line: 4, "repositories[0].url: ", "contains whitespace")
        // The accepted forms.
        for good in ["http://a.example/debian", "https://a.example", "file:/srv/repo", "file:///srv/repo"] {
            #expect(try parse(spec(good)).repositories.count == 1)
        }
    }

    @Test func repositoryMaps() {
        expectError(withRepositories("  - url: https://a.example/debian\n    suit: bookworm\n"), line: 5,
                    "repositories[0].suit: unknown key; did you mean `suite`?")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    component: [main]\n"), line: 6,
                    "repositories[0].component: unknown key; did you mean `components`?")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    signed-by: k.gpg\n"), line: 6,
                    "repositories[0].signed-by: unknown key")
        expectError(withRepositories("  - suite: bookworm\n"), line: 4, "repositories[0].url: missing required key")
        expectError(withRepositories("  - url: https://a.example/debian\n    components: [main]\n"), line: 4,
                    "repositories[0].suite: missing required key")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    keyring: k.gpg\n"), line: 4,
                    "repositories[0].components: missing required key", "flat repository")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: []\n    keyring: k.gpg\n"),
                    line: 6, "repositories[0].components: must list at least one component")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: ./\n    components: [main]\n    keyring: k.gpg\n"),
                    line: 6, "repositories[0].components: a flat repository (suite `./` ends in `/`) has no components")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: [main]\n"), line: 4,
                    "repositories[0].keyring: missing required key", "Signed-By")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: [main]\n    keyring: \"\"\n"),
                    line: 7, "repositories[0].keyring: empty path")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: \"\"\n    components: [main]\n    keyring: k\n"),
                    line: 5, "repositories[0].suite: must not be empty")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: main\n    keyring: k\n"),
                    line: 6, "repositories[0].components: expected a list of components")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: [main, \"non free\"]\n    keyring: k\n"),
                    line: 6, "repositories[0].components[1]: ", "contains whitespace")
        expectError(withRepositories("  - url: https://a.example/debian\n    suite: bookworm\n    components: [main, main]\n    keyring: k\n"),
                    line: 6, "repositories[0].components[1]: duplicate component `main`")
    }

    @Test func repositoryItems() {
        expectError(withRepositories("  - hots\n"), line: 4, "repositories[0]: expected `host` or a map", "did you mean `host`?")
        expectError(withRepositories("  - host\n  - https://deb.debian.org/debian\n"), line: 5,
                    "repositories[1]: expected `host` or a map with `url`, `suite`, `components` and `keyring`, got a string")
        expectError(withRepositories("  - [host]\n"), line: 4, "repositories[0]: expected `host` or a map", "got a list")
        expectError(withRepositories("  - host\n  - host\n"), line: 5, "repositories[1]: duplicate `host` (first on line 4)")
        let twice = "  - {url: 'https://a.example/d', suite: bookworm, components: [main], keyring: k}\n"
        expectError(withRepositories(twice + "  - host\n" + twice), line: 6,
                    "repositories[2]: `https://a.example/d` suite `bookworm` is already listed on line 4")
        expectError("name: hello\npackages: [python3]\nrepositories: host\n", line: 3, "repositories: expected a list of `host`")
    }

    @Test func booleans() {
        let base = "name: hello\nrepositories: [host]\npackages: [python3]\n"
        expectError(base + "recommends: 1\n", line: 4, "recommends: expected true or false")
        expectError(base + "configure: \"true\"\n", line: 4, "configure: expected true or false")
    }

    /// `packages` layering treats files that come from no package exactly like `auto`.
    @Test func packagesLayeringSplitsOtherContentsLikeAuto() throws {
        var t = FileTree()
        var prov: [String: Set<Int>] = [:]
        for (path, size, items) in [("usr/lib/libc.so", 2000, [0, 1]), ("usr/lib/libbig.so", 5000, [0]),
                                    ("usr/bin/app", 100, [1]), ("etc/passwd", 5, [])] as [(String, Int, Set<Int>)] {
            t.insert(path, FileNode(.file(.inline([UInt8](repeating: 1, count: size))), mode: 0o644))
            if !items.isEmpty { prov[path] = items }
        }
        func names(_ plan: LayerPlan) -> [[String]] { plan.layers.map { $0.entries(mtime: 0).map(\.header.name) } }
        for budget in [1, 2, 3, 10] {
            #expect(names(try t.split(provenance: prov, strategy: .packages, budget: budget))
                == names(try t.split(provenance: prov, strategy: .auto, budget: budget)))
        }
    }
}
