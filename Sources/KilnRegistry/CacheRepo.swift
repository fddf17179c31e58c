#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

/// A layer cache kept in a registry repository (`kiln build --cache-repo`), as kaniko's
/// `--cache-repo`: every layer a build made is pushed there with a tiny OCI artifact
/// manifest tagged `kiln-cache-<portable key>`, whose one layer descriptor is the layer
/// blob, annotated with its diffID, uncompressed size and (plain tars) tarsum; its config
/// is the OCI empty descriptor (image-spec manifest.md "Guidelines for Artifact Usage").
///
/// One tag per key: writers never read-modify-write a shared index, so two builds
/// pushing at once cannot lose each other's entries (the same key from two machines is
/// the same layer; the last manifest written wins and both are right). Nothing a
/// repo says is trusted further than it can be checked: a blob is verified against its
/// digest and size as it is downloaded (`BlobSpool`), and a manifest that is not one
/// of these artifacts, or whose diffID does not parse, is a miss.
public final class CacheRepo: Sendable {
    public static let artifactType = "application/vnd.kiln.layer-cache.v1+json"
    /// The OCI empty descriptor: `{}`.
    static let emptyConfig = Descriptor(mediaType: "application/vnd.oci.empty.v1+json",
                                        digest: Digest.sha256(Array("{}".utf8)), size: 2)
    enum Annotation {
        static let key = "dev.kiln.cache.key"
        static let diffID = "dev.kiln.cache.diff-id"
        static let uncompressedSize = "dev.kiln.cache.uncompressed-size"
        static let tarsum = "dev.kiln.cache.tarsum"
    }

    /// The tag of a key's manifest (a tag has at most 128 characters: this one 75).
    public static func tag(for key: String) -> String { "kiln-cache-" + key }

    public let registry: String
    public let repository: String
    public let client: RegistryClient
    /// Where verified blobs land.
    public let spool: BlobSpool
    /// `HOST/REPO`.
    public var name: String { "\(registry)/\(repository)" }

    public init(reference: RegistryReference, options: RegistryOptions) throws {
        registry = reference.registry
        repository = reference.repository
        // The repo only saves work: one that cannot be reached costs the build a few
        // seconds (two tries, a short connect deadline), not the full retry budget.
        var o = options
        o.maxAttempts = min(o.maxAttempts, 2)
        o.connectTimeout = min(o.connectTimeout, 5)
        client = try RegistryClient(registry: registry, options: o)
        spool = try BlobSpool(client: client, repository: repository)
    }

    /// Deletes downloaded blobs (those taken into the local cache are linked or copied there).
    public func remove() { spool.remove() }

    /// A layer the repo has under a key.
    public struct Hit: Sendable {
        public let layer: RegistryLayer
        public let tarsum: String?
        public let uncompressedSize: Int64?
    }

    /// Whether a lookup failed for another reason than a missing tag (said once).
    private let lookupFailed = LockedBox(false)
    /// Blobs whose bytes, downloaded from the repo, failed their digest or size check
    /// (twice, see `RegistryClient.downloadBlob`): `push` replaces them.
    private let corrupt = LockedBox<Set<Digest>>([])

    /// The blobs this build found corrupt in the repo.
    public var corruptBlobs: Set<Digest> { corrupt.get() }

    /// Looks one key up: a missing tag is a miss; so is any other failure (the cache
    /// only saves work), reported once per repo through `warn`.
    public func lookup(_ key: String, warn: @Sendable (String) -> Void) async -> Hit? {
        do {
            let m = try await client.manifest(repository: repository, reference: Self.tag(for: key))
            return hit(fromManifest: m.bytes, key: key)
        } catch let e as RegistryError where e.isNotFound {
            return nil
        } catch {
            if !lookupFailed.update({ old in defer { old = true }; return old }) {
                warn("cache repo \(name): cannot look layers up (\(error)); building them")
            }
            return nil
        }
    }

