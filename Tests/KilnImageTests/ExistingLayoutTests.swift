import Foundation
import KilnArchive
@testable import KilnImage
import KilnOCI
import Testing

/// A layer from bytes in memory that can fail after writing some of them.
private struct BytesProducer: LayerProducer {
    struct Failed: Error {}
    var tar: [UInt8]
    var failAfter: Int?
    var uncompressedSize: Int64 { Int64(tar.count) }
    func writeTar(to out: ByteWriter, tarsum: TarsumAccumulator?) throws {
        let n = failAfter ?? tar.count
        try tar[..<n].withUnsafeBytes { try out.write($0) }
        if failAfter != nil { throw Failed() }
        try out.finish()
    }
}

private func layer(_ name: String, bytes: Int, seed: UInt8) -> [UInt8] {
    var l = LayerTar()
    l.file(name, String(decoding: (0..<bytes).map { UInt8(97 + (Int($0) * 7 + Int(seed)) % 26) }, as: UTF8.self))
    return l.bytes
}

private func image(_ tag: String, _ layers: [LayerInput]) -> PendingImage {
    PendingImage(name: "kiln-test/layout", tag: tag,
                 config: ImageConfig(architecture: "amd64", os: "linux", config: nil, rootfs: RootFS(diffIDs: [])),
                 layers: layers)
}

/// Every file below `dir` (relative path → bytes; directories as nil).
private func snapshot(_ dir: String) throws -> [String: Data?] {
    var out: [String: Data?] = [:]
    let e = FileManager.default.enumerator(atPath: dir)!
    while let rel = e.nextObject() as? String {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir)
        out[rel] = isDir.boolValue ? nil : try Data(contentsOf: URL(fileURLWithPath: dir + "/" + rel))
    }
    return out
}

/// A failed write into an existing OCI layout leaves it exactly as it was.
@Suite struct ExistingLayoutTests {
    let one = layer("one", bytes: 300_000, seed: 1)
    let two = layer("two", bytes: 200_000, seed: 2)
    let three = layer("three", bytes: 400_000, seed: 3)

    @Test func aLayerFailingMidwayLeavesTheLayoutAsItWas() throws {
        let dir = tempPath("layout")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try OCISink(store: DirectoryStore(path: dir)).write(image("old", [.produced(BytesProducer(tar: one), .gzip)]))
        let before = try snapshot(dir)
        #expect(before.keys.contains("index.json") && before.count == 7, "\(before.keys.sorted())")

        // A blob the layout already has, a new one, then a layer that fails after 100 kB.
        #expect(throws: BytesProducer.Failed.self) {
            _ = try OCISink(store: DirectoryStore(path: dir)).write(image("new", [
                .produced(BytesProducer(tar: one), .gzip),
                .produced(BytesProducer(tar: two), .zstd),
                .produced(BytesProducer(tar: three, failAfter: 100_000), .gzip),
            ]))
        }
        #expect(try snapshot(dir) == before)

        // A stored layer whose bytes do not match its digest is caught after it was written.
        var tampered = MemoryLayer(tar: two, compression: .gzip)
        tampered.blob[tampered.blob.count / 2] ^= 0x20
        #expect { _ = try OCISink(store: DirectoryStore(path: dir)).write(image("new", [.stored(tampered)])) } throws: {
            "\($0)".contains("digest mismatch")
        }
        #expect(try snapshot(dir) == before)

        // And a write that succeeds adds its tag beside the old one.
        _ = try OCISink(store: DirectoryStore(path: dir)).write(image("new", [.produced(BytesProducer(tar: two), .zstd)]))
        let index = try CanonicalJSON.decode(Index.self, from: Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/index.json"))), what: "index")
        #expect(index.manifests.compactMap { $0.annotations?[AnnotationKey.refName] }.sorted() == ["new", "old"])
    }

    @Test func anEmptyDirectoryIsLeftEmpty() throws {
        let dir = tempPath("empty")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: BytesProducer.Failed.self) {
            _ = try OCISink(store: DirectoryStore(path: dir)).write(image("x", [
                .produced(BytesProducer(tar: one), .none), .produced(BytesProducer(tar: two, failAfter: 1000), .none),
            ]))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [])
    }

    @Test func aNewLayoutIsNeverHalfWritten() throws {
        let parent = tempPath("parent")
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: parent) }
        #expect(throws: BytesProducer.Failed.self) {
            _ = try OCISink(store: DirectoryStore(path: parent + "/new")).write(image("x", [.produced(BytesProducer(tar: one, failAfter: 5000), .gzip)]))
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent) == [])
    }
}
