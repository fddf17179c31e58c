import ArgumentParser
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
    let (planned, keys) = try await OwnThread.run("kiln-plan") {
        let report = try builder.value.planReport()
        return (HandOff(report), try builder.value.portableKeys(of: ImageBuilder.deferredLayers(of: report.image)))
    }
    var hits = keys.isEmpty ? [:] : await repo.lookup(Array(keys.values), warn: notice)
    // Pushing to the repo's registry: the push mounts the layers, no byte comes here.
    if pushTo?.registry != repo.registry { hits = await repo.fetch(hits, warn: notice) }
    let remote = hits.mapValues {
        RemoteCacheHit(layer: $0.layer, tarsum: $0.tarsum, uncompressedSize: $0.uncompressedSize, source: repo.name)
    }
    let (report, fromRepo, built) = try await OwnThread.run("kiln-layers") {
        var report = planned.value
        let resolved = try builder.value.resolveDeferred(report.image, portableKeys: keys, remote: remote)
        report.image = resolved.image
        return (HandOff(report), resolved.fromRepo, resolved.built)
    }
    if !keys.isEmpty {
        notice("cache repo \(repo.name): \(fromRepo) layer\(fromRepo == 1 ? "" : "s") from the repo, \(built.count) built")
    }
    return (report, built)
}

/// Pushes the layers this build made to the cache repo, after the build succeeded. A
/// failure is a warning: the image is built; the next build pushes them again.
func pushToCacheRepo(_ repo: CacheRepo, _ built: [LayerForCacheRepo], mountFrom: String?) async {
    guard !built.isEmpty else { return }
    let entries = built.map {
        CacheRepo.Entry(key: $0.portableKey, descriptor: $0.descriptor, diffID: $0.diffID, tarsum: $0.tarsum,
                        uncompressedSize: $0.uncompressedSize, path: $0.path)
    }
    do {
        try await repo.push(entries, mountFrom: mountFrom) { _ in }
        notice("cache repo \(repo.name): pushed \(entries.count) layer\(entries.count == 1 ? "" : "s")")
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
