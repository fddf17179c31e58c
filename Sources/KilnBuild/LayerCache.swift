#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import Logging
import KilnImage
import KilnOCI

/// Built layers by the digest of their inputs, so a rebuild redoes only what changed.
///
/// A layer's key covers every tar header it will have (names, modes, owners, mtimes,
/// link targets, xattrs) and the identity of every file's content: device, inode, size,
/// mtime and ctime of host files (as git's index does: a file cannot change without its
/// ctime changing), the digest of generated and unpacked bytes, and the compression with
/// its library's version (`Compression.encoderIdentity`).
/// A hit is not re-read, re-tarred, re-hashed or re-compressed.
///
/// Layout under the root (default `$XDG_CACHE_HOME/kiln`):
/// `layers/<key>.json` (the layer's descriptor, diffID and tarsum) and
/// `blobs/sha256/<hex>`. Everything is written to a temporary name, synced and renamed,
/// so a build killed at any moment leaves no entry behind that looks valid; entries
/// are checked (the blob exists with its recorded size) before use. Builds hold a
/// shared lock, `prune` an exclusive one.
public final class LayerCache: @unchecked Sendable {
    public let root: String
    private let lockFD: Int32

    public init(root: String) throws {
        self.root = root
        for d in ["", "/layers", "/blobs/sha256", "/tmp"] {
            try FileSystem.makeDirectories(root + d)
        }
        lockFD = open(root + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockFD >= 0 else { throw BuildError("cache \(root): cannot open its lock: \(String(cString: strerror(errno)))") }
        flock(lockFD, LOCK_SH)
    }

    deinit { close(lockFD) }

    /// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`.
    public static func defaultRoot(environment: [String: String]) -> String {
        if let x = environment["XDG_CACHE_HOME"], x.hasPrefix("/") { return x + "/kiln" }
        return (environment["HOME"] ?? "/root") + "/.cache/kiln"
    }

    /// What a cache entry records.
    struct Entry: Codable {
        var descriptor: Descriptor
        var diffID: Digest
        var uncompressedSize: Int64
        /// Only for uncompressed layers, which docker-archives store with their tarsum.
        var tarsum: String?
    }

    /// The cache key of a layer about to be built.
    public func key(for layer: TreeLayer, compression: Compression, staging: Staging?) throws -> String {
        var h = SHA256Hasher()
        h.update(Array("kiln-layer-v1 \(compression.encoderIdentity) \(layer.metadataDigest)\n".utf8))
        for e in layer.entries {
            switch e.source {
            case .host(let path, let size, _)?:
                if let digest = staging?.contentDigest(of: path) {
                    h.update(Array("digest \(digest)\n".utf8))
                } else {
                    var st = stat()
                    guard stat(path, &st) == 0 else { throw BuildError("cannot read \(path): \(String(cString: strerror(errno)))") }
                    h.update(Array("host \(path) \(st.st_dev) \(st.st_ino) \(size) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)\n".utf8))
                }
            case .inline(let bytes)?:
                h.update(Array("inline \(Digest.sha256(bytes))\n".utf8))
            case nil:
                break
            }
        }
        return h.finalize().hex
    }

    /// The cached layer for `key`, if there is a sound one (the decision is logged at
    /// `--log-level debug` and counted on the progress board).
    public func lookup(_ key: String) -> (any StoredLayer)? {
        let hit = entry(key)
        ProgressBoard.shared.cacheLookup(hit: hit != nil)
        cacheLog.debug("layer cache \(hit == nil ? "miss" : "hit") \(key.prefix(12))\(hit.map { ": \($0.descriptor.digest)" } ?? "")")
        return hit
    }

    private func entry(_ key: String) -> (any StoredLayer)? {
        let path = "\(root)/layers/\(key).json"
        guard let r = try? FileReader(path: path), let bytes = try? r.readAll(limit: 1 << 20),
              let entry = try? CanonicalJSON.decode(Entry.self, from: bytes, what: path) else { return nil }
        let blob = blobPath(entry.descriptor.digest)
        var st = stat()
        guard stat(blob, &st) == 0, Int64(st.st_size) == entry.descriptor.size else { return nil }
        // Touch the entry, so `prune` keeps what is in use.
        utimes(path, nil)
        return CachedLayer(descriptor: entry.descriptor, diffID: entry.diffID, path: blob, tarsum: entry.tarsum)
    }

    /// Produces the layer into the cache and returns it as a stored layer.
    public func store(_ layer: TreeLayer, compression: Compression, key: String) throws -> any StoredLayer {
        let tmp = "\(root)/tmp/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(tmp) }
        let file = try FileWriter(creating: tmp)
        let compressed = PipelinedHashingWriter(file)
        let uncompressed = PipelinedHashingWriter(compression.writer(compressed))
        let tarsum = compression == .none ? TarsumAccumulator() : nil
        try layer.writeTar(to: uncompressed, tarsum: tarsum)
        try uncompressed.finish()
        try file.sync()
        let descriptor = Descriptor(mediaType: layerMediaType(compression), digest: compressed.digest, size: compressed.count)
        let blob = blobPath(descriptor.digest)
        // Named points where tests kill the build (see `testPauseHook`), one per state
        // the cache can be left in: the blob written but not in place, in place without
        // its entry, the entry written but not in place.
        if let hook = testPauseHook, hook == "cache-blob-written" { testPause(hook) }
        guard rename(tmp, blob) == 0 else { throw BuildError("cache: cannot store \(blob): \(String(cString: strerror(errno)))") }
        if let hook = testPauseHook, hook == "cache-blob-stored" { testPause(hook) }
        let entry = Entry(descriptor: descriptor, diffID: uncompressed.digest, uncompressedSize: uncompressed.count,
                          tarsum: tarsum?.finish())
        let meta = try CanonicalJSON.encode(entry)
        let metaTmp = tmp + ".json"
        defer { unlink(metaTmp) }
        let w = try FileWriter(creating: metaTmp)
        try w.write(meta)
        try w.sync()
        if let hook = testPauseHook, hook == "cache-entry-written" { testPause(hook) }
        guard rename(metaTmp, "\(root)/layers/\(key).json") == 0 else {
            throw BuildError("cache: cannot store \(key): \(String(cString: strerror(errno)))")
        }
        return CachedLayer(descriptor: descriptor, diffID: entry.diffID, path: blob, tarsum: entry.tarsum)
    }

    /// Runs `body` holding the cache's exclusive lock (no build is running meanwhile),
    /// then returns to the shared one.
    public func withExclusiveLock<T>(_ body: () throws -> T) rethrows -> T {
        flock(lockFD, LOCK_EX)
        defer { flock(lockFD, LOCK_SH) }
        return try body()
    }

    /// Also removes the runAsRoot base snapshots unused for `olderThan` seconds and the
    /// leftovers of interrupted extractions (see `BaseSnapshots`). Returns the bytes freed.
    public func pruneSnapshots(olderThan: Int64) throws -> Int64 {
        try withExclusiveLock { try BaseSnapshots.prune(cacheRoot: root, olderThan: olderThan) }
    }

    func blobPath(_ d: Digest) -> String { "\(root)/blobs/\(d.algorithm)/\(d.hex)" }

    /// Removes temporary leftovers of killed builds, entries, plans, base listings and
    /// provenance documents unused for `olderThan` seconds (all of them with 0), and blobs
    /// no entry refers to. Waits for running builds to finish. Returns the bytes freed.
    @discardableResult
    public func prune(olderThan: Int64) throws -> Int64 {
        flock(lockFD, LOCK_EX)
        defer { flock(lockFD, LOCK_SH) }
        var freed: Int64 = 0
        func remove(_ p: String) {
            var st = stat()
            if lstat(p, &st) == 0 && unlink(p) == 0 { freed += Int64(st.st_size) }
        }
        for n in try FileSystem.listDirectory(root + "/tmp") { remove(root + "/tmp/" + n) }
        let now = Int64(time(nil))
        var live = Set<String>()
        for n in try FileSystem.listDirectory(root + "/layers") {
            let p = root + "/layers/" + n
            var st = stat()
            guard lstat(p, &st) == 0 else { continue }
            if now - Int64(st.st_mtim.tv_sec) >= olderThan {
                remove(p)
            } else if let bytes = try? FileReader(path: p).readAll(limit: 1 << 20),
                      let e = try? CanonicalJSON.decode(Entry.self, from: bytes, what: p) {
                live.insert(e.descriptor.digest.hex)
            } else {
                remove(p)
            }
        }
        for n in try FileSystem.listDirectory(root + "/blobs/sha256") where !live.contains(n) {
            remove(root + "/blobs/sha256/" + n)
        }
        // Leftovers of interrupted pushes, then plans (ImageBuilder+PlanCache), base
        // listings (BaseListing), compressed twins of pushed layers (KilnRegistry's
        // CompressedTwins) and images' provenance documents (LayerCache+Provenance)
        // unused for as long: all but the last are made again when needed, and a
        // document is written again by the next build of its image.
        for n in (try? FileSystem.listDirectory(root + "/compressed/tmp")) ?? [] { remove(root + "/compressed/tmp/" + n) }
        for dir in ["plans", "base-listings", "compressed/entries", "compressed/blobs", "provenance"] {
            for n in (try? FileSystem.listDirectory(root + "/" + dir)) ?? [] {
                let p = root + "/" + dir + "/" + n
                var st = stat()
                if lstat(p, &st) == 0, now - Int64(st.st_mtim.tv_sec) >= olderThan { remove(p) }
            }
        }
        return freed
    }
}

/// A layer blob in the cache.
struct CachedLayer: StoredLayer {
    let descriptor: Descriptor
    let diffID: Digest
    let path: String
    let tarsum: String?
    func openBlob() throws -> ByteReader { try FileReader(path: path) }
    var localFile: String? { path }
}

/// Cache decisions (`--log-level debug`), created on first use.
let cacheLog = Logger(label: "kiln.cache")

extension LayerCache {
    /// A plan cache hit: its layers are taken from the cache without a lookup each.
    static func notePlanHit(_ key: String, layers: Int) {
        for _ in 0..<layers { ProgressBoard.shared.cacheLookup(hit: true) }
        cacheLog.debug("plan cache hit \(key.prefix(12)): \(layers) layer\(layers == 1 ? "" : "s") from the cache")
    }
}
