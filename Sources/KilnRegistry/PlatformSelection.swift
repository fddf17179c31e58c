import KilnOCI

/// Choosing one image of an index or manifest list (image-spec image-index.md
/// "platform"): os and architecture must match; a requested variant must match,
/// except that arm64's default `v8` also matches an entry with no variant.
public enum PlatformSelection {
    /// `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
    public static func parse(_ s: String) throws -> Platform {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw RegistryError.invalidReference(s, reason: "a platform is OS/ARCH[/VARIANT], such as linux/amd64 or linux/arm64/v8")
        }
        return Platform(architecture: parts[1], os: parts[0], variant: parts.count == 3 ? parts[2] : nil)
    }

    static let defaultVariants = ["arm64": "v8"]

    static func matches(_ candidate: Platform, _ wanted: Platform) -> Bool {
        guard candidate.os == wanted.os, candidate.architecture == wanted.architecture else { return false }
        guard let wv = wanted.variant else { return true }
        if let cv = candidate.variant { return cv == wv }
        return defaultVariants[wanted.architecture] == wv
    }

    static func isImageManifest(_ type: String) -> Bool {
        type == MediaType.ociManifest || type == MediaType.dockerManifest
    }

    static func isIndex(_ type: String) -> Bool {
        type == MediaType.ociIndex || type == MediaType.dockerManifestList
    }

    /// The entry for `platform`; when several match, an exact variant match wins,
    /// then the first. The error lists what the index offers.
    public static func select(from index: Index, platform: Platform, what: String) throws -> Descriptor {
        let candidates = index.manifests.filter { d in
            guard let p = d.platform else { return false }
            return (isImageManifest(d.mediaType) || isIndex(d.mediaType)) && matches(p, platform)
        }
        if let exact = candidates.first(where: { $0.platform?.variant == platform.variant }) { return exact }
        if let first = candidates.first { return first }
        let offered = index.manifests.compactMap { $0.platform?.description }.filter { $0 != "unknown/unknown" }
        throw RegistryError.notFound("\(what): no image for platform \(platform) (the index has: \(offered.isEmpty ? "no platforms" : offered.joined(separator: ", ")))")
    }
}
