import Testing
import KilnOCI
@testable import KilnRegistry

/// How a download whose bytes do not match its descriptor is told apart from other
/// failures: by type, never by message text.
@Suite struct BlobVerificationTests {
    let expected = Descriptor(mediaType: MediaType.ociLayerGzip, digest: Digest.sha256(Array("layer".utf8)), size: 5)
    let other = Digest.sha256(Array("flipped".utf8))

    @Test func mismatchesAreVerificationFailuresNotTransportRetries() {
        let digest = UnverifiedBlob.digest(other).error(what: "blob x (downloaded twice)", expected: expected)
        #expect(digest == .digestMismatch(what: "blob x (downloaded twice)", expected: expected.digest, actual: other))
        #expect(digest.description == "blob x (downloaded twice): digest mismatch (expected \(expected.digest), got \(other))")
        let size = UnverifiedBlob.size(9).error(what: "blob x", expected: expected)
        #expect(size == .sizeMismatch(what: "blob x", expected: 5, actual: 9))
        for e in [digest, size] {
            #expect(e.isVerificationFailure)
            // Downloaded again by `downloadBlob` itself, not by the transport's retries.
            #expect(!e.isRetryable)
        }
        // A message that mentions a mismatch is not one.
        #expect(!RegistryError.transport("digest mismatch").isVerificationFailure)
        #expect(!RegistryError.http(status: 500, what: "blob", detail: "size mismatch").isVerificationFailure)
    }

    @Test func onlyADecompressorLetsTheRestOfABlobBeHashed() throws {
        let file = try FileBlobSink(path: "/tmp/kiln-test-\(UInt32.random(in: 0...UInt32.max))")
        #expect(!file.failsOnCorruptBytes)
        file.abort()
        let sink = DecompressingBlobSink(layer: expected, diffID: other, path: "/tmp/kiln-test-\(UInt32.random(in: 0...UInt32.max))", limit: 1 << 20)
        #expect(sink.failsOnCorruptBytes)
        sink.abort()
    }
}
