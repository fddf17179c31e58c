import Foundation
import Testing
import KilnOCI
@testable import KilnRegistry

/// The cache repo's artifact manifests: what Kiln writes reads back as the same layer;
/// anything else under a `kiln-cache-` tag is a miss, never a layer.
@Suite struct CacheRepoManifestTests {
    let key = String(repeating: "ab", count: 32)
    let blob = Digest.sha256(Array("layer".utf8))
    let diffID = Digest.sha256(Array("tar".utf8))

    private func repo() throws -> CacheRepo {
        try CacheRepo(reference: RegistryReference(parsing: "docker://127.0.0.1:1/ci/cache"), options: RegistryOptions())
    }

    private func entry() -> CacheRepo.Entry {
        CacheRepo.Entry(key: key, descriptor: Descriptor(mediaType: MediaType.ociLayerGzip, digest: blob, size: 5),
                        diffID: diffID, tarsum: nil, uncompressedSize: 2048, path: "/nonexistent")
    }

    @Test func whatIsWrittenReadsBack() throws {
        let r = try repo()
        defer { r.remove() }
        let bytes = try CacheRepo.manifest(for: entry())
        let m = try CanonicalJSON.decode(Manifest.self, from: bytes, what: "m")
        #expect(m.artifactType == CacheRepo.artifactType)
        #expect(m.config.digest.description == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        #expect(CacheRepo.tag(for: key).count <= 128)
        let hit = try #require(r.hit(fromManifest: bytes, key: key))
        #expect(hit.layer.descriptor == Descriptor(mediaType: MediaType.ociLayerGzip, digest: blob, size: 5))
        #expect(hit.layer.descriptor.annotations == nil)
        #expect(hit.layer.diffID == diffID)
        #expect(hit.uncompressedSize == 2048)
        #expect(hit.layer.registry == "127.0.0.1:1" && hit.layer.repository == "ci/cache")
    }

    @Test func anythingElseIsAMiss() throws {
        let r = try repo()
        defer { r.remove() }
        let good = String(decoding: try CacheRepo.manifest(for: entry()), as: UTF8.self)
        // Another key's manifest under this tag.
        #expect(r.hit(fromManifest: Array(good.utf8), key: String(repeating: "cd", count: 32)) == nil)
        // A malformed diffID, another artifact type, an image manifest, not JSON.
        let badDiff = good.replacingOccurrences(of: diffID.description, with: "sha256:xyz")
        #expect(r.hit(fromManifest: Array(badDiff.utf8), key: key) == nil)
        let otherType = good.replacingOccurrences(of: CacheRepo.artifactType, with: "application/vnd.example+json")
        #expect(r.hit(fromManifest: Array(otherType.utf8), key: key) == nil)
        let image = Manifest(config: Descriptor(mediaType: MediaType.ociConfig, digest: blob, size: 5),
                             layers: [Descriptor(mediaType: MediaType.ociLayerGzip, digest: blob, size: 5)])
        #expect(r.hit(fromManifest: try CanonicalJSON.encode(image), key: key) == nil)
        #expect(r.hit(fromManifest: Array("{".utf8), key: key) == nil)
    }
}
