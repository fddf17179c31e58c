import Foundation
import Testing
@testable import KilnDebian

@Suite struct ReleaseTests {
    static let sample = """
    Origin: Debian
    Label: Debian
    Suite: stable
    Version: 12.5
    Codename: bookworm
    Date: Sat, 10 Feb 2024 10:05:37 UTC
    Valid-Until: Sat, 17 Feb 2024 10:05:37 +0000
    Acquire-By-Hash: yes
    No-Support-for-Architecture-all: Packages
    Architectures: all amd64 arm64
    Components: main contrib
    Description: Debian 12.5 Released 10 February 2024
    MD5Sum:
     0ed6d4c8891eb86358b94bb35d9e4da4  1484322 contrib/Contents-all
    SHA256:
     3957f28db16e3f28c7b34ae84f1c929c567de6970f3f1b95dac9b498dd80fe63   738242 contrib/Contents-all
     b2c3bd8d8ea5ac3ba9d7c3dcf2d6b0f5fd0b8c7b3a6e1e7f4f2d3f1b0a9c8d7e    57319 main/binary-amd64/Packages.gz

    """

    @Test func parsesFieldsAndHashes() throws {
        let r = try ReleaseFile.parse(Self.sample, origin: "t")
        #expect(r["Codename"] == "bookworm" && r["codename"] == "bookworm")
        #expect(r.fields["Suite"] == "stable")
        #expect(r.date == "Sat, 10 Feb 2024 10:05:37 UTC")
        #expect(r.validUntil == "Sat, 17 Feb 2024 10:05:37 +0000")
        #expect(r.acquireByHash)
        #expect(r.sha256.count == 2)
        #expect(r.sha256["main/binary-amd64/Packages.gz"] ==
                ReleaseFile.Entry(size: 57319, sha256: "b2c3bd8d8ea5ac3ba9d7c3dcf2d6b0f5fd0b8c7b3a6e1e7f4f2d3f1b0a9c8d7e"))
        #expect(r.digest.hasPrefix("sha256:") && r.digest.count == 71)
    }

    @Test func badHashLineNamesItsLine() {
        let text = "Suite: x\nSHA256:\n 1234 10 main/binary-amd64/Packages\n"
        do {
            _ = try ReleaseFile.parse(text, origin: "http://x/dists/x/InRelease")
            Issue.record("accepted a short hash")
        } catch {
            #expect("\(error)".hasPrefix("http://x/dists/x/InRelease:3: "))
        }
        #expect(throws: RepositoryError.self) { try ReleaseFile.parse("", origin: "t") }
    }

    @Test func dates() {
        #expect(ReleaseFile.parseDate("Mon, 01 Jan 2024 00:00:00 UTC") == 1_704_067_200)
        #expect(ReleaseFile.parseDate("01 Jan 2024 00:00:00 GMT") == 1_704_067_200)
        #expect(ReleaseFile.parseDate("Mon, 01 Jan 2024 01:00:00 +0100") == 1_704_067_200)
        #expect(ReleaseFile.parseDate("Sun, 31 Dec 2023 23:00:00 -0100") == 1_704_067_200)
        #expect(ReleaseFile.parseDate("2024-01-01") == nil)
        #expect(ReleaseFile.parseDate("Mon, 01 Foo 2024 00:00:00 UTC") == nil)
    }

    // MARK: Signatures, against the repository scripts/make-test-apt-repo signs

    static let tools = TestAptRepo.canBuild

    func inRelease(_ repo: TestAptRepo) throws -> [UInt8] {
        Array(try Data(contentsOf: URL(fileURLWithPath: repo.root + "/dists/kiln/InRelease")))
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func goodSignaturePasses() throws {
        let repo = try TestAptRepo.shared()
        let data = try inRelease(repo)
        for keyring in [repo.keyring, repo.armoredKeyring] {
            let text = try GPGVerifier.verifyInRelease(data, keyrings: [keyring], origin: "InRelease")
            #expect(text.hasPrefix("Origin: Kiln\n"))
            #expect(!text.contains("PGP"))
            let r = try ReleaseFile.parse(text, origin: "InRelease")
            #expect(r["Suite"] == "kiln")
            #expect(r.sha256["main/binary-amd64/Packages.gz"] != nil)
            #expect(r.sha256["main/binary-all/Packages.xz"] != nil)
        }
        // A wrong key first does not hide the right one after it.
        _ = try GPGVerifier.verifyInRelease(data, keyrings: [repo.otherKeyring, repo.keyring], origin: "InRelease")
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func wrongKeyringIsRefused() throws {
        let repo = try TestAptRepo.shared()
        #expect(throws: RepositoryError.self) {
            try GPGVerifier.verifyInRelease(try inRelease(repo), keyrings: [repo.otherKeyring], origin: "InRelease")
        }
        #expect(throws: RepositoryError.self) {
            try GPGVerifier.verifyInRelease(try inRelease(repo), keyrings: [], origin: "InRelease")
        }
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func tamperedInReleaseIsRefused() throws {
        let repo = try TestAptRepo.shared()
        var text = String(decoding: try inRelease(repo), as: UTF8.self)
        // Change one hex digit of the first SHA256 line.
        let line = try #require(text.range(of: "\n SHA256:") ?? text.range(of: "SHA256:\n "))
        let at = text.index(line.upperBound, offsetBy: 2)
        let old = text[at]
        text.replaceSubrange(at...at, with: old == "0" ? "1" : "0")
        do {
            _ = try GPGVerifier.verifyInRelease(Array(text.utf8), keyrings: [repo.keyring], origin: "InRelease")
            Issue.record("a tampered InRelease was accepted")
        } catch let e as RepositoryError {
            guard case .badSignature = e else { Issue.record("unexpected \(e)"); return }
            #expect("\(e)".contains("InRelease"))
        }
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func textOutsideTheSignatureIsRefused() throws {
        let repo = try TestAptRepo.shared()
        let data = try inRelease(repo)
        let extra = Array("SHA256:\n 0000000000000000000000000000000000000000000000000000000000000000 1 main/evil\n".utf8)
        for bad in [data + extra, extra + [0x0a] + data] {
            #expect(throws: RepositoryError.self) {
                try GPGVerifier.verifyInRelease(bad, keyrings: [repo.keyring], origin: "InRelease")
            }
        }
        // Blank lines around are harmless.
        _ = try GPGVerifier.verifyInRelease([0x0a] + data + [0x0a, 0x0a], keyrings: [repo.keyring], origin: "InRelease")
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func detachedSignature() throws {
        let repo = try TestAptRepo.shared()
        let release = Array(try Data(contentsOf: URL(fileURLWithPath: repo.root + "/dists/kiln/Release")))
        let sig = Array(try Data(contentsOf: URL(fileURLWithPath: repo.root + "/dists/kiln/Release.gpg")))
        let text = try GPGVerifier.verifyDetached(release: release, signature: sig, keyrings: [repo.armoredKeyring], origin: "Release")
        #expect(text == String(decoding: release, as: UTF8.self))
        var tampered = release
        tampered[10] ^= 1
        #expect(throws: RepositoryError.self) {
            try GPGVerifier.verifyDetached(release: tampered, signature: sig, keyrings: [repo.keyring], origin: "Release")
        }
        #expect(throws: RepositoryError.self) {
            try GPGVerifier.verifyDetached(release: release, signature: sig, keyrings: [repo.otherKeyring], origin: "Release")
        }
    }

    // MARK: AptFetcher.release

    func fetcher(now: Int64? = nil) throws -> AptFetcher {
        let store = try PackageCacheStore(root: try TestAptRepo.makeTempDirectory("kiln-apt-store"))
        if let now { return AptFetcher(store: store, now: { now }) }
        return AptFetcher(store: store)
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func releaseOverFileVerifies() async throws {
        let repo = try TestAptRepo.shared()
        let f = try fetcher()
        let source = AptSource(uri: repo.fileURI, suite: "kiln", components: ["main"], signedBy: [repo.keyring], origin: "test")
        let v = try await f.release(of: source, index: 2)
        #expect(v.index == 2)
        #expect(v.release["Codename"] == "kiln")
        #expect(v.release.digest == "sha256:" + (try sha256File(repo.root + "/dists/kiln/InRelease")))

        let wrong = AptSource(uri: repo.fileURI, suite: "kiln", components: ["main"], signedBy: [repo.otherKeyring], origin: "test")
        await #expect(throws: RepositoryError.self) { try await f.release(of: wrong, index: 0) }
        let missing = AptSource(uri: repo.fileURI, suite: "nope", components: ["main"], signedBy: [repo.keyring], origin: "test")
        await #expect(throws: RepositoryError.self) { try await f.release(of: missing, index: 0) }
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func inlineSignedByVerifies() async throws {
        let repo = try TestAptRepo.shared()
        let armored = try String(contentsOfFile: repo.armoredKeyring, encoding: .utf8)
        let block = armored.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? " ." : " " + $0 }.joined(separator: "\n")
        let text = "Types: deb\nURIs: \(repo.fileURI)\nSuites: kiln\nComponents: main\nSigned-By:\n\(block)\n"
        let source = try #require(try AptSources.parseDeb822(text, file: "inline.sources").first)
        let f = try fetcher()
        _ = try await f.release(of: source, index: 0)
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func detachedFallbackAndUnsigned() async throws {
        let repo = try TestAptRepo.shared()
        let copy = try TestAptRepo.makeTempDirectory("kiln-apt-copy")
        let dists = copy + "/dists/kiln"
        try FileManager.default.createDirectory(atPath: dists, withIntermediateDirectories: true)
        for name in ["Release", "Release.gpg"] {
            try FileManager.default.copyItem(atPath: repo.root + "/dists/kiln/" + name, toPath: dists + "/" + name)
        }
        let f = try fetcher()
        let source = AptSource(uri: "file://" + copy, suite: "kiln", components: ["main"], signedBy: [repo.keyring], origin: "test")
        let v = try await f.release(of: source, index: 0)
        #expect(v.release.digest == "sha256:" + (try sha256File(dists + "/Release")))

        try FileManager.default.removeItem(atPath: dists + "/Release.gpg")
        do {
            _ = try await f.release(of: source, index: 0)
            Issue.record("an unsigned repository was accepted")
        } catch let e as RepositoryError {
            guard case .unsigned = e else { Issue.record("unexpected \(e)"); return }
        }
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func expiredReleaseIsRefused() async throws {
        // Valid until 2024-01-02, a day after the script's fixed Date.
        let repo = try TestAptRepo.make(environment: ["VALID_UNTIL": "1704153600"])
        let source = AptSource(uri: repo.fileURI, suite: "kiln", components: ["main"], signedBy: [repo.keyring], origin: "test")
        let f = try fetcher()
        do {
            _ = try await f.release(of: source, index: 0)
            Issue.record("an expired Release was accepted")
        } catch let e as RepositoryError {
            guard case .expired(_, let until) = e else { Issue.record("unexpected \(e)"); return }
            #expect(until == "Tue, 02 Jan 2024 00:00:00 UTC")
        }
        try await f.shutdown()
        // The same Release an hour before it expires is fine.
        let early = try fetcher(now: 1_704_150_000)
        let v = try await early.release(of: source, index: 0)
        #expect(v.release.validUntil == "Tue, 02 Jan 2024 00:00:00 UTC")
        try await early.shutdown()
    }
}

func sha256File(_ path: String) throws -> String {
    let r = try TestAptRepo.run("/usr/bin/sha256sum", [path])
    return String(r.stdout.prefix(64))
}