    /// A key's manifest as a hit, or nil when it is not a Kiln layer-cache artifact
    /// for that key with a well-formed diffID.
    func hit(fromManifest bytes: [UInt8], key: String) -> Hit? {
        guard let m = try? CanonicalJSON.decode(Manifest.self, from: bytes, what: "cache manifest"),
              m.artifactType == Self.artifactType, m.layers.count == 1,
              m.annotations?[Annotation.key] ?? key == key else { return nil }
        let d = m.layers[0]
        guard let a = d.annotations, let diffText = a[Annotation.diffID], let diffID = try? Digest(parsing: diffText),
              diffID.algorithm == "sha256", d.digest.algorithm == "sha256", d.size >= 0 else { return nil }
        var clean = d
        clean.annotations = nil
        let layer = RegistryLayer(descriptor: clean, diffID: diffID, spool: spool, registry: registry)
        return Hit(layer: layer, tarsum: a[Annotation.tarsum], uncompressedSize: a[Annotation.uncompressedSize].flatMap { Int64($0) })
    }

    /// Downloads a hit's blob, verified against its digest and size; a blob that fails
    /// (tampered with, gone) is nil, with a line through `warn`: its layer is built instead.
    public func fetch(_ hit: Hit, warn: @Sendable (String) -> Void) async -> Hit? {
        do {
            _ = try await spool.localFile(hit.layer.descriptor)
            return hit
        } catch {
            if let e = error as? RegistryError, e.isVerificationFailure {
                corrupt.update { _ = $0.insert(hit.layer.descriptor.digest) }
            }
            warn("cache repo \(name): layer \(hit.layer.descriptor.digest) failed verification (\(error)); building it")
            return nil
        }
    }

    /// A layer to put in the repo.
    public struct Entry: Sendable {
        public var key: String
        public var descriptor: Descriptor
        public var diffID: Digest
        public var tarsum: String?
        public var uncompressedSize: Int64
        /// The blob, as a local file.
        public var path: String
        /// The repo was not asked for this key (a layer the local cache had): `push`
        /// asks first (`HEAD` of its tag) and leaves it be when the repo has it.
        public var mayBeInRepo: Bool

        public init(key: String, descriptor: Descriptor, diffID: Digest, tarsum: String?, uncompressedSize: Int64, path: String,
                    mayBeInRepo: Bool = false) {
            self.key = key
            self.descriptor = descriptor
            self.diffID = diffID
            self.tarsum = tarsum
            self.uncompressedSize = uncompressedSize
            self.path = path
            self.mayBeInRepo = mayBeInRepo
        }
    }

    /// The artifact manifest of an entry.
    static func manifest(for e: Entry) throws -> [UInt8] {
        var annotations = [Annotation.diffID: e.diffID.description, Annotation.uncompressedSize: String(e.uncompressedSize)]
        if let t = e.tarsum { annotations[Annotation.tarsum] = t }
        let layer = Descriptor(mediaType: e.descriptor.mediaType, digest: e.descriptor.digest, size: e.descriptor.size,
                               annotations: annotations)
        var m = Manifest(mediaType: MediaType.ociManifest, config: emptyConfig, layers: [layer],
                         annotations: [Annotation.key: e.key])
        m.artifactType = artifactType
        return try CanonicalJSON.encode(m)
    }

