import ArgumentParser
import KilnImage

/// `--max-layer-size`, on every command that decompresses layers from elsewhere
/// (`build` for its base, `copy` and `pull` into a docker-archive, `export`): the guard
/// against decompression bombs, raised for images with genuinely huge layers.
struct LayerLimitOptions: ParsableArguments {
    @Option(help: "The most bytes one layer may decompress to, e.g. 512M or 100G (default 64G).")
    var maxLayerSize: ByteSize = ByteSize(RootfsLimits.defaultMaxLayerSize)
}

/// A byte count with an optional binary suffix: 512M, 100G, 4KiB.
struct ByteSize: ExpressibleByArgument {
    var bytes: Int64

    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        var s = Substring(argument.uppercased())
        if s.hasSuffix("B") && s.count > 1 { s = s.dropLast() }
        if s.hasSuffix("I") { s = s.dropLast() }
        var shift: Int64 = 0
        switch s.last {
        case "K": shift = 10
        case "M": shift = 20
        case "G": shift = 30
        case "T": shift = 40
        default: break
        }
        if shift > 0 { s = s.dropLast() }
        guard let v = Int64(s), v > 0, v <= Int64.max >> shift else { return nil }
        bytes = v << shift
    }

    var defaultValueDescription: String { "\(bytes)" }
}
