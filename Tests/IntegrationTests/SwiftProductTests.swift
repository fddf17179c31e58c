import Foundation
import Testing

/// A copy of a fixture package of Tests/Fixtures in a temporary directory (its `.build`
/// must not land in the source tree), with the spec written in it: the package is then
/// the spec's directory, `swift:`'s default `package`.
private func fixturePackage(_ name: String, spec: String) throws -> TempDir {
    let dir = try TempDir()
    try run("/bin/cp", ["-R", packageRoot + "/Tests/Fixtures/\(name)/.", dir.path])
    try dir.write("image.yaml", spec)
    return dir
}

/// The paths of the flattened image (`kiln export` of a docker-archive).
private func imageFiles(_ archive: String, in dir: TempDir) throws -> [String] {
    try kiln(["export", "docker-archive:" + archive, "-o", dir.path + "/rootfs.tar"])
    defer { unlink(dir.path + "/rootfs.tar") }
    return try run("tar", ["-tf", dir.path + "/rootfs.tar"]).stdout.split(separator: "\n").map(String.init)
}

private let podmanPresent = FileManager.default.isExecutableFile(atPath: "/usr/bin/podman")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")

private func podmanRun(_ podman: Podman, _ image: String, _ args: [String] = []) throws -> RunResult {
    try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image] + args)
}

/// `swift:` content items: the product built by `swift build -c release`, with its
/// closure and resource bundle, running in podman (SwiftProduct.swift).
@Suite(.serialized) struct SwiftProductTests {
    @Test(.enabled(if: podmanPresent, "needs podman and skopeo"))
    func productRunsInPodmanAndReadsItsResource() throws {
        let dir = try fixturePackage("SwiftApp", spec: "name: kiln-test/swiftapp\ntag: v1\ncontents:\n  - swift: SwiftApp\n")
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        #expect(!r.stdout.contains("Compiling"), "swift build's output must stay off Kiln's stdout")

        // The default Entrypoint is the product at its default target.
        let config = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(dir.path)/img.tar"]).stdout) as! [String: Any]
        let c = config["config"] as? [String: Any]
        #expect(c?["Entrypoint"] as? [String] == ["/usr/local/bin/SwiftApp"])

        let files = try imageFiles(dir.path + "/img.tar", in: dir)
        #expect(files.contains("usr/local/bin/SwiftApp"))
        #expect(files.contains("usr/local/bin/SwiftApp_SwiftApp.resources/greeting.txt"))
        // Dynamically linked: the Swift runtime comes along from the toolchain.
        #expect(files.contains { $0.hasSuffix("/libswiftCore.so") })

        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", dir.path + "/img.tar"])
        let out = try podmanRun(podman, "localhost/kiln-test/swiftapp:v1", ["--flag"])
        #expect(out.stdout == "hello from a Swift resource\n--flag\n")

        // Nothing changed but the build directory's mtimes: swift build has nothing to do
        // and the image is the same bytes.
        try sh("touch .build/release/SwiftApp .build/release/SwiftApp_SwiftApp.resources/greeting.txt", cwd: dir.path)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/again.tar"])
        #expect(try dir.bytes("again.tar") == dir.bytes("img.tar"))

        // A changed resource: swift build copies it, and the plan cache (which would
        // serve an unchanged spec from a stat walk) does not stand in for swift build.
        try dir.write("Sources/SwiftApp/greeting.txt", "changed\n")
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/changed.tar"])
        #expect(try dir.bytes("changed.tar") != dir.bytes("img.tar"))
        try kiln(["export", "docker-archive:" + dir.path + "/changed.tar", "-o", dir.path + "/changed-root.tar"])
        let text = try run("tar", ["-xOf", dir.path + "/changed-root.tar", "usr/local/bin/SwiftApp_SwiftApp.resources/greeting.txt"]).stdout
        #expect(text == "changed\n")
    }

