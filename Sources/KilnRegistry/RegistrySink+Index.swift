import KilnArchive
import KilnImage
import KilnOCI

extension RegistrySink {
    /// Pushes a multi-platform image (spec.md "Pushing Manifests" with an image index):
    /// each image's blobs and manifest, by digest, in the index's order; then the index
    /// (`application/vnd.oci.image.index.v1+json`, or a stored copy's own bytes and
    /// type) under the reference's tag, else the index's tag, else `latest`; a reference
    /// pinned by digest must name the index's digest. The index goes last, so a reader
    /// never sees it before every manifest it lists.
    public func push(_ index: PendingIndex) async throws -> WrittenIndex {
        try index.validate()
        var written: [WrittenIndex.Manifest] = []
        var descriptors: [Descriptor] = []
        for e in index.entries {
            let pushed = try await push(e.image, byDigest: true)
            descriptors.append(Descriptor(mediaType: pushed.manifestType, digest: pushed.image.manifestDigest, size: pushed.manifestSize))
            written.append(WrittenIndex.Manifest(platform: e.platform, image: pushed.image, size: pushed.manifestSize))
        }
        let (bytes, mediaType) = try index.document(manifests: descriptors)
        let digest = Digest.sha256(bytes)
        if let pinned = reference.digest, pinned != digest {
            throw RegistryError.digestMismatch(what: "\(reference): index to push", expected: pinned, actual: digest)
        }
        let tag = reference.tag ?? (reference.digest == nil ? (index.tag ?? "latest") : nil)
        try await client.putManifest(repository: reference.repository, reference: tag ?? digest.description,
                                     bytes: bytes, mediaType: mediaType)
        client.options.progress.close()
        for i in written.indices { written[i].image.tag = tag ?? "" }
        return WrittenIndex(reference: reference.name + (tag.map { ":\($0)" } ?? "@\(digest)"), tag: tag ?? "",
                            indexDigest: digest, indexSize: Int64(bytes.count), manifests: written)
    }
}
