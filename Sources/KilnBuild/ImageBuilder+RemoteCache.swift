import KilnArchive
import KilnImage
import KilnOCI

/// A layer the local cache does not have, held back while a cache repo is asked for it
/// (`kiln build --cache-repo`, with `ImageBuilder.deferLayerMisses`): planning goes on
/// without building it; `ImageBuilder.resolveDeferred` later takes it from the repo or
/// builds it into the local cache. Until then it can still be written (it is the tree
/// layer), so anything that reads it early gets the right bytes. With
/// `ImageBuilder.shareLocalHits` a layer the local cache has is held back too
/// (`localHit`): only its portable key is computed, so that the push can give the
/// repo the layers it lacks that were built here before the repo was used.
public struct DeferredLayer: LayerProducer {
    public let layer: TreeLayer
    public let compression: Compression
    /// Its key in the local cache (`LayerCache.key`).
    public let localKey: String
    /// The local cache had it when the plan was made: the repo is not asked for it.
    public var localHit = false

    public var uncompressedSize: Int64 { layer.uncompressedSize }

    public func writeTar(to out: ByteWriter, tarsum: TarsumAccumulator?) throws {
        try layer.writeTar(to: out, tarsum: tarsum)
    }
}

/// A layer a cache repo has under a portable key: downloaded and verified (its
/// `localFile` is set), or left in the registry to be mounted by a push there.
public struct RemoteCacheHit: Sendable {
    public var layer: any StoredLayer
    public var tarsum: String?
    /// What the repo says the uncompressed tar's size is (checked against the plan).
    public var uncompressedSize: Int64?
    /// `HOST/REPO`, for what the build prints.
    public var source: String

    public init(layer: any StoredLayer, tarsum: String?, uncompressedSize: Int64?, source: String) {
        self.layer = layer
        self.tarsum = tarsum
        self.uncompressedSize = uncompressedSize
        self.source = source
    }
}

/// A layer this build made that a cache repo did not have, or one the local cache had
/// (`fromLocalCache`), which the repo may lack: what `--cache-repo` pushes.
public struct LayerForCacheRepo: Sendable {
    public var portableKey: String
    public var descriptor: Descriptor
    public var diffID: Digest
    public var tarsum: String?
    public var uncompressedSize: Int64
    /// The blob in the local cache.
    public var path: String
    /// Taken from the local cache, not built by this build: the repo was not asked for
    /// it, so the push first asks whether it has it (a `HEAD` of its tag).
    public var fromLocalCache = false
}

extension ImageBuilder {
    /// Whether this build can hold its cache misses back for a cache repo: it needs a
    /// local cache to build them into, and a runAsRoot script runs over the new
    /// layers' bytes (and keys its own cache by their local keys), so with one the
    /// layers are built as the plan goes.
    public var canDeferLayers: Bool { cache != nil && runAsRootScript == nil }

    /// The held-back layers of a planned image, each once, in order.
    public static func deferredLayers(of image: PendingImage) -> [DeferredLayer] {
        var seen = Set<String>()
        return image.layers.compactMap { input in
            guard case .produced(let p, _) = input, let d = p as? DeferredLayer, seen.insert(d.localKey).inserted else { return nil }
            return d
        }
    }

    /// What computes portable keys one layer at a time (`PortableKeys.key(for:)`), for
    /// callers that ask a cache repo for each layer as soon as its key is known.
    public func portableKeyer() -> PortableKeys {
        PortableKeys(keyer: PortableKeyer(staging: staging, memo: cache.map { ContentDigestMemo(cacheRoot: $0.root) }))
    }

