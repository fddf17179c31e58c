import KilnOCI
import Testing
@testable import KilnRegistry

@Suite("RegistryReference")
struct RegistryReferenceTests {
    let digest = "sha256:" + String(repeating: "ab", count: 32)

    @Test func dockerHubDefaults() throws {
        let r = try RegistryReference(parsing: "docker://alpine")
        #expect(r.registry == "docker.io")
        #expect(r.repository == "library/alpine")
        #expect(r.tag == "latest")
        #expect(r.apiHost == "registry-1.docker.io")
        #expect(r.description == "docker://docker.io/library/alpine:latest")
        let u = try RegistryReference(parsing: "docker://user/app:1.0")
        #expect(u.registry == "docker.io" && u.repository == "user/app" && u.tag == "1.0")
        let i = try RegistryReference(parsing: "docker://index.docker.io/busybox")
        #expect(i.registry == "docker.io" && i.repository == "library/busybox")
    }

    @Test func hostsPortsAndDigests() throws {
        let r = try RegistryReference(parsing: "docker://127.0.0.1:5000/a/b-c/d_e:v1.2@\(digest)")
        #expect(r.registry == "127.0.0.1:5000")
        #expect(r.repository == "a/b-c/d_e")
        #expect(r.tag == "v1.2")
        #expect(r.digest?.description == digest)
        #expect(r.manifestReference == digest)
        #expect(r.isLoopback)
        let pinned = try RegistryReference(parsing: "docker://localhost/x@\(digest)")
        #expect(pinned.tag == nil && pinned.registry == "localhost")
        let v6 = try RegistryReference(parsing: "docker://[::1]:5000/img")
        #expect(v6.registry == "[::1]:5000" && v6.hostName == "::1" && v6.isLoopback)
        let q = try RegistryReference(parsing: "quay.io/org/img")
        #expect(q.registry == "quay.io" && !q.isLoopback && q.tag == "latest")
    }

    @Test(arguments: [
        ("docker://Alpine", "lowercase"),
        ("docker://host.io/UPPER/x", "lowercase"),
        ("docker://host.io/a//b", "no repository"),
        ("docker://host.io/a:-bad", "invalid tag"),
        ("docker://host.io/a:" + String(repeating: "t", count: 129), "invalid tag"),
        ("docker://host.io/a@sha256:123", "not a digest"),
        ("docker://host.io/a-/b", "path component"),
        ("docker:alpine", "docker://"),
        ("docker://", "no image name"),
        ("docker://bad_host:xx/a", "invalid registry"),
    ])
    func rejects(_ input: String, _ fragment: String) {
        do {
            _ = try RegistryReference(parsing: input)
            Issue.record("\(input) was accepted")
        } catch {
            #expect("\(error)".contains(fragment), "\(error)")
        }
    }

    @Test func locations() throws {
        guard case .registry(let r) = try ImageLocation(parsing: "docker://h.io/a:t") else { Issue.record("not a registry"); return }
        #expect(r.tag == "t")
        guard case .local = try ImageLocation(parsing: "oci:dir:tag") else { Issue.record("not local"); return }
        #expect(throws: (any Error).self) { try ImageLocation(parsing: "ftp:x") }
        do { _ = try ImageLocation(parsing: "ftp:x") } catch { #expect("\(error)".contains("docker, docker-archive")) }
    }
}

@Suite("PlatformSelection")
struct PlatformSelectionTests {
    func d(_ p: String, _ n: UInt8) throws -> Descriptor {
        Descriptor(mediaType: MediaType.ociManifest, digest: Digest(hex: String(repeating: String(format: "%02x", n), count: 32)),
                   size: 1, platform: try PlatformSelection.parse(p))
    }

    @Test func selects() throws {
        let index = Index(manifests: [try d("linux/amd64", 1), try d("linux/arm64", 2), try d("linux/arm/v7", 3), try d("linux/arm/v6", 4)])
        #expect(try PlatformSelection.select(from: index, platform: .init(architecture: "amd64", os: "linux"), what: "x").size == 1)
        let arm64 = try PlatformSelection.select(from: index, platform: try PlatformSelection.parse("linux/arm64/v8"), what: "x")
        #expect(arm64.digest.hex.hasPrefix("0202"))
        let v6 = try PlatformSelection.select(from: index, platform: try PlatformSelection.parse("linux/arm/v6"), what: "x")
        #expect(v6.digest.hex.hasPrefix("0404"))
        do {
            _ = try PlatformSelection.select(from: index, platform: try PlatformSelection.parse("linux/s390x"), what: "img")
            Issue.record("selected something")
        } catch {
            #expect("\(error)".contains("linux/s390x") && "\(error)".contains("linux/arm/v7"))
        }
        #expect(throws: RegistryError.self) { try PlatformSelection.parse("linux") }
    }
}
