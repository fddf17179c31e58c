#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// The compressed twins of uncompressed layers, kept in the Kiln cache so that pushing
/// the same uncompressed layer again (a docker-archive pushed twice, say) compresses
/// nothing: an uncompressed layer's diffID, a compression and the compressor's
/// identity (`Compression.encoderIdentity`: library version and settings, so a new
/// libdeflate never serves bytes it would not produce) name a compressed descriptor
/// and its blob.
///
/// Layout under the cache root (beside `LayerCache`'s own directories, which it does
/// not touch): `compressed/entries/<key>.json` (the descriptor) and
/// `compressed/blobs/<hex>` (the blob). Both are written to a temporary name and
/// renamed, so concurrent pushes and interrupted ones never leave a half entry; an
/// entry whose blob is missing or of the wrong size is ignored. The blob's bytes are
/// checked against its digest again whenever it is uploaded (`pushBlob`).
public struct CompressedTwins: Sendable {
    public let directory: String

    /// The twins under `cacheRoot` (the layer cache root: `--cache-dir`, or
    /// `LayerCache.defaultRoot`), created if needed.
    public init(cacheRoot: String) throws {
        directory = cacheRoot + "/compressed"
        for d in ["/entries", "/blobs", "/tmp"] {
            do { try FileSystem.makeDirectories(directory + d) } catch {
                throw RegistryError.transport("cache \(cacheRoot): cannot create \(directory + d): \(error)")
            }
        }
    }

    struct Entry: Codable {
        var diffID: Digest
        var encoder: String
        var descriptor: Descriptor
    }

    private func key(_ diffID: Digest, _ compression: Compression) -> String {
        Digest.sha256(Array("\(diffID) \(compression.encoderIdentity)".utf8)).hex
    }

    private func blobPath(_ d: Digest) -> String { directory + "/blobs/" + d.hex }

    /// The compressed twin of the layer with `diffID`, if one was recorded and its blob is here.
    public func lookup(diffID: Digest, compression: Compression) -> (descriptor: Descriptor, path: String)? {
        let path = directory + "/entries/" + key(diffID, compression) + ".json"
        guard let r = try? FileReader(path: path), let bytes = try? r.readAll(limit: 1 << 16),
              let e = try? JSONDecoder().decode(Entry.self, from: Data(bytes)),
              e.diffID == diffID, e.encoder == compression.encoderIdentity else { return nil }
        let blob = blobPath(e.descriptor.digest)
        var st = stat()
        guard stat(blob, &st) == 0, Int64(st.st_size) == e.descriptor.size else { return nil }
        // Touch it, so an age-based clean-up sees that it is in use.
        _ = utimes(blob, nil)
        return (e.descriptor, blob)
    }

    /// A fresh temporary path for a blob being compressed (on the cache's file system).
    public func temporaryBlob() -> String {
        directory + "/tmp/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Moves the compressed blob at `temporary` into the cache and records it as the
    /// twin of `diffID`; returns the blob's path in the cache.
    public func record(diffID: Digest, compression: Compression, descriptor: Descriptor, temporary: String) throws -> String {
        let blob = blobPath(descriptor.digest)
        guard rename(temporary, blob) == 0 else {
            let e = String(cString: strerror(errno))
            unlink(temporary)
            throw RegistryError.transport("cache: cannot move \(temporary) to \(blob): \(e)")
        }
        let entry = Entry(diffID: diffID, encoder: compression.encoderIdentity, descriptor: descriptor)
        try FileSystem.writeAtomically(try CanonicalJSON.encode(entry), to: directory + "/entries/" + key(diffID, compression) + ".json")
        return blob
    }
}