    /// The image with every held-back layer settled: from the local cache if a
    /// concurrent build put it there meanwhile, else from the cache repo when `remote`
    /// has it under its portable key (a downloaded blob goes into the local cache too;
    /// one left in the registry is mounted by the push), else built into the local
    /// cache. Returns the image, how many layers came from the repo, and the layers
    /// built here, which the repo lacks, followed by those the local cache had whose
    /// portable key is known (`fromLocalCache`: the repo may have them or not).
    public func resolveDeferred(_ image: PendingImage, portableKeys: [String: String],
                                remote: [String: RemoteCacheHit]) throws -> (image: PendingImage, fromRepo: Int, built: [LayerForCacheRepo]) {
        guard let cache else { return (image, 0, []) }
        var out = image
        var fromRepo = 0
        var built: [LayerForCacheRepo] = []
        var shared: [LayerForCacheRepo] = []
        var settled: [String: LayerInput] = [:]
        for (i, input) in image.layers.enumerated() {
            guard case .produced(let p, _) = input, let d = p as? DeferredLayer else { continue }
            if let done = settled[d.localKey] {
                out.layers[i] = done
                continue
            }
            let portable = portableKeys[d.localKey]
            let result: LayerInput
            if let hit = cache.lookup(d.localKey) {
                result = .stored(hit)
                if let portable, let path = hit.localFile {
                    shared.append(LayerForCacheRepo(portableKey: portable, descriptor: hit.descriptor, diffID: hit.diffID,
                                                    tarsum: hit.tarsum, uncompressedSize: d.layer.uncompressedSize, path: path,
                                                    fromLocalCache: true))
                }
            } else if let portable, let hit = remote[portable], let taken = try take(hit, for: d) {
                result = taken
                fromRepo += 1
            } else {
                let stored = try cache.store(d.layer, compression: d.compression, key: d.localKey)
                // The files must be as they were when the plan stat'ed them (before they
                // were hashed): a file changed meanwhile would put this layer under a key
                // that names other bytes, for every machine to take.
                let unchanged = try cache.key(for: d.layer, compression: d.compression, staging: staging) == d.localKey
                if portable != nil, !unchanged {
                    notice("layer \(stored.descriptor.digest.description.prefix(19)): files changed while it was built; not shared through the cache repo")
                }
                if let portable, unchanged, let path = stored.localFile {
                    built.append(LayerForCacheRepo(portableKey: portable, descriptor: stored.descriptor, diffID: stored.diffID,
                                                   tarsum: stored.tarsum, uncompressedSize: d.layer.uncompressedSize, path: path))
                }
                result = .stored(stored)
            }
            settled[d.localKey] = result
            out.layers[i] = result
        }
        return (out, fromRepo, built + shared)
    }

    /// A cache repo's layer for `d`, when what the repo says about it fits the plan:
    /// the media type of the compression, the tar's size, and for a plain tar a diffID
    /// that is its digest. Anything else is not trusted: the layer is built.
    private func take(_ hit: RemoteCacheHit, for d: DeferredLayer) throws -> LayerInput? {
        let l = hit.layer
        let short = l.descriptor.digest.description.prefix(19)
        var problem: String?
        if l.descriptor.mediaType != layerMediaType(d.compression) {
            problem = "media type \(l.descriptor.mediaType), expected \(layerMediaType(d.compression))"
        } else if let size = hit.uncompressedSize, size != d.layer.uncompressedSize {
            problem = "an uncompressed size of \(size) bytes, expected \(d.layer.uncompressedSize)"
        } else if d.compression == .none, l.diffID != l.descriptor.digest || l.descriptor.size != d.layer.uncompressedSize {
            problem = "a plain tar whose diffID or size is not its own"
        }
        if let problem {
            notice("cache repo \(hit.source): layer \(short) has \(problem); building it")
            return nil
        }
        guard let file = l.localFile else {
            notice("layer \(short) from cache repo \(hit.source) (mounted)")
            return .stored(l)
        }
        let stored = try cache!.adopt(blobAt: file, descriptor: l.descriptor, diffID: l.diffID,
                                      uncompressedSize: d.layer.uncompressedSize, tarsum: hit.tarsum, key: d.localKey)
        notice("layer \(short) from cache repo \(hit.source)")
        return .stored(stored)
    }
}

/// Portable keys of held-back layers, one at a time, from any thread (each call reads
/// and hashes the layer's files: call it from a thread of its own, `OwnThread`). The
/// content digests it learns are kept in the local cache by `save`.
public struct PortableKeys: Sendable {
    let keyer: PortableKeyer

    public func key(for d: DeferredLayer) throws -> String {
        try keyer.key(for: d.layer, compression: d.compression)
    }

    /// Writes the content digests learnt; a failure only costs hashing next time.
    public func save() { try? keyer.memo?.save() }
}
