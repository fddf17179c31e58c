import Foundation
import KilnOCI
import Testing
@testable import KilnBuild

/// `swift:` content items (SpecParser+Contents.swift, SwiftProduct.swift).
@Suite struct SpecSwiftTests {
    @Test func defaults() throws {
        let spec = try parse("name: app\ncontents:\n  - swift: Server\n")
        let item = try #require(spec.contents.first)
        #expect(item.kind == .swift)
        #expect(item.path == "/specs/app")   // the spec's directory
        #expect(item.target == nil)
        #expect(item.swift == SwiftProductSpec(product: "Server", staticStdlib: false))
        #expect(item.swift?.defaultTarget == "/usr/local/bin/Server")
    }

    @Test func everyKey() throws {
        let spec = try parse("""
        name: app
        contents:
          - swift: my-server.v2
            package: ../server
            target: /app/server
            static: true
            onConflict: replace
          - {swift: Tool, package: /src/tool}
        """)
        #expect(spec.contents[0].path == "/specs/server")
        #expect(spec.contents[0].target == "/app/server")
        #expect(spec.contents[0].swift == SwiftProductSpec(product: "my-server.v2", staticStdlib: true))
        #expect(spec.contents[0].onConflict == .replace)
        #expect(spec.contents[1].path == "/src/tool")
    }

    @Test func badValues() {
        expectError("name: a\ncontents:\n  - swift: \"\"\n", line: 3, "contents[0].swift", "not a product name")
        expectError("name: a\ncontents:\n  - swift: ../App\n", line: 3, "contents[0].swift", "not a product name")
        expectError("name: a\ncontents:\n  - swift: --product\n", line: 3, "not a product name")
        expectError("name: a\ncontents:\n  - swift: [App]\n", line: 3, "contents[0].swift")
        expectError("name: a\ncontents:\n  - swift:\n", line: 3, "contents[0].swift", "missing product name")
        expectError("name: a\ncontents:\n  - swift: App\n    static: yes please\n", line: 4, "contents[0].static")
        expectError("name: a\ncontents:\n  - swift: App\n    package: \"\"\n", line: 4, "contents[0].package", "empty path")
        expectError("name: a\ncontents:\n  - swift: App\n    target: bin/app\n", line: 4, "contents[0].target", "absolute")
        expectError("name: a\ncontents:\n  - swift: App\n    target: /usr/bin/\n", line: 4, "contents[0].target", "names a directory")
        expectError("name: a\ncontents:\n  - swift: App\n    isolate: true\n", line: 4, "contents[0].isolate", "only `closure:`")
        expectError("name: a\ncontents:\n  - swift: App\n    closure: /bin/sh\n", line: 3, "`closure` and `swift` cannot be used together")
        expectError("name: a\ncontents:\n  - swift: App\n    statc: true\n", line: 4, "contents[0].statc", "unknown key", "static")
    }

    @Test func swiftKeysOnOtherItems() {
        expectError("name: a\ncontents:\n  - source: x\n    package: y\n", line: 4, "contents[0].package", "only `swift:` items")
        expectError("name: a\ncontents:\n  - closure: /bin/sh\n    static: true\n", line: 4, "contents[0].static", "only `swift:` items")
    }

    @Test func defaultEntrypoint() throws {
        let spec = try parse("name: app\ncontents:\n  - swift: Server\n  - {swift: Tool, target: /bin/tool}\n")
        #expect(ImageBuilder.swiftEntrypoint(ContainerConfig(), spec: spec).Entrypoint == ["/usr/local/bin/Server"])
        let withTarget = try parse("name: app\ncontents:\n  - {swift: Server, target: /srv/app}\n")
        #expect(ImageBuilder.swiftEntrypoint(ContainerConfig(), spec: withTarget).Entrypoint == ["/srv/app"])
        // The spec's own Entrypoint or Cmd wins: no default then.
        let cmd = try parse("name: app\ncontents:\n  - swift: Server\nconfig:\n  Cmd: [/bin/sh]\n")
        let c = ImageBuilder.swiftEntrypoint(cmd.config, spec: cmd)
        #expect(c.Entrypoint == nil && c.Cmd == ["/bin/sh"])
        // Merged into a base's config: the base's Entrypoint and Cmd give way.
        var base = ContainerConfig()
        base.Entrypoint = ["/bin/sh", "-c"]
        base.Cmd = ["bash"]
        let onBase = ImageBuilder.swiftEntrypoint(base, spec: spec)
        #expect(onBase.Entrypoint == ["/usr/local/bin/Server"] && onBase.Cmd == nil)
        let none = try parse("name: app\ncontents:\n  - source: x\n")
        #expect(ImageBuilder.swiftEntrypoint(ContainerConfig(), spec: none).Entrypoint == nil)
    }

    @Test func otherPlatformsAreRefused() throws {
        let other = Platform.host.architecture == "arm64" ? "amd64" : "arm64"
        let spec = try parse("name: app\narchitecture: \(other)\ncontents:\n  - swift: Server\n")
        #expect(throws: BuildError.self) { try ImageBuilder.checkHostPlatform(spec) }
        let host = try parse("name: app\ncontents:\n  - swift: Server\n")
        try ImageBuilder.checkHostPlatform(host)
    }

    @Test func bundleNamesAreFoundInTheExecutable() throws {
        let dir = NSTemporaryDirectory() + "kiln-swift-scan-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A needle across the 4 MiB chunk boundary is found; one absent is not.
        var bytes = [UInt8](repeating: 0x41, count: (4 << 20) - 5)
        bytes += Array("/bin/App_App.resources".utf8) + [UInt8](repeating: 0, count: 100)
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/exe"))
        let found = try ImageBuilder.mentioned(["/bin/App_App.resources", "/bin/Other_Other.resources"], in: dir + "/exe")
        #expect(found == ["/bin/App_App.resources"])
    }
}
