import Foundation
import KilnOCI
import Testing

/// Kiln's canonical JSON bytes do not depend on how Foundation orders or escapes.
@Suite struct CanonicalJSONOrderTests {
    /// Keys that `String` comparison, UTF-16 order or case-folding put elsewhere come
    /// out in UTF-8 byte order, as Go's encoding/json sorts map keys.
    @Test func keysAreInUTF8ByteOrder() throws {
        let keys = ["a", "B", "_", "é", "aa", "a\u{0}", "a\u{301}", "b", "\u{FFFD}", "\u{1F600}", "Z", "a10", "a9", ""]
        let dict = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
        let text = String(decoding: try CanonicalJSON.encode(dict), as: UTF8.self)
        let expectedOrder = keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        #expect(expectedOrder == ["", "B", "Z", "_", "a", "a\u{0}", "a10", "a9", "aa", "a\u{301}", "b", "é", "\u{FFFD}", "\u{1F600}"])
        let expected = "{" + expectedOrder.map { k in
            "\"\(k.replacingOccurrences(of: "\u{0}", with: "\\u0000"))\":\(keys.firstIndex(of: k)!)"
        }.joined(separator: ",") + "}"
        #expect(Array(text.utf8) == Array(expected.utf8))
    }

    /// Re-serialising a document sorts nested objects too and drops whitespace; keys
    /// that a Swift dictionary would merge (NFC and NFD "é") stay apart and ordered.
    @Test func canonicalReserialisesNestedDocuments() throws {
        let doc = "{ \"z\" : [ {\"b\":1, \"a\": {\"y\":true,\"x\":null}} ], \"e\u{301}\": 1, \"\u{e9}\": 2, \"A\":\"\\u0041\\/\" }"
        let out = String(decoding: try CanonicalJSON.canonical(Array(doc.utf8)), as: UTF8.self)
        #expect(Array(out.utf8) == Array("{\"A\":\"A/\",\"e\u{301}\":1,\"z\":[{\"a\":{\"x\":null,\"y\":true},\"b\":1}],\"\u{e9}\":2}".utf8))
    }

    /// Strings are escaped exactly as Kiln's existing image configs have them: only
    /// `"`, `\` and C0 controls; `<`, `>`, `&`, `/`, DEL, U+2028 and other non-ASCII raw.
    @Test func escapesAreStable() throws {
        var s = ""
        for c in 0..<0x20 { s.unicodeScalars.append(Unicode.Scalar(UInt8(c))) }
        s += "\"\\/<>&'\u{7f}\u{2028}\u{2029}é😀"
        let text = String(decoding: try CanonicalJSON.encode([s]), as: UTF8.self)
        #expect(Array(text.utf8) == Array((#"["\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f\"\\/<>&'"# + "\u{7f}\u{2028}\u{2029}é😀\"]").utf8))
        // Escapes in the input (\u sequences, surrogate pairs) come out in the canonical form.
        let input = #"["\u003c\u0026\ud83d\ude00\u00e9\u001F\/"]"#
        #expect(String(decoding: try CanonicalJSON.canonical(Array(input.utf8)), as: UTF8.self) == "[\"<&😀é\\u001f/\"]")
    }

    @Test func numbersAreStable() throws {
        struct Sizes: Encodable { var a: Int64; var b: Int64; var c: UInt64; var d: Int; var e: [Int32] }
        let text = String(decoding: try CanonicalJSON.encode(Sizes(a: .max, b: .min, c: .max, d: 0, e: [-1, 7, 1_000_000])), as: UTF8.self)
        #expect(text == #"{"a":9223372036854775807,"b":-9223372036854775808,"c":18446744073709551615,"d":0,"e":[-1,7,1000000]}"#)
        // Number tokens of a document are kept as written.
        let doc = #"[1.5,-0,1e+300,2E-3,0]"#
        #expect(try CanonicalJSON.canonical(Array(doc.utf8)) == Array(doc.utf8))
    }

    /// The digest of a fixed config is pinned: the canonical bytes never drift.
    @Test func pinnedConfigDigest() throws {
        var c = ContainerConfig()
        c.Cmd = ["/bin/sh", "-c", "a && b > /tmp/x"]
        c.Env = ["PATH=/usr/bin:/bin"]
        c.Labels = ["org.opencontainers.image.title": "hello", "B": "2", "a": "1"]
        let config = ImageConfig(architecture: "amd64", os: "linux", config: c, rootfs: RootFS(diffIDs: []))
        let bytes = try CanonicalJSON.encode(config)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"architecture":"amd64","config":{"Cmd":["/bin/sh","-c","a && b > /tmp/x"],"Env":["PATH=/usr/bin:/bin"],"Labels":{"B":"2","a":"1","org.opencontainers.image.title":"hello"}},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"}}"#)
    }

    @Test func malformedOrAmbiguousDocumentsAreRefused() {
        for bad in ["{\"a\":1,\"a\":2}", "[1,]", "{\"a\" 1}", "01", "\"\\ud800\"", "[\"\u{1}\"]", "nul", "[1] x", "\"\\x\""] {
            #expect(throws: OCIError.self, "\(bad)") { try CanonicalJSON.canonical(Array(bad.utf8)) }
        }
        #expect(throws: OCIError.self) { try CanonicalJSON.canonical([0x22, 0xff, 0x22]) }
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: OCIError.self) { try CanonicalJSON.canonical(Array(deep.utf8)) }
    }
}
