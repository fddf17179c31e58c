import KilnOCI

/// A multi-platform image on its way into a sink: one image per platform, written as
/// an OCI image index (image-spec image-index.md) over their manifests, in this order.
public struct PendingIndex: Sendable {
    public struct Entry: Sendable {
        /// Written into the index entry's `platform` exactly as given (`arm64` with `v8`).
        public var platform: Platform
        public var image: PendingImage

        public init(platform: Platform, image: PendingImage) {
            self.platform = platform
            self.image = image
        }
    }

    /// Repository name, such as `example/hello`.
    public var name: String
    /// The tag; when nil it is derived from the index digest (as an image's is from its config's).
    public var tag: String?
    public var entries: [Entry]
    /// When copying an index: its bytes as the source stores them, written unchanged so
    /// its digest is preserved (`entries` are then its images, in its order).
    public var stored: StoredIndex?

    public init(name: String, tag: String?, entries: [Entry], stored: StoredIndex? = nil) {
        self.name = name
        self.tag = tag
        self.entries = entries
        self.stored = stored
    }

    /// Checks what every sink needs: at least one image, no platform twice (unless the
    /// index is a stored copy), and each image's config of the platform it is listed for.
    public func validate() throws {
        guard !entries.isEmpty else { throw ImageError.invalid("\(name): an index needs at least one image") }
        guard stored == nil else { return }
        var seen = Set<Platform>()
        for e in entries {
            guard seen.insert(e.platform).inserted else {
                throw ImageError.invalid("\(name): platform \(e.platform) is listed twice")
            }
            let c = e.image.config
            guard c.os == e.platform.os, c.architecture == e.platform.architecture else {
                throw ImageError.invalid("\(name): the image listed for \(e.platform) has a config for \(c.os)/\(c.architecture)")
            }
        }
    }

    /// The index document over the written manifests, canonical JSON (the same inputs
    /// give the same bytes), or the stored bytes of a copy after checking that each
    /// written manifest is the one it lists.
    public func document(manifests: [Descriptor]) throws -> (bytes: [UInt8], mediaType: String) {
        if let stored {
            let index = try CanonicalJSON.decode(Index.self, from: stored.bytes, what: "\(name): index")
            guard index.manifests.count == manifests.count else {
                throw ImageError.invalid("\(name): the index lists \(index.manifests.count) manifests, \(manifests.count) were written")
            }
            for (listed, written) in zip(index.manifests, manifests) where listed.digest != written.digest {
                throw ImageError.digestMismatch(what: "\(name): manifest for \(listed.platform?.description ?? "an entry")",
                                                expected: listed.digest, actual: written.digest)
            }
            return (stored.bytes, stored.mediaType)
        }
        let index = Index(mediaType: MediaType.ociIndex, manifests: zip(entries, manifests).map { e, m in
            Descriptor(mediaType: m.mediaType, digest: m.digest, size: m.size, platform: e.platform)
        })
        return (try CanonicalJSON.encode(index), MediaType.ociIndex)
    }
}

/// An index as stored by a source: its bytes and media type.
public struct StoredIndex: Sendable {
    public var bytes: [UInt8]
    public var mediaType: String

    public init(bytes: [UInt8], mediaType: String) {
        self.bytes = bytes
        self.mediaType = mediaType
    }
}

/// What a sink wrote for an index.
public struct WrittenIndex: Sendable, Codable {
    /// One image of the index.
    public struct Manifest: Sendable, Codable {
        public var platform: Platform
        public var image: WrittenImage
        /// The size of its manifest.
        public var size: Int64

        public init(platform: Platform, image: WrittenImage, size: Int64) {
            self.platform = platform
            self.image = image
            self.size = size
        }
    }

    /// `NAME:TAG` (or `NAME@DIGEST` when pushed by digest).
    public var reference: String
    public var tag: String
    public var indexDigest: Digest
    public var indexSize: Int64
    public var manifests: [Manifest]

    public init(reference: String, tag: String, indexDigest: Digest, indexSize: Int64, manifests: [Manifest]) {
        self.reference = reference
        self.tag = tag
        self.indexDigest = indexDigest
        self.indexSize = indexSize
        self.manifests = manifests
    }
}
