import Foundation
import Testing
@testable import KilnBuild
import KilnArchive
import KilnImage
import KilnOCI
#if canImport(Glibc)
import Glibc
#endif

/// The provenance documents kept in the layer cache (LayerCache+Provenance.swift): stored
/// whole, read back, nil when absent, an error when not a document, trimmed by `prune`
/// by age like the other entries.
@Suite struct ProvenanceCacheUnitTests {
    @Test func storeReadAndPrune() throws {
        let root = NSTemporaryDirectory() + "kiln-prov-cache-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileSystem.removeTree(root) }
        let cache = try LayerCache(root: root)
        let config = Digest.sha256(Array("config".utf8)), other = Digest.sha256(Array("other".utf8))
        #expect(try LayerCache.storedProvenance(root: root, configDigest: config) == nil)
        let doc = Provenance(spec: "image.yaml", manifestDigest: nil, layers: [
            Provenance.Layer(source: .contents, files: 1, bytes: 3,
                             items: [Provenance.Item(index: 0, kind: "directory", path: "app", target: nil, location: "image.yaml:3", files: 1, bytes: 3)]),
        ])
        try cache.storeProvenance(doc, configDigest: config)
        try cache.storeProvenance(doc, configDigest: other)
        #expect(try LayerCache.storedProvenance(root: root, configDigest: config) == doc)
        #expect(try FileSystem.listDirectory(root + "/tmp").isEmpty, "no temporary file left")

        // Not a document: an error naming the file, for the caller to ignore with a notice.
        try FileSystem.writeAtomically(Array("[1, 2]".utf8), to: LayerCache.provenancePath(root: root, configDigest: other))
        #expect(throws: (any Error).self) { try LayerCache.storedProvenance(root: root, configDigest: other) }

        // An old document goes with `prune`, a fresh one stays.
        var old = [timeval(tv_sec: 1_000_000, tv_usec: 0), timeval(tv_sec: 1_000_000, tv_usec: 0)]
        utimes(LayerCache.provenancePath(root: root, configDigest: other), &old)
        try cache.prune(olderThan: 3600)
        #expect(access(LayerCache.provenancePath(root: root, configDigest: other), F_OK) != 0)
        #expect(try LayerCache.storedProvenance(root: root, configDigest: config) == doc)
    }
}
