import KilnArchive
import KilnOCI

extension OCISink {
    /// Writes a multi-platform image: every image's blobs and manifest, then the index
    /// blob listing them in order with their platforms, then `index.json` with one entry
    /// for the index, tagged (replacing an entry of that tag, as `write` of an image
    /// does). One commit: a failure in any image leaves the destination as it was.
    public func write(_ index: PendingIndex) throws -> WrittenIndex {
        try index.validate()
        if let stored = index.stored, stored.mediaType != MediaType.ociIndex {
            throw ImageError.invalid("\(index.name): an index of type \(stored.mediaType) cannot be kept byte for byte in an OCI layout (copy one platform with --platform)")
        }
        return try transaction {
            var written: [WrittenIndex.Manifest] = []
            var descriptors: [Descriptor] = []
            for e in index.entries {
                if index.stored != nil, let s = e.image.stored, s.manifestMediaType != MediaType.ociManifest {
                    throw ImageError.invalid("\(index.name): the \(e.platform) image is a \(s.manifestMediaType), which an OCI layout cannot keep byte for byte")
                }
                let put = try putImage(e.image)
                descriptors.append(put.manifest)
                written.append(WrittenIndex.Manifest(platform: e.platform, image: put.written, size: put.manifest.size))
            }
            let (bytes, mediaType) = try index.document(manifests: descriptors)
            let blob = try store.putBlob(bytes)
            let tag = index.tag ?? PendingImage.derivedTag(configDigest: blob.digest)
            for i in written.indices {
                written[i].image.reference = "\(index.name)@\(written[i].image.manifestDigest)"
                written[i].image.tag = tag
            }
            try putIndexJSON(adding: [Descriptor(mediaType: mediaType, digest: blob.digest, size: blob.size,
                                                 annotations: [AnnotationKey.refName: tag])],
                             replacingTag: tag)
            return WrittenIndex(reference: "\(index.name):\(tag)", tag: tag, indexDigest: blob.digest,
                                indexSize: blob.size, manifests: written)
        }
    }
}

extension ImageReference {
    /// The OCI sink of an `oci:` or `oci-archive:` reference, which can also write an
    /// index; nil for a docker-archive (one image per platform).
    public func ociSink() throws -> OCISink? {
        switch self {
        case .oci(let p, _): return OCISink(store: try DirectoryStore(path: p))
        case .ociArchive(let p, _): return OCISink(store: try TarStore(path: p))
        case .dockerArchive: return nil
        }
    }
}
