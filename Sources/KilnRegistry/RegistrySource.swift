#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// Reads an image from a registry (spec.md "Pull"): resolves the tag, follows an
/// index or Docker manifest list to one platform, checks every manifest and the
/// config against their digests and sizes. Layers are fetched on demand, or all at
/// once and in parallel by `prefetch`, into a private spool directory where each
/// blob appears only once its digest checks; the spool is removed with the source.
public final class RegistrySource: ImageSource, @unchecked Sendable {
    public let reference: RegistryReference
    public let client: RegistryClient
    public let platform: Platform
    let spool: String
    private let inFlight = LockedBox<[Digest: Task<String, any Error>]>([:])
    /// The index the reference named, if it named one.
    public private(set) var index: FetchedManifest?

    public init(reference: RegistryReference, options: RegistryOptions, platform: Platform = .host) throws {
        self.reference = reference
        self.client = try RegistryClient(registry: reference.registry, options: options)
        self.platform = platform
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        self.spool = base + "/kiln-blobs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(spool, 0o700) == 0 else {
            throw RegistryError.transport("cannot create \(spool): \(String(cString: strerror(errno)))")
        }
    }

    deinit { removeSpool() }

    /// Deletes the downloaded blobs. Callers about to exit call it themselves: the
    /// last reference may be dropped by a finishing task after the process is gone.
    public func removeSpool() {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: spool) {
            for n in names { unlink(spool + "/" + n) }
        }
        rmdir(spool)
    }

    /// Blocks the calling thread; call it from synchronous code outside Swift concurrency's pool.
    public func image() throws -> SourceImage {
        try runBlocking { try await self.resolve() }
    }

    /// The image for `platform`, with its manifest and config checked.
    public func resolve() async throws -> SourceImage {
        let repo = reference.repository
        var fetched = try await client.manifest(repository: repo, reference: reference.manifestReference)
        var depth = 0
        while PlatformSelection.isIndex(fetched.mediaType) {
            depth += 1
            guard depth <= 2 else { throw RegistryError.unsupported("\(reference): indexes nested too deeply") }
            let index = try CanonicalJSON.decode(Index.self, from: fetched.bytes, what: "\(reference): index")
            if depth == 1 { self.index = fetched }
            let chosen = try PlatformSelection.select(from: index, platform: platform, what: "\(reference)")
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
        let layers: [any StoredLayer] = zip(manifest.layers, config.rootfs.diff_ids).map {
            RegistryLayer(descriptor: $0, diffID: $1, source: self)
        }
        var names: [String] = []
        if let tag = reference.tag { names.append("\(reference.name):\(tag)") }
        return SourceImage(manifestBytes: fetched.bytes, manifest: manifest, configBytes: configBytes,
                           config: config, layers: layers, names: names)
    }

    /// The verified local copy of a blob, downloading it once however often it is asked for.
    public func localFile(_ d: Descriptor) async throws -> String {
        let task: Task<String, any Error> = inFlight.update { all in
            if let t = all[d.digest] { return t }
            let path = spool + "/" + d.digest.hex
            let client = self.client, repo = reference.repository
            let t = Task<String, any Error> {
                try await client.downloadBlob(repository: repo, descriptor: d, to: path)
                return path
            }
            all[d.digest] = t
            return t
        }
        do {
            return try await task.value
        } catch {
            // A failed download may be tried again by a later caller.
            inFlight.update { $0[d.digest] = nil }
            throw error
        }
    }

    /// Downloads every layer of `image`, `options.parallelism` at a time.
    public func prefetch(_ image: SourceImage) async throws {
        let descriptors = Array(Set(image.layers.map(\.descriptor)).sorted { $0.digest < $1.digest })
        let limit = max(1, client.options.parallelism)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            while next < min(limit, descriptors.count) {
                let d = descriptors[next]
                group.addTask { _ = try await self.localFile(d) }
                next += 1
            }
            while try await group.next() != nil {
                if next < descriptors.count {
                    let d = descriptors[next]
                    group.addTask { _ = try await self.localFile(d) }
                    next += 1
                }
            }
        }
    }

    /// Blocking form of `prefetch`, for synchronous callers.
    public func prefetchBlocking(_ image: SourceImage) throws {
        let boxed = UncheckedSendable(image)
        try runBlocking { try await self.prefetch(boxed.value) }
    }
}

/// A layer in a registry; its bytes come through the source's spool.
public struct RegistryLayer: StoredLayer {
    public let descriptor: Descriptor
    public let diffID: Digest
    let source: RegistrySource

    /// The repository it lives in, for cross-repository mounts.
    public var registry: String { source.reference.registry }
    public var repository: String { source.reference.repository }

    /// Blocks until the blob is downloaded; synchronous callers only (see `runBlocking`).
    public func openBlob() throws -> ByteReader {
        let source = self.source, d = descriptor
        let path = try runBlocking { try await source.localFile(d) }
        return try FileReader(path: path)
    }

    public func openBlobAsync() async throws -> ByteReader {
        try FileReader(path: try await source.localFile(descriptor))
    }
}

/// Carries a value the compiler cannot prove Sendable across a blocking bridge whose
/// caller waits for it (so the value is never used from two places at once).
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
