import KilnOCI

/// Choosing one image of an index or manifest list (image-spec image-index.md
/// "platform"): os and architecture must match; a requested variant must match,
/// except that arm64's default `v8` also matches an entry with no variant.
public enum PlatformSelection {
    /// `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`.
    public static func parse(_ s: String) throws -> Platform {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), !parts.contains(where: \.isEmpty) else {
            throw RegistryError.invalidPlatform(s)
        }
        return Platform(architecture: parts[1], os: parts[0], variant: parts.count == 3 ? parts[2] : nil)
    }

    static func matches(_ candidate: Platform, _ wanted: Platform) -> Bool { candidate.serves(wanted) }

    static func isImageManifest(_ type: String) -> Bool { MediaType.isImageManifest(type) }

    static func isIndex(_ type: String) -> Bool { MediaType.isIndex(type) }

    /// The entry for `platform` (`Index.entry(for:)`); the error lists what the index offers.
    public static func select(from index: Index, platform: Platform, what: String) throws -> Descriptor {
        if let d = index.entry(for: platform) { return d }
        throw RegistryError.notFound("\(what): no image for platform \(platform) (the index has: \(index.offeredPlatforms))")
    }
}
