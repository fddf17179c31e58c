import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI

/// `--cache-dir` for the commands that read what builds kept in the layer cache
/// (`kiln inspect --files`, `kiln report`: the images' provenance documents).
struct CacheDirOption: ParsableArguments {
    @Option(help: ArgumentHelp("The layer cache, where kiln build keeps each image's provenance (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).", valueName: "path"))
    var cacheDir: String?

    /// The cache's root, whether it exists or not (nothing is created to read it).
    var root: String {
        cacheDir ?? LayerCache.defaultRoot(environment: ProcessInfo.processInfo.environment)
    }
}

extension Build {
    /// Keeps each built image's provenance document in the layer cache, by its config
    /// digest (LayerCache+Provenance.swift), for any output (docker-archive and --stream
    /// too) and with no flag: `kiln inspect --files` and `kiln report` read it from
    /// there. Nothing with --no-cache. A document that cannot be kept is a warning, not a
    /// failed build (the image is written); a default cache that cannot be opened was
    /// said once already (`CacheOptions.open`).
    func keepProvenanceInCache(_ built: [BuiltImage]) async {
        guard !cacheOptions.noCache else { return }
        let docs = built.compactMap { b in b.report.provenance(written: b.written).map { ($0, b.written.configDigest) } }
        guard !docs.isEmpty else { return }
        let (root, explicit) = (cacheOptions.cacheDir ?? LayerCache.defaultRoot(environment: ProcessInfo.processInfo.environment),
                                cacheOptions.cacheDir != nil)
        do {
            try await OwnThread.run("kiln-provenance") {
                let cache: LayerCache
                do { cache = try LayerCache(root: root) } catch where !explicit { return }
                for (doc, config) in docs { try cache.storeProvenance(doc, configDigest: config) }
            }
        } catch {
            cliLog.warning("provenance not kept in the cache \(root): \(error)")
        }
    }
}

/// The provenance document `kiln build` kept in the layer cache at `root` for `image`
/// (found by its config digest), its digests set to the image's own (the same config may
/// be a docker-archive's plain layers or a layout's compressed ones). Nil when there is
/// none; a document that cannot be read, or describes other layers than the image's
/// (diffIDs compared one by one), is ignored with a notice.
func cachedProvenance(root: String, image: SourceImage) -> Provenance? {
    let config = Digest.sha256(image.configBytes)
    let path = LayerCache.provenancePath(root: root, configDigest: config)
    do {
        guard var doc = try LayerCache.storedProvenance(root: root, configDigest: config) else { return nil }
        guard doc.layers.map(\.diffID) == image.layers.map({ Optional($0.diffID) }) else {
            notice("\(path): describes other layers than those of the image; ignored (files are named by layer)")
            return nil
        }
        doc.manifestDigest = image.manifestDigest
        for i in doc.layers.indices { doc.layers[i].digest = image.layers[i].descriptor.digest }
        return doc
    } catch {
        notice("the provenance kept in the cache is ignored (files are named by layer): \(error)")
        return nil
    }
}
