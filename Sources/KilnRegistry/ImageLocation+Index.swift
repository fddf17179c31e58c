import KilnArchive
import KilnImage
import KilnOCI

/// An image index (or Docker manifest list) as a location stores it.
public struct OpenedIndex: Sendable {
    public var bytes: [UInt8]
    public var mediaType: String
    public var index: Index
    public var digest: Digest { .sha256(bytes) }
    /// The tag it was found under, if any.
    public var tag: String?
}

extension ImageLocation {
    /// The index this location names, without following it to a platform; nil when it
    /// names a single image (a docker-archive always does).
    public func openIndex(options: RegistryOptions) async throws -> OpenedIndex? {
        switch self {
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            let top = try await client.manifest(repository: r.repository, reference: r.manifestReference)
            guard PlatformSelection.isIndex(top.mediaType) else { return nil }
            let index = try CanonicalJSON.decode(Index.self, from: top.bytes, what: "\(r): index")
            return OpenedIndex(bytes: top.bytes, mediaType: top.mediaType, index: index, tag: r.digest == nil ? r.tag ?? "latest" : nil)
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { return nil }
                let entry = try layout.entry(tag: r.layoutTag)
                guard PlatformSelection.isIndex(entry.mediaType) else { return nil }
                let bytes = try layout.document(entry, what: "index")
                let index = try CanonicalJSON.decode(Index.self, from: bytes, what: "\(r): index")
                return OpenedIndex(bytes: bytes, mediaType: entry.mediaType, index: index,
                                   tag: r.layoutTag ?? entry.annotations?[AnnotationKey.refName])
            }
        }
    }

    /// The image an entry of `index` (opened here) describes, by its digest; with
    /// `fetchLayers`, a registry image's layers are downloaded (for a local sink).
    public func openEntry(_ entry: Descriptor, options: RegistryOptions, fetchLayers: Bool) async throws -> OpenedImage {
        guard PlatformSelection.isImageManifest(entry.mediaType) else {
            throw RegistryError.unsupported("\(self): index entry \(entry.digest) is \(entry.mediaType); only image manifests are read")
        }
        switch self {
        case .registry(let r):
            let pinned = RegistryReference(registry: r.registry, repository: r.repository, tag: nil, digest: entry.digest)
            return try await ImageLocation.registry(pinned).open(options: options, fetchLayers: fetchLayers)
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { throw ImageError.invalid("\(r) holds no index") }
                let source = OCILayoutSource(blobs: layout.files, tag: r.layoutTag, what: r.description, manifest: entry)
                return OpenedImage(image: try source.image(), registry: nil)
            }
        }
    }
}
