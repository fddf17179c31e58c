import ArgumentParser
import Foundation
import KilnBuild

/// `--cache-dir` and `--no-cache`, shared by the commands that build layers (build,
/// lock) or compress them (copy and push, `PushLayerFlags`).
struct CacheOptions: ParsableArguments {
    @Option(help: "The layer cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).")
    var cacheDir: String?

    @Flag(help: "Use no layer cache: build (for copy and push, compress) every layer afresh and keep nothing.")
    var noCache = false

    /// The cache to use. An explicit directory must work; when the default one cannot
    /// be used (a read-only home, say) the build goes on without it, saying so once.
    func open() throws -> LayerCache? {
        if noCache { return nil }
        if let cacheDir { return try LayerCache(root: cacheDir) }
        let root = LayerCache.defaultRoot(environment: ProcessInfo.processInfo.environment)
        do {
            return try LayerCache(root: root)
        } catch {
            cliLog.warning("building without a layer cache: \(error)")
            return nil
        }
    }
}

struct CacheCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Manage the layer cache.",
        subcommands: [Prune.self])

    @OptionGroup var global: GlobalOptions

    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove cache entries, images' provenance documents and runAsRoot base snapshots unused for a while, leftovers of interrupted builds, and unreferenced blobs.",
            discussion: "Waits for running builds to finish. Example: kiln cache prune --older-than 7d")

        @Option(help: "Remove entries unused for this long: 30m, 12h, 7d (default 7d).")
        var olderThan: String = "7d"

        @Flag(help: "Remove every entry.")
        var all = false

        @Option(help: "The layer cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln).")
        var cacheDir: String?

        @OptionGroup var global: GlobalOptions

        mutating func run() throws {
            try reportingErrors {
                let seconds: Int64
                if all {
                    seconds = 0
                } else {
                    guard let unit = olderThan.last, let n = Int64(olderThan.dropLast()),
                          let mult = ["s": 1, "m": 60, "h": 3600, "d": 86400][String(unit)] else {
                        throw ValidationError("--older-than takes a number and a unit: 30m, 12h or 7d")
                    }
                    seconds = n * Int64(mult)
                }
                let root = cacheDir ?? LayerCache.defaultRoot(environment: ProcessInfo.processInfo.environment)
                let cache = try LayerCache(root: root)
                let freed = try cache.prune(olderThan: seconds) + cache.pruneSnapshots(olderThan: seconds)
                print("freed \(freed) bytes in \(root)")
            }
        }
    }
}
