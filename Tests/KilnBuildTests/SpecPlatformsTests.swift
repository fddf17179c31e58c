import Foundation
import KilnOCI
import Testing
@testable import KilnBuild

/// The message of the BuildError `body` throws ("" and a failed expectation if none).
private func message(_ body: () throws -> Any, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> String {
    do {
        let v = try body()
        Issue.record("expected an error, got \(v)", sourceLocation: sourceLocation)
    } catch let e as BuildError {
        return e.message
    } catch {
        Issue.record("expected a BuildError, got \(error)", sourceLocation: sourceLocation)
    }
    return ""
}

private let amd64 = Platform(architecture: "amd64", os: "linux")
private let arm64v8 = Platform(architecture: "arm64", os: "linux", variant: "v8")

@Suite struct SpecPlatformsTests {
    @Test func platformsAreKeptInTheListedOrderWithTheirSysroots() throws {
        let spec = try parse("""
            name: t/multi
            platforms: [linux/arm64/v8, linux/amd64, linux/arm/v7]
            sysroots:
              linux/arm64/v8: sysroots/arm64
              linux/arm/v7: /srv/armhf/
            """)
        #expect(spec.platforms == [arm64v8, amd64, Platform(architecture: "arm", os: "linux", variant: "v7")])
        #expect(spec.sysroots == [arm64v8: "/specs/app/sysroots/arm64", Platform(architecture: "arm", os: "linux", variant: "v7"): "/srv/armhf"])
        #expect(spec.architecture == nil && spec.buildPlatform == nil)
    }

    @Test func aSysrootKeyMayNameTheListedPlatformWithoutArm64sDefaultVariant() throws {
        let spec = try parse("name: t/x\nplatforms: [linux/arm64/v8]\nsysroots: {linux/arm64: /srv/a}\n")
        #expect(spec.sysroots == [arm64v8: "/srv/a"])
    }

    @Test(arguments: ["architecture: amd64", "variant: v8", "os: linux"])
    func platformsDoNotGoWithArchitectureVariantOrOS(_ line: String) {
        let key = String(line.prefix { $0 != ":" })
        expectError("name: t/x\n\(line)\nplatforms: [linux/amd64]\n", line: 3, "platforms:", "`\(key)` (line 2)")
    }

    @Test func malformedPlatforms() {
        expectError("name: t/x\nplatforms: [linux]\n", line: 2, "platforms[0]", "`linux` is not a platform", "OS/ARCH[/VARIANT]")
        expectError("name: t/x\nplatforms: [amd64]\n", line: 2, "did you mean `linux/amd64`?")
        expectError("name: t/x\nplatforms: [aarch64]\n", line: 2, "did you mean `linux/arm64`?")
        expectError("name: t/x\nplatforms: [linux/amd64, linux/arm64/v8/x]\n", line: 2, "platforms[1]", "not a platform")
        expectError("name: t/x\nplatforms: [linux//amd64]\n", line: 2, "not a platform")
        expectError("name: t/x\nplatforms: [\"linux/amd64/\"]\n", line: 2, "not a platform")
        expectError("name: t/x\nplatforms: []\n", line: 2, "platforms: is empty")
        expectError("name: t/x\nplatforms: linux/amd64\n", line: 2, "platforms: expected a list of platforms such as [linux/amd64, linux/arm64/v8], got a string")
        expectError("name: t/x\nplatforms:\n  - linux/amd64\n  - [linux/arm64]\n", line: 4, "platforms[1]")
    }

    @Test func unknownOSAndArchitectureSuggestASpelling() {
        expectError("name: t/x\nplatforms: [lnux/amd64]\n", line: 2, "unknown operating system `lnux`", "did you mean `linux`?")
        expectError("name: t/x\nplatforms: [linux/x86_64]\n", line: 2, "unknown architecture `x86_64`", "did you mean `linux/amd64`?")
        expectError("name: t/x\nplatforms: [linux/armhf]\n", line: 2, "did you mean `linux/arm/v7`?")
        expectError("name: t/x\nplatforms: [linux/amd46]\n", line: 2, "did you mean `amd64`?")
    }

    @Test func duplicatePlatforms() {
        expectError("name: t/x\nplatforms:\n  - linux/amd64\n  - linux/amd64\n", line: 4, "platforms[1]", "listed twice")
        expectError("name: t/x\nplatforms: [linux/arm64/v8, linux/arm64]\n", line: 2, "platforms[1]",
                    "`linux/arm64` is listed twice: linux/arm64/v8 names the same platform", "v8")
        // Other variants are other platforms.
        #expect(throws: Never.self) { try parse("name: t/x\nplatforms: [linux/arm/v6, linux/arm/v7]\n") }
    }

    @Test func badSysroots() {
        expectError("name: t/x\nsysroots: {linux/arm64/v8: /srv}\n", line: 2, "sysroots", "`platforms`")
        expectError("name: t/x\nplatforms: [linux/amd64]\nsysroots:\n  linux/arm64/v8: /srv\n", line: 4,
                    "sysroots.linux/arm64/v8", "not among the platforms (linux/amd64)")
        expectError("name: t/x\nplatforms: [linux/amd64]\nsysroots: {amd64: /srv}\n", line: 3, "sysroots.amd64", "not a platform")
        expectError("name: t/x\nplatforms: [linux/amd64]\nsysroots: {linux/amd64: [a]}\n", line: 3, "sysroots.linux/amd64")
        expectError("name: t/x\nplatforms: [linux/amd64]\nsysroots: {linux/amd64: \"\"}\n", line: 3, "sysroots.linux/amd64")
        expectError("name: t/x\nplatforms: [linux/amd64]\nsysroots: linux/amd64\n", line: 3, "sysroots")
    }

    @Test func commandLinePlatformsNarrowInTheSpecsOrder() throws {
        let spec = try parse("name: t/x\nplatforms: [linux/amd64, linux/arm64/v8, linux/arm/v7]\n")
        #expect(try spec.selectingPlatforms(["linux/arm/v7", "linux/amd64"]).platforms
            == [amd64, Platform(architecture: "arm", os: "linux", variant: "v7")])
        // linux/arm64 names the spec's linux/arm64/v8, which is kept as listed.
        #expect(try spec.selectingPlatforms(["linux/arm64"]).platforms == [arm64v8])
        #expect(try spec.selectingPlatforms([]) == spec)
        let m = message({ try spec.selectingPlatforms(["linux/s390x"]) })
        #expect(m == "--platform linux/s390x: not among the spec's platforms (the spec has: linux/amd64, linux/arm64/v8, linux/arm/v7)")
        #expect(message({ try spec.selectingPlatforms(["linux/amd64", "linux/amd64"]) }).contains("given twice"))
        #expect(message({ try spec.selectingPlatforms(["linux"]) }).hasPrefix("--platform: `linux` is not a platform"))
    }

    @Test func commandLinePlatformsSetThemWhenTheSpecHasNone() throws {
        let plain = try parse("name: t/x\n")
        #expect(try plain.selectingPlatforms(["linux/arm64/v8", "linux/amd64"]).platforms == [arm64v8, amd64])
        let arm = try parse("name: t/x\narchitecture: arm64\n")
        #expect(try arm.selectingPlatforms(["linux/arm64/v8"]).platforms == [arm64v8])
        let m = message({ try arm.selectingPlatforms(["linux/amd64"]) })
        #expect(m.hasPrefix("\(specPath):2: architecture: the spec builds linux/arm64; --platform linux/amd64 asks for another"), "\(m)")
    }

    @Test func eachPlatformsSpecTakesItsArchitectureAndSysroot() throws {
        let spec = try parse("name: t/x\nplatforms: [linux/amd64, linux/arm64/v8]\nsysroots: {linux/arm64/v8: /srv/a}\n")
        let arm = spec.forPlatform(arm64v8)
        #expect(arm.architecture == "arm64" && arm.variant == "v8" && arm.os == "linux")
        #expect(arm.buildPlatform == arm64v8 && arm.buildSysroot == "/srv/a")
        let x = spec.forPlatform(amd64)
        #expect(x.architecture == "amd64" && x.variant == nil && x.buildSysroot == nil)
    }

    @Test func debianArchitectures() {
        let cases: [(String, String?, String)] = [("amd64", nil, "amd64"), ("arm64", "v8", "arm64"), ("arm", "v7", "armhf"),
                                                  ("arm", "v6", "armel"), ("arm", "v5", "armel"), ("386", nil, "i386"),
                                                  ("ppc64le", nil, "ppc64el"), ("s390x", nil, "s390x"), ("riscv64", nil, "riscv64")]
        for (arch, variant, debian) in cases {
            #expect(Platform(architecture: arch, os: "linux", variant: variant).debianArchitecture == debian)
        }
    }

    @Test func aBaseIndexEntryIsChosenAsContainerdMatches() throws {
        func entry(_ p: Platform, _ n: UInt8) -> Descriptor {
            Descriptor(mediaType: MediaType.ociManifest, digest: Digest.sha256([n]), size: 1, platform: p)
        }
        let arm64 = Platform(architecture: "arm64", os: "linux")
        let index = Index(manifests: [entry(amd64, 0), entry(arm64, 1), entry(Platform(architecture: "arm", os: "linux", variant: "v6"), 2),
                                      entry(Platform(architecture: "arm", os: "linux", variant: "v7"), 3)])
        // arm64's default variant v8 matches an entry without one, and the other way round.
        #expect(try BaseImage.select(from: index, platform: arm64v8, what: "b").digest == Digest.sha256([1]))
        #expect(try BaseImage.select(from: Index(manifests: [entry(arm64v8, 4)]), platform: arm64, what: "b").digest == Digest.sha256([4]))
        // An exact variant wins over the first match.
        #expect(try BaseImage.select(from: index, platform: Platform(architecture: "arm", os: "linux", variant: "v7"), what: "b").digest == Digest.sha256([3]))
        let m = message({ try BaseImage.select(from: index, platform: Platform(architecture: "s390x", os: "linux"), what: "oci:/b:v1") })
        #expect(m == "oci:/b:v1: the base has no image for linux/s390x (its index has: linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7)")
    }

    @Test(.enabled(if: Platform.host.architecture == "amd64", "the host's /bin/sh is an x86-64 ELF"))
    func anELFOfAnotherMachineIsNamed() throws {
        let elf = try ELFFile(path: "/bin/sh")
        #expect(elf.mismatch(with: arm64v8) == "is an x86-64 ELF, but the platform is linux/arm64/v8")
        #expect(elf.mismatch(with: amd64) == nil)
    }
}

