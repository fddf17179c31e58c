import KilnArchive
import KilnImage
import KilnOCI

/// A base that is an image index, in an OCI layout or archive: the manifest of the
/// platform being built is taken from it (image-spec image-index.md "platform"; matched
/// as containerd matches: os and architecture equal, a wanted variant equal, arm64's
/// default `v8` matching an entry without one, an exact variant preferred). Through at
/// most two levels of index. The layout is then read as if its `index.json` listed that
/// manifest alone (`PlatformLayoutFiles`).
extension BaseImage {
    /// The platform a spec's base is chosen for: its `platforms` entry, else its
    /// `architecture`/`os`/`variant`, else the host's.
    public static func wantedPlatform(_ spec: Spec) -> Platform {
        if let p = spec.buildPlatform { return p }
        let host = Platform.host
        return Platform(architecture: spec.architecture ?? host.architecture, os: spec.os,
                        variant: spec.variant ?? (spec.architecture == nil ? host.variant : nil))
    }

    /// `files` narrowed to `platform`'s manifest when the image `tag` names (or the only
    /// entry, without a tag) is an index, or when `index.json` lists several manifests
    /// for different platforms and no tag; nil when there is nothing to choose.
    static func selectingPlatform(_ files: any LayoutFiles, tag: String?, platform: Platform, what: String) throws -> (any LayoutFiles)? {
        // A layout that cannot be read is left to OCILayoutSource, whose errors say why.
        guard let bytes = try? files.open("index.json").readAll(limit: 4 << 20),
              let top = try? CanonicalJSON.decode(Index.self, from: bytes, what: "\(what): index.json") else { return nil }
        var candidates = top.manifests
        if let tag { candidates = candidates.filter { $0.annotations?[AnnotationKey.refName] == tag } }
        var chosen: Descriptor
        if candidates.count == 1, isIndex(candidates[0].mediaType) {
            chosen = candidates[0]
        } else if tag == nil, candidates.count > 1, candidates.allSatisfy({ $0.platform != nil && !isIndex($0.mediaType) }) {
            chosen = try select(from: Index(manifests: candidates), platform: platform, what: what)
            return PlatformLayoutFiles(files: files, manifest: chosen)
        } else {
            return nil
        }
        let name = chosen.annotations?[AnnotationKey.refName]
        for _ in 0..<2 where isIndex(chosen.mediaType) {
            let bytes = try files.open("blobs/\(chosen.digest.algorithm)/\(chosen.digest.hex)").readAll(limit: 4 << 20)
            guard Digest.sha256(bytes) == chosen.digest, Int64(bytes.count) == chosen.size else {
                throw BuildError("\(what): the index \(chosen.digest) does not match its digest or size")
            }
            chosen = try select(from: try CanonicalJSON.decode(Index.self, from: bytes, what: "\(what): index \(chosen.digest)"),
                                platform: platform, what: what)
        }
        guard !isIndex(chosen.mediaType) else { throw BuildError("\(what): indexes nested more than two deep") }
        if let name { chosen.annotations = (chosen.annotations ?? [:]).merging([AnnotationKey.refName: name]) { _, n in n } }
        return PlatformLayoutFiles(files: files, manifest: chosen)
    }

    static func isIndex(_ type: String) -> Bool {
        type == MediaType.ociIndex || type == MediaType.dockerManifestList
    }

    /// The entry for `platform`: an exact variant match first, then the first match.
    static func select(from index: Index, platform: Platform, what: String) throws -> Descriptor {
        let candidates = index.manifests.filter { d in d.platform.map { matches($0, platform) } ?? false }
        if let exact = candidates.first(where: { $0.platform?.variant == platform.variant }) { return exact }
        if let first = candidates.first { return first }
        let offered = index.manifests.compactMap { $0.platform?.description }.filter { $0 != "unknown/unknown" }
        throw BuildError("\(what): the base has no image for \(platform) (its index has: \(offered.isEmpty ? "no platforms" : offered.joined(separator: ", ")))")
    }

    static func matches(_ candidate: Platform, _ wanted: Platform) -> Bool {
        guard candidate.os == wanted.os, candidate.architecture == wanted.architecture else { return false }
        guard let wv = wanted.variant else { return true }
        if let cv = candidate.variant { return cv == wv }
        return wanted.architecture == "arm64" && wv == "v8"
    }
}

/// An OCI layout's files with `index.json` replaced by one listing `manifest` alone.
struct PlatformLayoutFiles: LayoutFiles {
    let files: any LayoutFiles
    let manifest: Descriptor

    func open(_ name: String) throws -> ByteReader {
        guard name == "index.json" else { return try files.open(name) }
        return BufferReader(try CanonicalJSON.encode(Index(manifests: [manifest])))
    }

    func size(_ name: String) throws -> Int64 { try files.size(name) }
}
