import KilnArchive
import KilnOCI

extension StoredLayer {
    /// Checks what a reader of this layer found once it reached the end of the blob
    /// (`blob` drained here): the blob's size and digest, as the manifest gives them, and
    /// the digest of its uncompressed tar, as the config's diffID gives it. Every reader
    /// that unpacks a stored layer (flattening, runAsRoot snapshots) ends with this.
    public func verify(blob: HashingReader, uncompressed: Digest, what: String) throws {
        do {
            try blob.drain()
        } catch {
            throw ImageError.invalid("\(what): \(error)")
        }
        guard blob.count == descriptor.size else {
            throw ImageError.invalid("\(what): the blob is \(blob.count) bytes, the manifest says \(descriptor.size)")
        }
        guard blob.digest == descriptor.digest else {
            throw ImageError.digestMismatch(what: "\(what): blob", expected: descriptor.digest, actual: blob.digest)
        }
        guard uncompressed == diffID else {
            throw ImageError.digestMismatch(what: "\(what): uncompressed (diffID)", expected: diffID, actual: uncompressed)
        }
    }
}
