import KilnArchive
import KilnImage
import KilnOCI

/// Copies an image index (or Docker manifest list) with every image it lists
/// (`kiln copy --all`), between registries, OCI layouts and OCI archives: each image's
/// blobs and manifest, then the index — all bytes unchanged, so the index digest is the
/// same at both ends. A registry destination gets the manifests by digest and the
/// index under the tag last; a layout gets everything in one commit.
public enum IndexCopy {
    public struct Result: Sendable {
        public var digest: Digest
        public var size: Int64
        public var images: Int
        public var written: WrittenIndex
    }

    /// Returns nil when `source` names a single image (the caller copies it as usual).
    /// `name` and `tag` are used where the destination names none.
    public static func copyAll(from source: ImageLocation, to destination: ImageLocation,
                               options: RegistryOptions) async throws -> Result? {
        guard let top = try await source.openIndex(options: options) else { return nil }
        if case .local(.dockerArchive) = destination {
            throw ImageError.invalid("\(destination): a docker-archive holds one platform; copy one with --platform (without --all)")
        }
        if case .local = destination, top.mediaType != MediaType.ociIndex {
            throw ImageError.invalid("\(source): a Docker manifest list cannot be kept byte for byte in an OCI layout; copy one platform with --platform (without --all)")
        }
        var opened: [OpenedImage] = []
        defer { for o in opened { o.removeSpool() } }
        let (dName, dTag) = destination.destinationName
        var name = dName ?? "localhost/image"
        if case .registry(let r) = source, dName == nil { name = r.name }
        let tag = dTag ?? top.tag ?? "latest"
        var entries: [PendingIndex.Entry] = []
        for child in top.index.manifests {
            let image = try await source.openEntry(child, options: options, fetchLayers: destination.readsLayerBytes)
            opened.append(image)
            entries.append(PendingIndex.Entry(platform: child.platform ?? Platform(architecture: "unknown", os: "unknown"),
                                              image: image.image.pending(name: name, tag: nil)))
        }
        let pending = PendingIndex(name: name, tag: tag, entries: entries,
                                   stored: StoredIndex(bytes: top.bytes, mediaType: top.mediaType))
        let written = try await destination.write(index: pending, options: options)
        options.progress.close()
        return Result(digest: written.indexDigest, size: written.indexSize, images: entries.count, written: written)
    }
}
