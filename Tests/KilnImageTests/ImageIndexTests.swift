import Foundation
import KilnArchive
@testable import KilnImage
import KilnOCI
import Testing

/// Runs a tool, returning its stdout; throws with its stderr when it fails.
@discardableResult
private func tool(_ name: String, _ args: [String]) throws -> String {
    let dir = tempPath("tool")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    FileManager.default.createFile(atPath: dir + "/out", contents: nil)
    FileManager.default.createFile(atPath: dir + "/err", contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [name] + args
    p.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
    p.standardError = FileHandle(forWritingAtPath: dir + "/err")
    try p.run()
    p.waitUntilExit()
    let out = (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? ""
    guard p.terminationStatus == 0 else {
        struct Failed: Error, CustomStringConvertible { var description: String }
        throw Failed(description: "\(name) \(args.joined(separator: " ")): \((try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? "")")
    }
    return out
}

private let hasSkopeoAndUmoci = FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/umoci")

/// A layer that fails after writing part of its tar.
private struct FailingProducer: LayerProducer {
    struct Failed: Error {}
    var uncompressedSize: Int64 { 10 }
    func writeTar(to out: ByteWriter, tarsum: TarsumAccumulator?) throws {
        try out.write([UInt8](repeating: 0, count: 700))
        throw Failed()
    }
}

/// Writing a multi-platform image (an OCI image index) into an OCI layout or archive.
@Suite struct ImageIndexTests {
    static let amd64 = Platform(architecture: "amd64", os: "linux")
    static let arm64 = Platform(architecture: "arm64", os: "linux", variant: "v8")

    static func image(_ p: Platform, marker: String, layer: LayerInput? = nil) -> PendingImage {
        var tar = LayerTar()
        tar.dir("etc")
        tar.file("etc/marker", marker + "\n")
        return PendingImage(name: "kiln-test/multi", tag: nil,
                            config: ImageConfig(architecture: p.architecture, os: p.os, variant: p.variant,
                                                config: nil, rootfs: RootFS(diffIDs: [])),
                            layers: [layer ?? .stored(MemoryLayer(tar: tar.bytes, compression: .gzip))])
    }

    static func index(tag: String? = "v1") -> PendingIndex {
        PendingIndex(name: "kiln-test/multi", tag: tag, entries: [
            .init(platform: amd64, image: image(amd64, marker: "amd64")),
            .init(platform: arm64, image: image(arm64, marker: "arm64")),
        ])
    }

    func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    @Test func anIndexInALayoutListsEachPlatformInOrderReproducibly() throws {
        let a = tempPath("index-a"), b = tempPath("index-b"), archive = tempPath("index") + ".tar"
        defer { for p in [a, b, archive] { try? FileManager.default.removeItem(atPath: p) } }
        let written = try OCISink(store: DirectoryStore(path: a)).write(Self.index())
        #expect(written.tag == "v1" && written.reference == "kiln-test/multi:v1")
        #expect(written.manifests.map(\.platform) == [Self.amd64, Self.arm64])

        let top = try CanonicalJSON.decode(Index.self, from: try read(a + "/index.json"), what: "index.json")
        #expect(top.manifests.count == 1)
        #expect(top.manifests[0].mediaType == MediaType.ociIndex)
        #expect(top.manifests[0].digest == written.indexDigest && top.manifests[0].size == written.indexSize)
        #expect(top.manifests[0].annotations == [AnnotationKey.refName: "v1"])

        let blob = try read(a + "/blobs/sha256/" + written.indexDigest.hex)
        let index = try CanonicalJSON.decode(Index.self, from: blob, what: "index")
        #expect(blob == (try CanonicalJSON.encode(index)))
        #expect(index.mediaType == MediaType.ociIndex)
        #expect(index.manifests.map(\.platform) == [Self.amd64, Self.arm64])
        #expect(index.manifests.map(\.digest) == written.manifests.map(\.image.manifestDigest))
        #expect(index.manifests.map(\.size) == written.manifests.map(\.size))
        #expect(String(decoding: blob, as: UTF8.self).contains(#""platform":{"architecture":"arm64","os":"linux","variant":"v8"}"#))

        // The same inputs give the same bytes, in a directory or an archive.
        #expect(try OCISink(store: DirectoryStore(path: b)).write(Self.index()).indexDigest == written.indexDigest)
        #expect(try OCISink(store: TarStore(path: archive)).write(Self.index()).indexDigest == written.indexDigest)

        // Without a tag, one is derived from the index digest.
        let c = tempPath("index-c")
        defer { try? FileManager.default.removeItem(atPath: c) }
        let untagged = try OCISink(store: DirectoryStore(path: c)).write(Self.index(tag: nil))
        #expect(untagged.tag == String(untagged.indexDigest.hex.prefix(32)))
    }

    @Test(.enabled(if: hasSkopeoAndUmoci, "needs skopeo and umoci"))
    func skopeoAndUmociReadEachPlatform() throws {
        let dir = tempPath("index-tools"), archive = tempPath("index-tools") + ".tar"
        defer { for p in [dir, archive] { try? FileManager.default.removeItem(atPath: p) } }
        let written = try OCISink(store: DirectoryStore(path: dir)).write(Self.index())
        _ = try OCISink(store: TarStore(path: archive)).write(Self.index())
        let raw = try tool("skopeo", ["inspect", "--raw", "oci:\(dir):v1"])
        #expect(Array(raw.utf8) == (try read(dir + "/blobs/sha256/" + written.indexDigest.hex)))
        #expect(try tool("skopeo", ["inspect", "--raw", "oci-archive:\(archive):v1"]) == raw)

        for (i, (arch, variant)) in [("amd64", nil), ("arm64", "v8")].enumerated() {
            let out = tempPath("index-\(arch)")
            defer { try? FileManager.default.removeItem(atPath: out) }
            try tool("skopeo", ["copy", "-q", "--override-os", "linux", "--override-arch", arch]
                     + (variant.map { ["--override-variant", $0] } ?? []) + ["oci:\(dir):v1", "oci:\(out):one"])
            let copied = try CanonicalJSON.decode(Index.self, from: try read(out + "/index.json"), what: "index.json")
            #expect(copied.manifests.first?.digest == written.manifests[i].image.manifestDigest)
            try tool("umoci", ["unpack", "--rootless", "--image", "\(out):one", out + "/bundle"])
            #expect(try String(contentsOfFile: out + "/bundle/rootfs/etc/marker", encoding: .utf8) == arch + "\n")
        }
    }

    @Test func aFailingImageLeavesAnExistingLayoutAsItWas() throws {
        let dir = tempPath("index-fail")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try OCISink(store: DirectoryStore(path: dir)).write(Self.index())
        let before = try FileManager.default.subpathsOfDirectory(atPath: dir).sorted()
        let indexJSON = try read(dir + "/index.json")
        var bad = Self.index(tag: "v2")
        bad.entries[1].image = Self.image(Self.arm64, marker: "x", layer: .produced(FailingProducer(), .gzip))
        #expect(throws: FailingProducer.Failed.self) { _ = try OCISink(store: DirectoryStore(path: dir)).write(bad) }
        #expect(try FileManager.default.subpathsOfDirectory(atPath: dir).sorted() == before)
        #expect(try read(dir + "/index.json") == indexJSON)
    }

    @Test func badIndexesAreRefusedBeforeAnythingIsWritten() throws {
        let dir = tempPath("index-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var twice = Self.index()
        twice.entries[1] = twice.entries[0]
        #expect { _ = try OCISink(store: DirectoryStore(path: dir)).write(twice) } throws: { "\($0)".contains("linux/amd64 is listed twice") }
        var wrong = Self.index()
        wrong.entries[1].image = Self.image(Self.amd64, marker: "x")
        #expect { _ = try OCISink(store: DirectoryStore(path: dir)).write(wrong) } throws: {
            "\($0)".contains("listed for linux/arm64/v8 has a config for linux/amd64")
        }
        #expect { _ = try OCISink(store: DirectoryStore(path: dir)).write(PendingIndex(name: "x", tag: nil, entries: [])) } throws: {
            "\($0)".contains("at least one image")
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }
}
