#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

/// A rebuild with nothing changed at the cost of a stat walk: the content layers a spec
/// planned to, kept in the cache under a key made of everything the plan read — the
/// spec file's bytes, the name and tag, the times, the compression, the base's manifest
/// digest, Kiln's own executable, and a fingerprint of every host path the contents
/// name (path, device, inode, links, mode, owner, size, mtime and ctime of each entry
/// the walk meets, directories included, so a file added or removed changes it; as
/// git's index, a file cannot change without its ctime changing). On a hit the
/// planner builds no file tree and no tar header; the layers come from the layer cache
/// as they are.
///
/// Not used (the plan is made as always) for what a stat walk cannot vouch for:
/// `closure:` items (the dynamic loader's search reads files the walk does not see),
/// `swift:` items (only `swift build` knows whether the product is up to date),
/// `packages` (their own cache keys by digest), `created: now`, and the first pass of a
/// shared-cache build. `extraCommands` counts as a function of its script and of the
/// tree it runs on.
extension ImageBuilder {
    struct PlanRecord: Codable {
        struct Layer: Codable {
            var descriptor: Descriptor
            var diffID: Digest
            var tarsum: String?
        }
        var layers: [Layer]
        var hasContents: Bool
        /// The content layers' provenance, so a build from the plan describes its layers
        /// as the cold build did (a record without it is a miss).
        var provenance: [Provenance.Layer]?
    }

    /// The plan cache key, or nil when the spec's plan cannot be vouched for by a stat walk.
    func planCacheKey(base: BaseImage?, created: (epoch: Int64, text: String), mtime: (epoch: Int64, text: String)) throws -> String? {
        guard cache != nil, !deferLayerMisses, packages?.packages.isEmpty ?? true, spec.packages.isEmpty,
              !spec.contents.contains(where: { $0.kind == .closure || $0.kind == .swift }),
              case .fixed = spec.created, case .fixed = spec.effectiveMtime,
              let specBytes = try? FileReader(path: spec.path).readAll(limit: 16 << 20),
              let exe = Self.statLine("/proc/self/exe", follow: true) else { return nil }
        var h = SHA256Hasher()
        func add(_ s: String) { h.update(Array(s.utf8)); h.update([0]) }
        add("kiln-plan-v1")
        add(exe)
        add(spec.path)
        h.update(specBytes)
        add(spec.name)
        add(spec.tag ?? "")
        add(created.text)
        add(String(mtime.epoch))
        add((layerCompression ?? compression).encoderIdentity)
        add(base.map { "\($0.image.manifestDigest)" } ?? "no base")
        for item in spec.contents {
            add("\(item.kind) \(item.path) \(item.target ?? "") \(item.onConflict?.rawValue ?? "") \(item.isolate)")
            switch item.kind {
            case .directory, .source:
                try Self.fingerprint(item.path, into: &h)
            case .archive:
                guard let line = Self.statLine(item.path, follow: true) else { return nil }
                add(line)
            case .closure, .swift:
                return nil
            }
        }
        return h.finalize().hex
    }

    /// The layers of a plan made before, when its record and every blob are still there.
    func cachedPlan(_ key: String) -> (layers: [LayerInput], hasContents: Bool, provenance: [Provenance.Layer])? {
        guard let cache, let bytes = try? FileReader(path: Self.planPath(cache, key)).readAll(limit: 64 << 20),
              let record = try? CanonicalJSON.decode(PlanRecord.self, from: bytes, what: key),
              let provenance = record.provenance else { return nil }
        var layers: [LayerInput] = []
        for l in record.layers {
            let blob = cache.blobPath(l.descriptor.digest)
            var st = stat()
            guard stat(blob, &st) == 0, Int64(st.st_size) == l.descriptor.size else { return nil }
            layers.append(.stored(CachedLayer(descriptor: l.descriptor, diffID: l.diffID, path: blob, tarsum: l.tarsum)))
        }
        // Touched, so `cache prune` keeps what is in use.
        utimes(Self.planPath(cache, key), nil)
        LayerCache.notePlanHit(key, layers: layers.count)
        return (layers, record.hasContents, provenance)
    }

    /// Records the plan's layers when every one of them is in the layer cache.
    func storePlan(_ key: String, layers: [LayerInput], hasContents: Bool, provenance: [Provenance.Layer]) {
        guard let cache else { return }
        var out: [PlanRecord.Layer] = []
        for input in layers {
            guard case .stored(let stored) = input, let c = stored as? CachedLayer else { return }
            out.append(PlanRecord.Layer(descriptor: c.descriptor, diffID: c.diffID, tarsum: c.tarsum))
        }
        guard let bytes = try? CanonicalJSON.encode(PlanRecord(layers: out, hasContents: hasContents, provenance: provenance)) else { return }
        try? FileSystem.makeDirectories(cache.root + "/plans")
        // A plan that cannot be kept is only a slower next build.
        try? FileSystem.writeAtomically(bytes, to: Self.planPath(cache, key))
    }

    static func planPath(_ cache: LayerCache, _ key: String) -> String { "\(cache.root)/plans/\(key).json" }

    /// `path`'s identity and metadata as one line; nil when it cannot be read.
    static func statLine(_ path: String, follow: Bool) -> String? {
        var st = stat()
        guard (follow ? stat(path, &st) : lstat(path, &st)) == 0 else { return nil }
        return "\(st.st_dev) \(st.st_ino) \(st.st_nlink) \(st.st_mode) \(st.st_uid) \(st.st_gid) \(st.st_size) "
            + "\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }

    /// Hashes the stat line of `path` (followed, as the planner resolves an item's own
    /// path) and of everything below it (not followed, as the planner stores symlinks),
    /// in sorted order. A path that cannot be read hashes as such: the real plan then
    /// reports it.
    static func fingerprint(_ path: String, into h: inout SHA256Hasher) throws {
        func visit(_ p: String, follow: Bool) {
            let line = statLine(p, follow: follow) ?? "unreadable"
            h.update(Array(p.utf8)); h.update([0]); h.update(Array(line.utf8)); h.update([0])
            var st = stat()
            guard (follow ? stat(p, &st) : lstat(p, &st)) == 0, st.st_mode & S_IFMT == S_IFDIR,
                  let names = try? FileSystem.listDirectory(p) else { return }
            for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                visit(p + "/" + name, follow: false)
            }
        }
        visit(path, follow: true)
    }
}
