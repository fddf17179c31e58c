#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

extension ImageBuilder {
    /// The runAsRoot layer: from the layer cache when nothing the script sees has
    /// changed (as Docker's build cache skips an unchanged `RUN`), else the script run
    /// over the base's snapshots and the new layers, its changes scrubbed and stored.
    /// - Parameter newLayers: the layers of this build below the script (packages,
    ///   Kiln's generated files, contents), in order.
    func runAsRootLayer(script: String, base: BaseImage?, newLayers: [LayerInput], environment: [String],
                        mtime: Int64, location: String) throws -> LayerInput {
        let c = layerCompression ?? compression
        let key = spec.runAsRootCache ? try runAsRootKey(script: script, base: base, newLayers: newLayers,
                                                         environment: environment, mtime: mtime, compression: c) : nil
        if let cache, let key, let hit = cache.lookup(key) {
            notice("runAsRoot: layer \(hit.descriptor.digest.hex.prefix(12)) from the cache (the script did not run; --no-cache or runAsRootCache: false runs it again)")
            return .stored(hit)
        }

        let snapshots = try BaseSnapshots(cacheRoot: cache?.root, staging: staging, limits: base?.limits ?? RootfsLimits())
        let maxLowers = ImageBuilder.maxBaseLowers(snapshotDirectory: snapshots.dir, staging: staging)
        let baseLowers = try snapshots.lowers(for: base?.image.layers ?? [], maxLowers: maxLowers,
                                              what: base.map { "fromImage: \($0.reference)" } ?? "base")
        var lowers = baseLowers
        if !newLayers.isEmpty {
            lowers.append(try newLayersDirectory(newLayers, below: baseLowers.reversed().map { snapshots.dir + "/" + $0 },
                                                 userns: snapshots.userns))
        }
        if lowers.isEmpty {
            let empty = staging.newPath("empty")
            guard mkdir(empty, 0o755) == 0 else { throw BuildError("cannot create \(empty): \(errnoText())") }
            lowers = [empty]
        }
        var sandbox = RunAsRoot(script: script, network: spec.runAsRootNetwork, environment: environment, location: location)
        sandbox.scrub = spec.scrub
        let changes = try sandbox.run(lowers: lowers, mountDirectory: snapshots.dir, staging: staging)
        let layer = try TreeLayer(tree: changes, mtime: mtime)
        if let cache, let key { return .stored(try cache.store(layer, compression: c, key: key)) }
        return .produced(layer, compression)
    }

    /// How many base snapshots one overlay mount can stack: the kernel's limit, less one
    /// for the new layers and one for mount points, and what fits in the option page
    /// with names relative to the snapshot directory. `KILN_TEST_MAX_LOWERS` lowers it
    /// (tests of the merged snapshot).
    static func maxBaseLowers(snapshotDirectory: String, staging: Staging) -> Int {
        // "root-chain-<64 hex>/root:" and its rootless twin, the longest names.
        let perLayer = "u4294967295-chain-".utf8.count + 64 + "/root:".utf8.count
        // upperdir, workdir, the new layers and mount points (staging paths), the flags.
        let fixed = 4 * (staging.path.utf8.count + 24) + 120
        var n = min(BaseSnapshots.kernelMaxStack - 2, (4000 - fixed) / perLayer)
        if let s = getenv("KILN_TEST_MAX_LOWERS"), let v = Int(String(cString: s)), v >= 1 { n = min(n, v) }
        return max(1, n)
    }

    /// The new layers applied into one directory of the staging area, whiteouts kept as
    /// overlayfs ones (so they hide base files).
    private func newLayersDirectory(_ layers: [LayerInput], below: [String], userns: Bool) throws -> String {
        let dir = staging.newPath("new-layers")
        guard mkdir(dir, 0o755) == 0 else { throw BuildError("cannot create \(dir): \(errnoText())") }
        let writer = try SnapshotWriter(root: dir, below: below, userns: userns)
        for (i, input) in layers.enumerated() {
            let what = "new layer \(i + 1) of \(layers.count)"
            switch input {
            case .stored(let stored):
                _ = try writer.apply(tar: try stored.openUncompressed(), what: what, maxEntrySize: RootfsLimits.defaultMaxLayerSize)
            case .produced(let producer, _):
                let tarPath = staging.newPath("contents.tar")
                let file = try FileWriter(creating: tarPath, mode: 0o600)
                try producer.writeTar(to: file, tarsum: nil)
                _ = try writer.apply(tar: try FileReader(path: tarPath), what: what, maxEntrySize: RootfsLimits.defaultMaxLayerSize)
                unlink(tarPath)
            }
        }
        try writer.finish()
        return dir
    }

    /// The runAsRoot layer's cache key: everything the script sees and everything that
    /// makes the layer's bytes, nothing read from the base (its chain ID comes from the
    /// config's diffIDs). Nil when there is no cache or a new layer has no identity
    /// known without producing it.
    func runAsRootKey(script: String, base: BaseImage?, newLayers: [LayerInput], environment: [String],
                      mtime: Int64, compression c: Compression) throws -> String? {
        guard let cache else { return nil }
        var h = SHA256Hasher()
        func line(_ s: String) { h.update(Array((s + "\n").utf8)) }
        line("kiln-runasroot-v1 sandbox \(RunAsRoot.sandboxVersion)")
        line(geteuid() == 0 ? "root" : "userns \(IDMap.current().description)")
        line("base \(base.flatMap { b in Digest.chainIDs(b.image.layers.map(\.diffID)).last?.description } ?? "none")")
        for input in newLayers {
            switch input {
            case .stored(let s):
                line("layer \(s.diffID)")
            case .produced(let producer, let pc):
                guard let tree = producer as? TreeLayer else { return nil }
                line("produced \(try cache.key(for: tree, compression: pc, staging: staging))")
            }
        }
        line("script \(Digest.sha256(Array(script.utf8)))")
        line("network \(spec.runAsRootNetwork)")
        line("env \(environment.count)")
        for e in environment { line("env \(Digest.sha256(Array(e.utf8)))") }
        line("scrub \(spec.scrub)")
        line("mtime \(mtime) compression \(c.rawValue)")
        return "runasroot-" + h.finalize().hex
    }
}
