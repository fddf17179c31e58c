/// Choosing one image of an index (image-spec image-index.md "platform"), as containerd
/// matches: os and architecture must be equal; a wanted variant must be equal, except
/// that arm64's default `v8` also matches an entry with no variant; among several
/// matches an exact variant wins, then the first listed. The one matcher behind a
/// registry pull, an OCI layout's `--platform` and a build's base index.
extension Platform {
    /// Variants an entry without one is taken to have.
    static let defaultVariants = ["arm64": "v8"]

    /// True when an index entry of this platform serves `wanted`.
    public func serves(_ wanted: Platform) -> Bool {
        guard os == wanted.os, architecture == wanted.architecture else { return false }
        guard let wv = wanted.variant else { return true }
        if let v = variant { return v == wv }
        return Self.defaultVariants[wanted.architecture] == wv
    }
}

extension MediaType {
    /// An image index or a Docker manifest list.
    public static func isIndex(_ type: String) -> Bool { type == ociIndex || type == dockerManifestList }

    /// An OCI image manifest or a Docker v2 schema 2 manifest.
    public static func isImageManifest(_ type: String) -> Bool { type == ociManifest || type == dockerManifest }
}

extension Index {
    /// The image manifest (or nested index) listed for `platform`, nil when none is.
    public func entry(for platform: Platform) -> Descriptor? {
        let candidates = manifests.filter { d in
            guard let p = d.platform else { return false }
            return (MediaType.isImageManifest(d.mediaType) || MediaType.isIndex(d.mediaType)) && p.serves(platform)
        }
        return candidates.first { $0.platform?.variant == platform.variant } ?? candidates.first
    }

    /// What the index offers, for an error naming a platform it lacks.
    public var offeredPlatforms: String {
        let offered = manifests.compactMap { $0.platform?.description }.filter { $0 != "unknown/unknown" }
        return offered.isEmpty ? "no platforms" : offered.joined(separator: ", ")
    }
}
