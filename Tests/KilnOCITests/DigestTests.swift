import Testing
@testable import KilnOCI

@Suite struct DigestTests {
    @Test func sha256OfEmptyTarIsTheKnownDiffID() {
        // 1024 zero bytes: the empty layer every tool agrees on (formats.md).
        let d = Digest.sha256([UInt8](repeating: 0, count: 1024))
        #expect(d.description == "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")
    }

    @Test func parsesAndRejects() throws {
        let s = "sha256:" + String(repeating: "a", count: 64)
        #expect(try Digest(parsing: s).description == s)
        #expect(throws: OCIError.self) { try Digest(parsing: "sha256:ABC") }
        #expect(throws: OCIError.self) { try Digest(parsing: "md5:" + String(repeating: "a", count: 32)) }
        #expect(throws: OCIError.self) { try Digest(parsing: "sha256:" + String(repeating: "A", count: 64)) }
    }

    @Test func chainIDsFollowTheSpec() {
        let a = Digest.sha256(Array("a".utf8)), b = Digest.sha256(Array("b".utf8))
        let chain = Digest.chainIDs([a, b])
        #expect(chain[0] == a)
        #expect(chain[1] == Digest.sha256(Array("\(a) \(b)".utf8)))
    }

    @Test func incrementalHashEqualsOneShot() {
        var h = SHA256Hasher()
        h.update(Array("hello ".utf8))
        h.update(Array("world".utf8))
        #expect(h.finalize() == Digest.sha256(Array("hello world".utf8)))
        #expect(h.count == 11)
    }
}

@Suite struct ReferenceGrammarTests {
    @Test(arguments: ["example/hello", "library/ubuntu", "localhost:5000/a/b", "a-b__c/d.e", "registry.example.com/x", "127.0.0.1:5000/x"])
    func validNames(_ n: String) throws {
        try ReferenceGrammar.validateName(n)
    }

    @Test(arguments: ["example/Hello", "a//b", "-a", "a-", "a..b", "a___b", "", "a/", "a b"])
    func invalidNames(_ n: String) {
        #expect(throws: OCIError.self) { try ReferenceGrammar.validateName(n) }
    }

    @Test func tags() throws {
        try ReferenceGrammar.validateTag("v1.0_rc-2")
        try ReferenceGrammar.validateTag(String(repeating: "a", count: 128))
        #expect(throws: OCIError.self) { try ReferenceGrammar.validateTag(".x") }
        #expect(throws: OCIError.self) { try ReferenceGrammar.validateTag("-x") }
        #expect(throws: OCIError.self) { try ReferenceGrammar.validateTag(String(repeating: "a", count: 129)) }
        #expect(throws: OCIError.self) { try ReferenceGrammar.validateTag("a:b") }
    }
}

@Suite struct CanonicalJSONTests {
    @Test func sortedCompactAndStable() throws {
        var c = ContainerConfig()
        c.Env = ["B=2", "A=1"]
        c.Cmd = ["/bin/sh"]
        c.ExposedPorts = ["80/tcp": EmptyObject()]
        let config = ImageConfig(architecture: "amd64", os: "linux", config: c, rootfs: RootFS(diffIDs: []))
        let bytes = try CanonicalJSON.encode(config)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text == #"{"architecture":"amd64","config":{"Cmd":["/bin/sh"],"Env":["B=2","A=1"],"ExposedPorts":{"80/tcp":{}}},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#)
        let back = try CanonicalJSON.decode(ImageConfig.self, from: bytes, what: "config")
        #expect(try CanonicalJSON.encode(back) == bytes)
    }

    @Test func malformedDocumentsNameWhatIsWrong() {
        #expect(throws: OCIError.self) { try CanonicalJSON.decode(Manifest.self, from: Array("{}".utf8), what: "manifest") }
    }
}
