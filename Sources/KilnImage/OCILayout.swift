import KilnArchive
import KilnOCI

/// An OCI image layout being read (image-spec image-layout.md), in a directory or a
/// tar: `oci-layout`, `index.json` and content-addressed blobs, each small document
/// checked against its descriptor. `OCILayoutSource` reads an image from it; indexes,
/// `kiln inspect` and referrers read its entries here.
public struct OCILayout: Sendable {
    public let files: any LayoutFiles
    /// How errors name the layout (`oci:DIR`).
    public let what: String

    public init(files: any LayoutFiles, what: String) {
        self.files = files
        self.what = what
    }

    /// Opens the layout of an `oci:` or `oci-archive:` reference; nil for a docker-archive.
    public init?(_ reference: ImageReference) throws {
        switch reference {
        case .oci(let p, _): self.init(files: DirectoryBlobs(root: p), what: reference.description)
        case .ociArchive(let p, _): self.init(files: try TarIndex(path: p), what: reference.description)
        case .dockerArchive: return nil
        }
    }

    public static func blobName(_ d: Digest) -> String { "blobs/\(d.algorithm)/\(d.hex)" }

    /// `index.json`, after checking `oci-layout`.
    public func index() throws -> Index {
        let layout = try files.open("oci-layout").readAll(limit: 4096)
        guard let l = try? CanonicalJSON.decode([String: String].self, from: layout, what: "oci-layout"),
              l["imageLayoutVersion"] == "1.0.0" else {
            throw ImageError.invalid("\(what): oci-layout is not {\"imageLayoutVersion\":\"1.0.0\"}")
        }
        return try CanonicalJSON.decode(Index.self, from: try files.open("index.json").readAll(limit: documentLimit), what: "\(what): index.json")
    }

    /// A small blob (manifest, index, config), checked against `d`'s digest and size.
    public func document(_ d: Descriptor, what item: String) throws -> [UInt8] {
        try readVerified(d, from: files, name: Self.blobName(d.digest), what: "\(what): \(item)")
    }

    /// Whether the layout has a blob of that digest.
    public func hasBlob(_ digest: Digest) -> Bool {
        (try? files.size(Self.blobName(digest))) != nil
    }

    static func isImage(_ type: String) -> Bool { MediaType.isImageManifest(type) }
    static func isIndex(_ type: String) -> Bool { MediaType.isIndex(type) }

    /// The `index.json` entry an image reference names: the manifest or index tagged
    /// `tag` (`org.opencontainers.image.ref.name`), or without a tag the only one there
    /// — artifacts that refer to another manifest (`subject`, image-spec 1.1) do not
    /// count, so attaching an SBOM to a layout's only image keeps it the only one.
    public func entry(tag: String?) throws -> Descriptor {
        let all = try index().manifests.filter { Self.isImage($0.mediaType) || Self.isIndex($0.mediaType) }
        if let tag {
            guard let d = all.first(where: { $0.annotations?[AnnotationKey.refName] == tag }) else {
                let tags = all.compactMap { $0.annotations?[AnnotationKey.refName] }
                throw ImageError.notFound("\(what): no image tagged \"\(tag)\" (tags: \(tags.isEmpty ? "none" : tags.joined(separator: ", ")))")
            }
            return d
        }
        var candidates = all
        if candidates.count > 1 {
            candidates = try candidates.filter { d in
                guard d.artifactType == nil else { return false }
                guard Self.isImage(d.mediaType) else { return true }
                let m = try CanonicalJSON.decode(Manifest.self, from: try document(d, what: "manifest \(d.digest)"), what: "\(what): manifest \(d.digest)")
                return m.subject == nil
            }
        }
        guard candidates.count == 1 else {
            throw ImageError.invalid("\(what): the layout holds \(candidates.count) images; name one with :TAG")
        }
        return candidates[0]
    }
}

extension ImageReference {
    /// The tag of an `oci:` or `oci-archive:` reference.
    public var layoutTag: String? {
        switch self {
        case .oci(_, let t), .ociArchive(_, let t): return t
        case .dockerArchive: return nil
        }
    }
}