    @Test func eachProductTakesOnlyTheResourceBundlesItUses() throws {
        let dir = try fixturePackage("SwiftApp", spec: """
            name: kiln-test/two
            contents:
              - swift: SwiftApp
              - {swift: Other, target: /opt/other/Other}
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let files = try imageFiles(dir.path + "/img.tar", in: dir)
        let bundles = files.filter { $0.hasSuffix(".resources/") || $0.hasSuffix(".resources") }.sorted()
        #expect(bundles == ["opt/other/SwiftApp_Other.resources/", "usr/local/bin/SwiftApp_SwiftApp.resources/"], "\(files)")
        // The first swift: item gives the Entrypoint.
        let config = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(dir.path)/img.tar"]).stdout) as! [String: Any]
        #expect((config["config"] as? [String: Any])?["Entrypoint"] as? [String] == ["/usr/local/bin/SwiftApp"])
    }

    @Test(.enabled(if: podmanPresent, "needs podman and skopeo"))
    func staticStdlibTargetAndExplicitEntrypoint() throws {
        let dir = try fixturePackage("SwiftApp", spec: """
            name: kiln-test/swiftapp-static
            tag: v1
            contents:
              - {swift: SwiftApp, package: ., static: true, target: /app/hello}
            config:
              Cmd: [/app/hello, from-cmd]
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let config = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(dir.path)/img.tar"]).stdout) as! [String: Any]
        let c = config["config"] as? [String: Any]
        #expect(c?["Entrypoint"] == nil, "a spec that sets Cmd gets no default Entrypoint")
        let files = try imageFiles(dir.path + "/img.tar", in: dir)
        #expect(files.contains("app/hello"))
        #expect(files.contains("app/SwiftApp_SwiftApp.resources/greeting.txt"))
        #expect(!files.contains { $0.contains("libswiftCore") || $0.contains("libFoundation") }, "\(files)")

        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", dir.path + "/img.tar"])
        let out = try podmanRun(podman, "localhost/kiln-test/swiftapp-static:v1")
        #expect(out.stdout == "hello from a Swift resource\nfrom-cmd\n")
    }

    @Test(.enabled(if: podmanPresent, "needs podman and skopeo"))
    func onABaseTheDefaultEntrypointClearsTheBasesCmd() throws {
        let dir = try fixturePackage("SwiftApp", spec: """
            name: kiln-test/swiftapp-on-base
            tag: v1
            fromImage: oci:base:v1
            contents:
              - {swift: SwiftApp, static: true}
            """)
        // A base whose Cmd would otherwise become the product's arguments.
        try dir.write("base.yaml", "name: kiln-test/base\ntag: v1\ncontents: [basefiles]\nconfig:\n  Cmd: [\"--from-the-base\"]\n  Env: [\"FROM_BASE=1\"]\n")
        try dir.write("basefiles/etc/hostname", "base\n")
        try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", dir.path + "/base"])
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let config = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(dir.path)/img.tar"]).stdout) as! [String: Any]
        let c = config["config"] as? [String: Any]
        #expect(c?["Entrypoint"] as? [String] == ["/usr/local/bin/SwiftApp"])
        #expect(c?["Cmd"] == nil, "\(String(describing: c))")
        #expect((c?["Env"] as? [String])?.contains("FROM_BASE=1") == true)

        let podman = Podman()
        defer { podman.cleanup() }
        try podman(["load", "-i", dir.path + "/img.tar"])
        let out = try podmanRun(podman, "localhost/kiln-test/swiftapp-on-base:v1")
        #expect(out.stdout == "hello from a Swift resource\n")
    }

    @Test func failingSwiftBuildIsOneLineWithItsLastOutput() throws {
        let dir = try fixturePackage("SwiftAppBroken", spec: "name: kiln-test/broken\ncontents:\n  - swift: SwiftAppBroken\n")
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"], check: false)
        #expect(r.status == 1)
        // The error is one line, the last (a notice that the build started may precede it).
        let lines = r.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.filter { $0.contains("error") }.count == 1, "\(r.stderr)")
        #expect(lines.last?.hasPrefix("kiln: error: ") == true, "\(r.stderr)")
        #expect(r.stderr.contains("image.yaml:3: contents[0].swift: `swift build --product SwiftAppBroken` failed with exit status 1; its errors: "), "\(r.stderr)")
        #expect(r.stderr.contains("main.swift:1:19: error: cannot convert value"), "\(r.stderr)")
        #expect(r.stdout.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))
    }

    @Test func unknownProductAndMissingPackage() throws {
        let dir = try fixturePackage("SwiftApp", spec: "name: kiln-test/none\ncontents:\n  - swift: NoSuchProduct\n")
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"], check: false)
        #expect(r.status == 1)
        #expect(r.stderr.contains("contents[0].swift: `swift build --product NoSuchProduct` failed"), "\(r.stderr)")
        #expect(r.stderr.contains("NoSuchProduct"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))

        try dir.write("nopkg.yaml", "name: kiln-test/none\ncontents:\n  - {swift: App, package: sub}\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/sub", withIntermediateDirectories: true)
        let m = try kiln(["build", dir.path + "/nopkg.yaml", "-o", dir.path + "/img.tar"], check: false)
        #expect(m.status == 1)
        #expect(m.stderr.contains("nopkg.yaml:3: contents[0].swift: \(dir.path)/sub has no Package.swift"), "\(m.stderr)")

        // No swift on PATH: said so, nothing written.
        try dir.write("app.yaml", "name: kiln-test/none\ncontents:\n  - swift: SwiftApp\n")
        let p = try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/img.tar"], env: ["PATH": "/nonexistent"], check: false)
        #expect(p.status == 1)
        #expect(p.stderr.contains("app.yaml:3: contents[0].swift: swift: no `swift` on PATH"), "\(p.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/img.tar"))
    }

    @Test func anotherPlatformIsRefusedBeforeBuilding() throws {
        let other = {
            #if arch(arm64)
            "amd64"
            #else
            "arm64"
            #endif
        }()
        let dir = try fixturePackage("SwiftApp", spec: "name: kiln-test/cross\narchitecture: \(other)\ncontents:\n  - swift: SwiftApp\n")
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"], check: false)
        #expect(r.status == 1)
        #expect(r.stderr.contains("contents[0].swift: swift: items build for the host platform only"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/.build"), "swift build must not run")
    }
}
