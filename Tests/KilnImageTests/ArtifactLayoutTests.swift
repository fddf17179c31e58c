import Foundation
import KilnArchive
@testable import KilnImage
import KilnOCI
import Testing

/// Artifacts in an OCI layout, through the library (`OCISink.attach`, `OCILayout.referrers`).
@Suite struct ArtifactLayoutTests {
    func layoutWithImage() throws -> (String, WrittenImage) {
        let dir = tempPath("artifact")
        let image = ImageIndexTests.image(ImageIndexTests.amd64, marker: "a")
        var tagged = image
        tagged.tag = "v1"
        return (dir, try OCISink(store: DirectoryStore(path: dir)).write(tagged))
    }

    func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for rel in try FileManager.default.subpathsOfDirectory(atPath: dir) {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: dir + "/" + rel, isDirectory: &isDir)
            if !isDir.boolValue { out[rel] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + rel)) }
        }
        return out
    }

    static let sbom = PendingArtifact(artifactType: MediaType.spdxJSON, blobs: [
        .init(mediaType: MediaType.spdxJSON, content: .bytes(Array("{}".utf8)), annotations: [AnnotationKey.title: "sbom.spdx.json"]),
    ])

    @Test func anArtifactWhoseSubjectIsNotInTheLayoutWritesNothing() throws {
        let (dir, _) = try layoutWithImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let before = try files(dir)
        let absent = Descriptor(mediaType: MediaType.ociManifest, digest: .sha256(Array("absent".utf8)), size: 6)
        #expect { _ = try OCISink(store: DirectoryStore(path: dir)).attach(Self.sbom, to: absent, what: "oci:\(dir)") } throws: {
            "\($0)" == "attach: oci:\(dir) has no manifest \(absent.digest) to refer to"
        }
        #expect(try files(dir) == before)
    }

    @Test func referrersAreFoundByTheirSubjectAndType() throws {
        let (dir, written) = try layoutWithImage()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let layout = OCILayout(files: DirectoryBlobs(root: dir), what: "oci:\(dir)")
        let subject = Descriptor(mediaType: MediaType.ociManifest, digest: written.manifestDigest,
                                 size: try DirectoryBlobs(root: dir).size(OCILayout.blobName(written.manifestDigest)))
        let d = try OCISink(store: DirectoryStore(path: dir)).attach(Self.sbom, to: subject, what: "oci:\(dir)")
        #expect(d.artifactType == MediaType.spdxJSON)
        // Reproducible: the descriptor is the same whenever the same artifact is made.
        #expect(try Self.sbom.referrer(subject: subject).descriptor == d)
        #expect(try layout.referrers(of: written.manifestDigest) == [d])
        #expect(try layout.referrers(of: written.manifestDigest, artifactType: "application/other").isEmpty)
        #expect(try layout.referrers(of: d.digest).isEmpty)
        #expect(try layout.entry(tag: nil).digest == written.manifestDigest)
        // A signature of the SBOM, stored with it in one batch, refers to it.
        let sig = PendingArtifact(artifactType: "application/vnd.example.sig", blobs: [.init(mediaType: "application/octet-stream", content: .bytes([1, 2, 3]))])
        let stored = try OCISink(store: DirectoryStore(path: dir)).put(referrers: [try sig.referrer(subject: d)], what: "oci:\(dir)")
        #expect(try layout.referrers(of: d.digest) == stored)
    }

    @Test func mediaTypesFollowRFC6838() {
        for good in ["application/spdx+json", "application/vnd.oci.empty.v1+json", "text/plain", "a/b", "application/vnd.example.sig"] {
            #expect(MediaTypeGrammar.isValid(good), "\(good)")
        }
        for bad in ["spdx", "application/", "/json", "a/b/c", "x y/z", "application/spdx json", "-a/b", "", "a/b;charset=utf-8"] {
            #expect(!MediaTypeGrammar.isValid(bad), "\(bad)")
        }
        #expect(throws: ImageError.self) { try PendingArtifact(artifactType: "nope", blobs: []).validate() }
    }

    @Test func anArtifactWithoutFilesHasTheEmptyBlobAsItsLayer() throws {
        let subject = Descriptor(mediaType: MediaType.ociManifest, digest: .sha256([1]), size: 1)
        let r = try PendingArtifact(artifactType: "application/vnd.example.note", blobs: [], annotations: ["k": "v"]).referrer(subject: subject)
        let m = try CanonicalJSON.decode(Manifest.self, from: r.bytes, what: "artifact")
        #expect(m.layers == [PendingArtifact.emptyDescriptor] && m.config == PendingArtifact.emptyDescriptor)
        #expect(m.subject == subject && m.annotations == ["k": "v"] && m.artifactType == "application/vnd.example.note")
        #expect(PendingArtifact.emptyDescriptor.digest.description == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
    }
}
