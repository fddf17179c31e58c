import KilnArchive
import KilnOCI

/// Writes an image as an OCI image layout (image-spec image-layout.md), into a
/// directory (`oci:`) or a tar of one (`oci-archive:`), depending on the store.
/// The manifest is tagged in `index.json` with `org.opencontainers.image.ref.name`,
/// which is what `skopeo … oci:DIR:TAG` matches.
public struct OCISink: ImageSink {
    public let store: LayoutStore

    public init(store: LayoutStore) { self.store = store }

    public func write(_ image: PendingImage) throws -> WrittenImage {
        do {
            let result = try writeUnchecked(image)
            try store.commit()
            return result
        } catch {
            store.abort()
            throw error
        }
    }

    private func writeUnchecked(_ image: PendingImage) throws -> WrittenImage {
        var layers: [Descriptor] = []
        var diffIDs: [Digest] = []
        for input in image.layers {
            switch input {
            case .produced(let producer, let compression):
                var diffID: Digest?
                let blob = try store.putBlob { out in
                    let uncompressed = PipelinedHashingWriter(compression.writer(out))
                    try producer.writeTar(to: uncompressed)
                    try uncompressed.finish()
                    diffID = uncompressed.digest
                }
                layers.append(Descriptor(mediaType: layerMediaType(compression), digest: blob.digest, size: blob.size))
                diffIDs.append(diffID!)
            case .stored(let layer) where layer.localFile != nil:
                let d = layer.descriptor
                try store.putLocalFile("blobs/\(d.digest.algorithm)/\(d.digest.hex)", from: layer.localFile!, size: d.size)
                layers.append(d)
                diffIDs.append(layer.diffID)
            case .stored(let layer):
                let blob = try store.putBlob { out in try layer.openBlob().copy(to: out) }
                guard blob.digest == layer.descriptor.digest else {
                    throw ImageError.digestMismatch(what: "layer \(layer.descriptor.digest)", expected: layer.descriptor.digest, actual: blob.digest)
                }
                layers.append(layer.descriptor)
                diffIDs.append(layer.diffID)
            }
        }
        let configBytes = try image.configBytes(diffIDs: diffIDs)
        let configBlob = try store.putBlob(configBytes)
        let tag = image.tag ?? PendingImage.derivedTag(configDigest: configBlob.digest)
        let manifestBytes: [UInt8]
        let manifestType: String
        if let stored = image.stored, stored.manifestMediaType == MediaType.ociManifest {
            // A copy keeps the source's OCI manifest byte for byte.
            manifestBytes = stored.manifest
            manifestType = stored.manifestMediaType
        } else {
            // Built images, and Docker v2s2 manifests converted as skopeo does (OCI
            // layouts index only OCI manifests): same blobs, OCI media types.
            manifestBytes = try PendingImage.ociManifest(config: configBytes, layers: layers)
            manifestType = MediaType.ociManifest
        }
        let manifestBlob = try store.putBlob(manifestBytes)

        // Keep the other tags of an existing layout; this tag now names the new manifest.
        var index = Index(manifests: [])
        if let old = store.existingFile("index.json") {
            index = try CanonicalJSON.decode(Index.self, from: old, what: "existing index.json")
            index.manifests.removeAll { $0.annotations?[AnnotationKey.refName] == tag }
        }
        index.manifests.append(Descriptor(
            mediaType: manifestType, digest: manifestBlob.digest, size: manifestBlob.size,
            annotations: [AnnotationKey.refName: tag]))
        try store.putFile("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        try store.putFile("index.json", try CanonicalJSON.encode(index))
        return WrittenImage(reference: "\(image.name):\(tag)", tag: tag, manifestDigest: manifestBlob.digest,
                            configDigest: configBlob.digest, layers: layers, diffIDs: diffIDs)
    }
}
