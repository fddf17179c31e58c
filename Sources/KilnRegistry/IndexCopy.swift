import KilnArchive
import KilnOCI

/// Copies an image index (or Docker manifest list) with every image it lists, from
/// one registry repository to another (`kiln copy --all`): each image's blobs, then
/// each image manifest by digest, then the index under the tag — all bytes unchanged,
/// so the index digest is the same at both ends.
public enum IndexCopy {
    public struct Result: Sendable {
        public var digest: Digest
        public var size: Int64
        public var images: Int
    }

    /// Returns nil when `source` names a single image (the caller copies it as usual).
    public static func copyAll(from source: RegistryReference, to destination: RegistryReference,
                               options: RegistryOptions) async throws -> Result? {
        let src = try RegistryClient(registry: source.registry, options: options)
        let dst = try RegistryClient(registry: destination.registry, options: options)
        let top = try await src.manifest(repository: source.repository, reference: source.manifestReference)
        guard PlatformSelection.isIndex(top.mediaType) else { return nil }
        let index = try CanonicalJSON.decode(Index.self, from: top.bytes, what: "\(source): index")
        let spool = try BlobSpool(client: src, repository: source.repository)
        defer { spool.remove() }
        let sameRegistry = source.registry == destination.registry && source.repository != destination.repository
        var images = 0
        for child in index.manifests {
            guard PlatformSelection.isImageManifest(child.mediaType) else {
                throw RegistryError.unsupported("\(source): index entry \(child.digest) is \(child.mediaType); only image manifests are copied")
            }
            let m = try await src.manifest(repository: source.repository, reference: child.digest.description, expectedSize: child.size)
            let manifest = try CanonicalJSON.decode(Manifest.self, from: m.bytes, what: "\(source)@\(child.digest)")
            for blob in [manifest.config] + manifest.layers {
                _ = try await dst.pushBlob(repository: destination.repository, descriptor: blob,
                                           mountFrom: sameRegistry ? source.repository : nil) {
                    try FileReader(path: try await spool.localFile(blob))
                }
            }
            try await dst.putManifest(repository: destination.repository, reference: child.digest.description,
                                      bytes: m.bytes, mediaType: m.mediaType)
            images += 1
        }
        let tag = destination.digest == nil ? (destination.tag ?? "latest") : top.digest.description
        if let pinned = destination.digest, pinned != top.digest {
            throw RegistryError.digestMismatch(what: "\(destination)", expected: pinned, actual: top.digest)
        }
        try await dst.putManifest(repository: destination.repository, reference: tag, bytes: top.bytes, mediaType: top.mediaType)
        options.progress.close()
        return Result(digest: top.digest, size: Int64(top.bytes.count), images: images)
    }
}
