#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// Reads an image from a registry (spec.md "Pull"): resolves the tag, follows an
/// index or Docker manifest list to one platform, checks every manifest and the
/// config against their digests and sizes — all in `open`, the async step. Layers are
/// downloaded by `fetch` (in parallel) into a private spool where each blob appears
/// only once its digest checks; the synchronous pipelines that read them afterwards
/// never touch the network (README, "Concurrency model").
public final class RegistrySource: ImageSource, Sendable {
    public let reference: RegistryReference
    public let platform: Platform
    public let spool: BlobSpool
    /// The index the reference named, if it named one.
    public let index: FetchedManifest?
    let resolved: SourceImage

    public var client: RegistryClient { spool.client }

    /// Resolves `reference` for `platform`, fetching and checking its manifest and config.
    public static func open(reference: RegistryReference, options: RegistryOptions,
                            platform: Platform = .host) async throws -> RegistrySource {
        let client = try RegistryClient(registry: reference.registry, options: options)
        let spool = try BlobSpool(client: client, repository: reference.repository)
        do {
            let (image, index) = try await resolve(reference, client: client, platform: platform)
            return RegistrySource(reference: reference, platform: platform, spool: spool, index: index, image: image)
        } catch {
            spool.remove()
            throw error
        }
    }

    private init(reference: RegistryReference, platform: Platform, spool: BlobSpool,
                 index: FetchedManifest?, image: Resolved) {
        self.reference = reference
        self.platform = platform
        self.spool = spool
        self.index = index
        let layers: [any StoredLayer] = zip(image.manifest.layers, image.config.rootfs.diff_ids).map {
            RegistryLayer(descriptor: $0, diffID: $1, spool: spool, registry: reference.registry)
        }
        var names: [String] = []
        if let tag = reference.tag { names.append("\(reference.name):\(tag)") }
        self.resolved = SourceImage(manifestBytes: image.manifestBytes, manifest: image.manifest, configBytes: image.configBytes,
                                    config: image.config, layers: layers, names: names)
    }

    /// Deletes the downloaded blobs (see `BlobSpool.remove`).
    public func removeSpool() { spool.remove() }

    /// The resolved image; its layers' bytes are readable once `fetch` has downloaded them.
    public func image() throws -> SourceImage { resolved }

    /// Downloads every layer of the image, `options.parallelism` at a time.
    public func fetchLayers() async throws {
        try await spool.fetch(resolved.layers.map(\.descriptor))
    }

    struct Resolved {
        var manifestBytes: [UInt8]
        var manifest: Manifest
        var configBytes: [UInt8]
        var config: ImageConfig
    }

    /// The image manifest for `platform` (through at most two levels of index) and its config.
    static func resolve(_ reference: RegistryReference, client: RegistryClient,
                        platform: Platform) async throws -> (Resolved, FetchedManifest?) {
        let repo = reference.repository
        var fetched = try await client.manifest(repository: repo, reference: reference.manifestReference)
        var index: FetchedManifest?
        var depth = 0
        while PlatformSelection.isIndex(fetched.mediaType) {
            depth += 1
            guard depth <= 2 else { throw RegistryError.unsupported("\(reference): indexes nested too deeply") }
            let parsed = try CanonicalJSON.decode(Index.self, from: fetched.bytes, what: "\(reference): index")
            if depth == 1 { index = fetched }
            let chosen = try PlatformSelection.select(from: parsed, platform: platform, what: "\(reference)")
            fetched = try await client.manifest(repository: repo, reference: chosen.digest.description, expectedSize: chosen.size)
        }
        guard PlatformSelection.isImageManifest(fetched.mediaType) else {
            throw RegistryError.unsupported("\(reference): unsupported manifest type \"\(fetched.mediaType)\" (Kiln reads OCI and Docker schema 2 manifests)")
        }
        let manifest = try CanonicalJSON.decode(Manifest.self, from: fetched.bytes, what: "\(reference): manifest")
        let configBytes = try await client.blobBytes(repository: repo, descriptor: manifest.config)
        let config = try CanonicalJSON.decode(ImageConfig.self, from: configBytes, what: "\(reference): config")
        guard config.rootfs.diff_ids.count == manifest.layers.count else {
            throw RegistryError.protocolViolation("\(reference): the manifest has \(manifest.layers.count) layers but the config lists \(config.rootfs.diff_ids.count) diff_ids")
        }
        return (Resolved(manifestBytes: fetched.bytes, manifest: manifest, configBytes: configBytes, config: config), index)
    }
}

/// A layer in a registry; its bytes come through the source's spool.
public struct RegistryLayer: StoredLayer {
    public let descriptor: Descriptor
    public let diffID: Digest
    let spool: BlobSpool
    /// The registry and repository it lives in, for cross-repository mounts.
    public let registry: String
    public var repository: String { spool.repository }

    init(descriptor: Descriptor, diffID: Digest, spool: BlobSpool, registry: String) {
        self.descriptor = descriptor
        self.diffID = diffID
        self.spool = spool
        self.registry = registry
    }

    /// The downloaded blob; `RegistrySource.fetchLayers` (or `BlobSpool.fetch`) must have run.
    public func openBlob() throws -> ByteReader {
        try FileReader(path: try spool.downloadedFile(descriptor))
    }

    /// The downloaded blob in the spool, once fetched: its digest and size were checked
    /// as it arrived, so sinks may hard-link or kernel-copy it instead of reading it again.
    public var localFile: String? { try? spool.downloadedFile(descriptor) }

    /// The blob, downloaded now if it is not yet.
    public func openBlobAsync() async throws -> ByteReader {
        try FileReader(path: try await spool.localFile(descriptor))
    }
}
