import ArgumentParser
import KilnArchive
import KilnRegistry

/// What `kiln push` and `kiln copy` do with uncompressed layers going to a registry:
/// compress them (gzip by default, as skopeo does), or keep everything as it is with
/// `--preserve-digests`. Compressed layers are remembered in the layer cache
/// (`--cache-dir`, `--no-cache`), so pushing the same archive again compresses nothing.
struct PushLayerFlags: ParsableArguments {
    @Option(name: .customLong("dest-compress-format"),
            help: "Compress uncompressed layers pushed to a registry with this: gzip or zstd (default gzip).")
    var compressFormat: LayerCompressFormat?

    @Flag(name: .customLong("preserve-digests"),
          help: "Push layers, config and manifest exactly as they are (no compression), or fail if that is impossible.")
    var preserveDigests = false

    @OptionGroup var cache: CacheOptions

    func validate() throws {
        if preserveDigests, let f = compressFormat {
            throw ValidationError("--preserve-digests keeps layers as they are; --dest-compress-format \(f.rawValue) would change them")
        }
    }

    /// The policy for a registry destination.
    func policy() throws -> PushLayerPolicy {
        if preserveDigests { return .preserveDigests }
        let compression: Compression = compressFormat == .zstd ? .zstd : .gzip
        let twins = try cache.open().map { try CompressedTwins(cacheRoot: $0.root) }
        return .compress(compression, twins: twins)
    }

    /// Whether a flag was given that only means something for a registry destination.
    var givenExplicitly: Bool { preserveDigests || compressFormat != nil }
}

enum LayerCompressFormat: String, ExpressibleByArgument, CaseIterable {
    case gzip, zstd
}

/// Prints a push's notice (what compression changed) on stderr (`--quiet` hides it).
let printPushNotice: @Sendable (String) -> Void = { line in
    cliLog.notice("\(line)")
}