    /// Pushes `entries`, a few at a time: each blob (skipped when the repo has it,
    /// mounted from `mountFrom` when the build just pushed it there; one this build
    /// found corrupt in the repo is replaced, `replaceCorrupt`), then its manifest under
    /// its key's tag. An entry that `mayBeInRepo` is skipped when its tag is there
    /// already (one `HEAD`). `pushed` is told each tag as it is written; `warn` gets
    /// what could not be repaired. Returns how many entries were pushed.
    @discardableResult
    public func push(_ entries: [Entry], mountFrom: String?, warn: @escaping @Sendable (String) -> Void = { _ in },
                     pushed: @escaping @Sendable (Entry) -> Void) async throws -> Int {
        let client = self.client, repo = repository
        let missing = try await forEach(entries) { e -> Entry? in
            guard e.mayBeInRepo else { return e }
            return try await client.manifestDigest(repository: repo, reference: Self.tag(for: e.key)) == nil ? e : nil
        }.compactMap { $0 }
        guard !missing.isEmpty else { return 0 }
        let bad = corrupt.get()
        _ = try await client.pushBlob(repository: repo, descriptor: Self.emptyConfig) { BufferReader(Array("{}".utf8)) }
        _ = try await forEach(missing) { e in
            if bad.contains(e.descriptor.digest) {
                try await self.replaceCorrupt(e, warn: warn)
            } else {
                _ = try await client.pushBlob(repository: repo, descriptor: e.descriptor, mountFrom: mountFrom) {
                    try FileReader(path: e.path)
                }
            }
            try await client.putManifest(repository: repo, reference: Self.tag(for: e.key),
                                         bytes: try Self.manifest(for: e), mediaType: MediaType.ociManifest)
            pushed(e)
        }
        client.options.progress.close()
        return missing.count
    }

    /// `body` for each entry, `client.options.parallelism` at a time; the results in order.
    private func forEach<R: Sendable>(_ entries: [Entry], _ body: @escaping @Sendable (Entry) async throws -> R) async throws -> [R] {
        var out = [R?](repeating: nil, count: entries.count)
        try await withThrowingTaskGroup(of: (Int, R).self) { group in
            var next = 0
            func add() {
                let i = next, e = entries[i]
                next += 1
                group.addTask { (i, try await body(e)) }
            }
            let limit = max(1, client.options.parallelism)
            while next < min(limit, entries.count) { add() }
            while let (i, r) = try await group.next() {
                out[i] = r
                if next < entries.count { add() }
            }
        }
        return out.map { $0! }
    }

    /// Gives the repo the good bytes of a blob this build downloaded corrupt from it. A
    /// registry keeps the bytes it stored under a digest (distribution's upload of a
    /// digest it has stores nothing, `HEAD` says it exists), so the blob is deleted from
    /// the repository first (`DELETE`, when the registry allows it), uploaded, then
    /// downloaded again to see whether the registry now serves the right bytes:
    /// docker-registry only unlinks a deleted blob until its garbage collection runs,
    /// and then serves the old bytes again. What could not be repaired is one
    /// warning naming the blob; the push goes on (its layer is rebuilt by each build
    /// until the registry's storage is repaired).
    func replaceCorrupt(_ e: Entry, warn: @Sendable (String) -> Void) async throws {
        let d = e.descriptor
        guard try await client.deleteBlob(repository: repository, digest: d.digest) else {
            warn("warning: cache repo \(name): blob \(d.digest) is corrupt there and cannot be replaced: the registry does not allow deleting blobs (docker-registry: storage.delete.enabled); its layer is built by every build until the blob is removed")
            return
        }
        _ = try await client.pushBlob(repository: repository, descriptor: d) { try FileReader(path: e.path) }
        let check = spool.directory + "/check-" + d.digest.hex
        defer { unlink(check) }
        do {
            try await client.downloadBlob(repository: repository, descriptor: d, to: check)
            warn("cache repo \(name): replaced the corrupt blob \(d.digest)")
        } catch let error as RegistryError where error.isVerificationFailure {
            warn("warning: cache repo \(name): blob \(d.digest) is still corrupt after it was deleted and uploaded again (the registry keeps the bytes it first stored under a digest until its garbage collection runs); its layer is built by every build until the registry's storage is repaired")
        }
    }
}

extension RegistryError {
    /// A 404, or the spec's codes for a manifest or repository the registry lacks.
    var isNotFound: Bool {
        if case .notFound = self { return true }
        if case .http(let status, _, _, let codes) = self {
            return status == 404 || codes.contains(.manifestUnknown) || codes.contains(.nameUnknown)
        }
        return false
    }
}