/// Builds for a platform that is not the host's, with and without a sysroot.
@Suite struct PlatformSysrootBuildTests {
    /// A scratch directory holding the spec; removed by the caller.
    func scratch() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-platform-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func plan(_ dir: String, _ yaml: String, platform: Platform) throws -> BuildReport {
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let spec = try Spec.parse(text: yaml, path: dir + "/image.yaml").forPlatform(platform)
        return try ImageBuilder(spec: spec, staging: try Staging()).planReport()
    }

    var foreign: Platform { Platform.host.architecture == "arm64" ? amd64 : arm64v8 }

    @Test func aClosureForAnotherPlatformNeedsItsSysroot() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = message({ try plan(dir, "name: t/x\nplatforms: [\(foreign)]\ncontents:\n  - closure: /bin/sh\n", platform: foreign) })
        #expect(m.hasPrefix("\(dir)/image.yaml:4: contents[0].closure: /bin/sh: \(foreign) is not the host's platform"), "\(m)")
        #expect(m.contains("`sysroots: {\(foreign): DIR}`"), "\(m)")
    }

    @Test func aMissingSysrootNamesItsPlatformAndPath() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = "name: t/x\nplatforms: [\(foreign)]\nsysroots: {\(foreign): nowhere}\ncontents:\n  - closure: /bin/sh\n"
        let m = message({ try plan(dir, yaml, platform: foreign) })
        #expect(m == "\(dir)/image.yaml:3: sysroots.\(foreign): \(dir)/nowhere: no such directory", "\(m)")
    }

    @Test func anELFOfTheWrongMachineInTheSysrootIsAnError() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The host's own program, where the other platform's should be.
        try FileManager.default.createDirectory(atPath: dir + "/root/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: dir + "/root/bin/true")
        let yaml = "name: t/x\nplatforms: [\(foreign)]\nsysroots: {\(foreign): root}\ncontents:\n  - closure: /bin/true\n"
        let m = message({ try plan(dir, yaml, platform: foreign) })
        let host = try ELFFile(path: "/bin/true").machineName
        #expect(m.hasPrefix("\(dir)/image.yaml:5: contents[0].closure: /bin/true is a"), "\(m)")
        #expect(m.hasSuffix("\(host) ELF, but the platform is \(foreign)"), "\(m)")
        // A single-file source is checked the same way; a missing one is named in the sysroot.
        let m2 = message({ try plan(dir, "name: t/x\nplatforms: [\(foreign)]\nsysroots: {\(foreign): root}\ncontents:\n  - source: /bin/true\n", platform: foreign) })
        #expect(m2.hasSuffix("\(host) ELF, but the platform is \(foreign)"), "\(m2)")
        let m3 = message({ try plan(dir, "name: t/x\nplatforms: [\(foreign)]\nsysroots: {\(foreign): root}\ncontents:\n  - source: /bin/false\n", platform: foreign) })
        #expect(m3.contains("/bin/false: no such file or directory in the sysroot of \(foreign) (\(dir)/root)"), "\(m3)")
    }

    @Test func projectFilesAreTheSameForEveryPlatform() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "hello\n".write(toFile: dir + "/app.conf", atomically: true, encoding: .utf8)
        let report = try plan(dir, "name: t/x\nplatforms: [\(foreign)]\ncontents:\n  - source: app.conf\n    target: /etc/app.conf\n", platform: foreign)
        #expect(report.image.config.architecture == foreign.architecture && report.image.config.variant == foreign.variant)
    }

    @Test func aSwiftProductIsBuiltForTheHostOnly() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = message({ try plan(dir, "name: t/x\nplatforms: [\(foreign)]\ncontents:\n  - swift: App\n", platform: foreign) })
        #expect(m.hasPrefix("\(dir)/image.yaml:4: contents[0].swift: `swift build` makes programs for the host"), "\(m)")
    }

    @Test func runAsRootCannotRunForAnotherPlatform() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = message({ try plan(dir, "name: t/x\nplatforms: [\(foreign)]\nrunAsRoot: |\n  true\n", platform: foreign) })
        #expect(m.hasPrefix("\(dir)/image.yaml:3: runAsRoot: runs programs of the image, which cannot run here for \(foreign)"), "\(m)")
    }
}

/// How the provenance names a `swift:` item: by its product, as the spec does (its
/// path is the package directory, `.` for the spec's own).
@Suite struct SwiftProvenanceNameTests {
    @Test func aSwiftItemIsNamedByItsProduct() throws {
        let spec = try Spec.parse(text: "name: t/x\ncontents:\n  - swift: App\n  - rootfs\n", path: specPath)
        let swift = ImageBuilder.provenanceItem(spec.contents[0], index: 0, spec: spec)
        #expect(swift.name == "contents[0] swift App" && swift.path == "." && swift.product == "App", "\(swift)")
        let dir = ImageBuilder.provenanceItem(spec.contents[1], index: 1, spec: spec)
        #expect(dir.name == "contents[1] directory rootfs" && dir.product == nil, "\(dir)")
    }
}
