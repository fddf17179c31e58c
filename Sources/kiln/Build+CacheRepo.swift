import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

/// `--cache-repo` and `--cache-repo-readonly` of `kiln build`.
struct CacheRepoOptions: ParsableArguments {
    @Option(help: "Share built layers through this registry repository (docker://HOST/REPO): take the layers it has, push the ones built here.")
    var cacheRepo: String?

    @Flag(help: "With --cache-repo: take layers from it but push nothing (for untrusted builds such as pull requests).")
    var cacheRepoReadonly = false

    /// The repository, which names no tag or digest: the tags are the cache's own.
    func reference() throws -> RegistryReference? {
        guard let cacheRepo else {
            if cacheRepoReadonly { throw ValidationError("--cache-repo-readonly needs --cache-repo") }
            return nil
        }
        guard cacheRepo.hasPrefix("docker://") else {
            throw ValidationError("--cache-repo: \(cacheRepo): expected docker://HOST/REPO")
        }
        let ref: RegistryReference
        do { ref = try RegistryReference(parsing: cacheRepo) } catch { throw ValidationError("--cache-repo: \(error)") }
        let last = cacheRepo.split(separator: "/").last ?? ""
        if ref.digest != nil || last.contains(":") {
            throw ValidationError("--cache-repo: \(cacheRepo): a repository, without a tag or digest (Kiln tags its entries kiln-cache-<key>)")
        }
        return ref
    }
}

/// Plans the image. With a cache repo, the layers the local cache lacks are held back
/// while the plan is made (a pipeline stretch), looked up in the repo by portable key
/// and their blobs downloaded and verified (network, awaited here; not downloaded when
/// the push goes to the repo's registry, which mounts them), then taken into the local
/// cache or built there (another pipeline stretch). Returns the report and the layers
/// built here, which the repo lacks.
func planImage(_ plan: ImageBuilder, cacheRepo: CacheRepo?, pushTo: RegistryReference?) async throws
    -> (report: HandOff<BuildReport>, built: [LayerForCacheRepo]) {
    let builder = HandOff(plan)
    guard let repo = cacheRepo, plan.deferLayerMisses else {
        let report = try await OwnThread.run("kiln-plan") { HandOff(try builder.value.planReport()) }
        return (report, [])
    }
    let (planned, deferred) = try await OwnThread.run("kiln-plan") {
        let report = try builder.value.planReport()
        return (HandOff(report), ImageBuilder.deferredLayers(of: report.image))
    }
    let (keys, hits) = try await lookUpLayers(deferred, keyer: plan.portableKeyer(), repo: repo,
                                              download: pushTo?.registry != repo.registry)
    let remote = hits.mapValues {
        RemoteCacheHit(layer: $0.layer, tarsum: $0.tarsum, uncompressedSize: $0.uncompressedSize, source: repo.name)
    }
    let (report, fromRepo, built) = try await OwnThread.run("kiln-layers") {
        var report = planned.value
        let resolved = try builder.value.resolveDeferred(report.image, portableKeys: keys, remote: remote)
        report.image = resolved.image
        return (HandOff(report), resolved.fromRepo, resolved.built)
    }
    // Layers the local cache had are not looked up: the line is about those it lacked.
    if deferred.contains(where: { !$0.localHit }) {
        let n = built.filter { !$0.fromLocalCache }.count
        notice("cache repo \(repo.name): \(fromRepo) layer\(fromRepo == 1 ? "" : "s") from the repo, \(n) built")
    }
    return (report, built)
}

/// Each held-back layer's portable key (its files hashed on a thread of its own), looked
/// up in the repo and its blob downloaded as soon as the key is known, a few layers at
/// a time: the network for one layer overlaps the hashing of the next. With `download`
/// false (a push to the repo's registry, which mounts them) no blob is downloaded. A
/// layer the local cache has (`localHit`) only gets its key: the push asks the repo
/// about it afterwards.
/// Returns the keys by local key, and the hits by portable key.
func lookUpLayers(_ layers: [DeferredLayer], keyer: PortableKeys, repo: CacheRepo, download: Bool) async throws
    -> (keys: [String: String], hits: [String: CacheRepo.Hit]) {
    var keys: [String: String] = [:]
    var hits: [String: CacheRepo.Hit] = [:]
    try await withThrowingTaskGroup(of: (String, String, CacheRepo.Hit?).self) { group in
        var next = 0
        func add() {
            let d = layers[next]
            next += 1
            group.addTask {
                let key = try await OwnThread.run("kiln-hash") { try keyer.key(for: d) }
                guard !d.localHit else { return (d.localKey, key, nil) }
                guard let hit = await repo.lookup(key, warn: notice) else { return (d.localKey, key, nil) }
                return (d.localKey, key, download ? await repo.fetch(hit, warn: notice) : hit)
            }
        }
        let limit = max(4, 2 * ProcessInfo.processInfo.activeProcessorCount)
        while next < min(limit, layers.count) { add() }
        while let (local, key, hit) = try await group.next() {
            keys[local] = key
            if let hit { hits[key] = hit }
            if next < layers.count { add() }
        }
    }
    try await OwnThread.run("kiln-hash") { keyer.save() }
    return (keys, hits)
}

/// Pushes the layers this build made to the cache repo, after the build succeeded, and
/// those the local cache had that the repo lacks (a `HEAD` each: a machine that built
/// before the repo was used shares them too), each key once (platforms of one build
/// may share layers). A blob the build found corrupt in the repo is replaced. A
/// failure is a warning: the image is built; the next build pushes them again.
func pushToCacheRepo(_ repo: CacheRepo, _ built: [LayerForCacheRepo], mountFrom: String?) async {
    guard !built.isEmpty else { return }
    var byKey: [String: Int] = [:]
    var entries: [CacheRepo.Entry] = []
    for l in built {
        let e = CacheRepo.Entry(key: l.portableKey, descriptor: l.descriptor, diffID: l.diffID, tarsum: l.tarsum,
                                uncompressedSize: l.uncompressedSize, path: l.path, mayBeInRepo: l.fromLocalCache)
        if let i = byKey[l.portableKey] {
            // Built here by one platform beats found in the local cache by another.
            if !e.mayBeInRepo { entries[i] = e }
        } else {
            byKey[l.portableKey] = entries.count
            entries.append(e)
        }
    }
    do {
        let n = try await repo.push(entries, mountFrom: mountFrom, warn: notice) { _ in }
        if n > 0 { notice("cache repo \(repo.name): pushed \(n) layer\(n == 1 ? "" : "s")") }
    } catch {
        notice("warning: cache repo \(repo.name): could not push the layers built here: \(error)")
    }
}

/// A value handed from one pipeline stretch to the next: the plan and its report hold
/// the base image (a class), so they are not `Sendable`, but they are used by one
/// thread at a time, each stretch starting after the awaited one before it ended (the
/// await orders them) — the hand-over `OwnThread.run` itself does for its closure.
/// Never give one to two threads at once.
struct HandOff<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
