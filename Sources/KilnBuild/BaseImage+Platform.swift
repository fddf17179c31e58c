import KilnArchive
import KilnImage
import KilnOCI

/// A base that is an image index, in an OCI layout or archive: the manifest of the
/// platform being built is taken from it (image-spec image-index.md "platform"; matched
/// as containerd matches: os and architecture equal, a wanted variant equal, arm64's
/// default `v8` matching an entry without one, an exact variant preferred). Through at
/// most two levels of index.
extension BaseImage {
    /// The platform a spec's base is chosen for: its `platforms` entry, else its
    /// `architecture`/`os`/`variant`, else the host's.
    public static func wantedPlatform(_ spec: Spec) -> Platform {
        if let p = spec.buildPlatform { return p }
        let host = Platform.host
        return Platform(architecture: spec.architecture ?? host.architecture, os: spec.os,
                        variant: spec.variant ?? (spec.architecture == nil ? host.variant : nil))
    }

    /// The manifest of `platform` when the image `tag` names (or the only one, without a
    /// tag) is an index, or when `index.json` lists several manifests for different
    /// platforms and no tag is given; nil when there is nothing to choose (or the layout
    /// cannot be read: OCILayoutSource then says why).
    static func platformManifest(_ files: any LayoutFiles, tag: String?, platform: Platform, what: String) throws -> Descriptor? {
        let layout = OCILayout(files: files, what: what)
        guard let top = try? layout.index() else { return nil }
        if tag == nil, top.manifests.count > 1,
           top.manifests.allSatisfy({ $0.platform != nil && $0.artifactType == nil && !isIndex($0.mediaType) }) {
            return try select(from: top, platform: platform, what: what)
        }
        guard var chosen = try? layout.entry(tag: tag), isIndex(chosen.mediaType) else { return nil }
        for _ in 0..<2 where isIndex(chosen.mediaType) {
            let bytes = try layout.document(chosen, what: "index \(chosen.digest)")
            chosen = try select(from: try CanonicalJSON.decode(Index.self, from: bytes, what: "\(what): index \(chosen.digest)"),
                                platform: platform, what: what)
        }
        guard !isIndex(chosen.mediaType) else { throw BuildError("\(what): indexes nested more than two deep") }
        return chosen
    }

    static func isIndex(_ type: String) -> Bool { MediaType.isIndex(type) }

    /// The entry for `platform` (`Index.entry(for:)`).
    static func select(from index: Index, platform: Platform, what: String) throws -> Descriptor {
        if let d = index.entry(for: platform) { return d }
        throw BuildError("\(what): the base has no image for \(platform) (its index has: \(index.offeredPlatforms))")
    }

    static func matches(_ candidate: Platform, _ wanted: Platform) -> Bool { candidate.serves(wanted) }
}
