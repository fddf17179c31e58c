import Foundation
import KilnArchive
import KilnOCI
import Testing
@testable import KilnRegistry

@Suite("Upload resumption and compressed twins")
struct UploadResumeTests {
    /// `Range: 0-N` names the last byte received; distribution reports an empty session as `0-0`.
    @Test func resumeOffsets() {
        #expect(RegistryClient.resumeOffset("0-524287", acknowledged: 262144) == 524288)
        #expect(RegistryClient.resumeOffset("bytes=0-99", acknowledged: 0) == 100)
        #expect(RegistryClient.resumeOffset("0-0", acknowledged: 0) == 0)
        #expect(RegistryClient.resumeOffset("0-0", acknowledged: 1) == 1)
        #expect(RegistryClient.resumeOffset(nil, acknowledged: 0) == nil)
        #expect(RegistryClient.resumeOffset("5-9", acknowledged: 0) == nil)
        #expect(RegistryClient.resumeOffset("junk", acknowledged: 0) == nil)
    }

    @Test func twinsAreFoundByDiffIDAndEncoderAndNeedTheirBlob() throws {
        let root = NSTemporaryDirectory() + "kiln-twins-\(UInt32.random(in: 0...UInt32.max))"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let twins = try CompressedTwins(cacheRoot: root)
        let diffID = Digest.sha256(Array("plain".utf8))
        let blob: [UInt8] = Array("compressed bytes".utf8)
        let d = Descriptor(mediaType: MediaType.ociLayerGzip, digest: .sha256(blob), size: Int64(blob.count))
        #expect(twins.lookup(diffID: diffID, compression: .gzip) == nil)
        let tmp = twins.temporaryBlob()
        try FileSystem.writeAtomically(blob, to: tmp)
        let path = try twins.record(diffID: diffID, compression: .gzip, descriptor: d, temporary: tmp)
        #expect(twins.lookup(diffID: diffID, compression: .gzip)?.descriptor == d)
        #expect(twins.lookup(diffID: diffID, compression: .gzip)?.path == path)
        #expect(twins.lookup(diffID: diffID, compression: .zstd) == nil)
        // An entry whose blob went away is not used.
        unlink(path)
        #expect(twins.lookup(diffID: diffID, compression: .gzip) == nil)
    }
}
