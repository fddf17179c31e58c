import KilnArchive
import KilnOCI

/// Writes an image as an OCI image layout (image-spec image-layout.md), into a
/// directory (`oci:`) or a tar of one (`oci-archive:`), depending on the store.
/// The manifest is tagged in `index.json` with `org.opencontainers.image.ref.name`,
/// which is what `skopeo … oci:DIR:TAG` matches.
///
/// Images, indexes (OCISink+Index.swift) and artifacts (OCISink+Artifact.swift) go
/// through the same steps: blobs with `putImage`, then one new `index.json` with
/// `putIndexJSON`, then one `commit` of the store — nothing is half-written.
public struct OCISink: ImageSink {
    public let store: LayoutStore

    public init(store: LayoutStore) { self.store = store }

    public func write(_ image: PendingImage) throws -> WrittenImage {
        try transaction {
            let put = try putImage(image)
            let tag = image.tag ?? PendingImage.derivedTag(configDigest: put.written.configDigest)
            var manifest = put.manifest
            manifest.annotations = [AnnotationKey.refName: tag]
            try putIndexJSON(adding: [manifest], replacingTag: tag)
            var written = put.written
            written.reference = "\(image.name):\(tag)"
            written.tag = tag
            return written
        }
    }

    /// Runs `body`, then commits the store; on any error, undoes everything put.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        ProgressBoard.shared.phase("writing")
        do {
            let result = try body()
            try store.commit()
            return result
        } catch {
            store.abort()
            throw error
        }
    }

    /// An image's blobs in the store: what `putImage` wrote and the manifest's descriptor.
    struct PutImage {
        /// Reference and tag are left empty for the caller to fill.
        var written: WrittenImage
        var manifest: Descriptor
    }

    /// Writes the layers, the config and the manifest of `image` as blobs (not `index.json`).
    func putImage(_ image: PendingImage) throws -> PutImage {
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
        return PutImage(
            written: WrittenImage(reference: "", tag: "", manifestDigest: manifestBlob.digest,
                                  configDigest: configBlob.digest, layers: layers, diffIDs: diffIDs),
            manifest: Descriptor(mediaType: manifestType, digest: manifestBlob.digest, size: manifestBlob.size))
    }

    /// The layout's `index.json` as it is before this write (empty for a new layout).
    func existingIndex() throws -> Index {
        guard let old = store.existingFile("index.json") else { return Index(manifests: []) }
        return try CanonicalJSON.decode(Index.self, from: old, what: "existing index.json")
    }

    /// Writes `oci-layout` and the new `index.json`: the existing entries (other tags
    /// are kept; an entry tagged `replacingTag` is dropped, as that tag now names the new
    /// manifest; an entry of the same digest and no tag is not listed twice), then `entries`.
    func putIndexJSON(adding entries: [Descriptor], replacingTag tag: String?) throws {
        var index = try existingIndex()
        if let tag { index.manifests.removeAll { $0.annotations?[AnnotationKey.refName] == tag } }
        for e in entries where !index.manifests.contains(e) { index.manifests.append(e) }
        try store.putFile("oci-layout", Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
        try store.putFile("index.json", try CanonicalJSON.encode(index))
    }
}
