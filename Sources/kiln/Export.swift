import ArgumentParser
import KilnImage
import KilnOCI

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Flatten an image into one root file system, as a tar or a directory.",
        discussion: """
            Every layer is applied in order with its whiteouts (.wh.NAME) and opaque \
            directories (.wh..wh..opq). The output is deterministic: entries sorted, every \
            mtime 0 unless --keep-mtime; hard links, symlinks, modes, owners and xattrs \
            are kept. Layers are checked against their digests and diffIDs, and nothing is \
            written until every layer has been read and checked.

            A directory is created fresh (it must not exist) and nothing outside it is \
            touched: entries with absolute names, `..`, or a symlink or file as parent are \
            rejected. Owners and device nodes need root; without it they are skipped with \
            a warning.

            Examples:
              kiln export oci:layout:latest -o rootfs.tar
              kiln export docker-archive:image.tar --format dir -o rootfs
            """)

    @Argument(help: "The image: docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG] or oci-archive:PATH[:TAG].")
    var image: String

    @Option(name: .shortAndLong, help: "Where to write the root file system.")
    var output: String

    @Option(help: "tar (default) or dir.")
    var format: RootfsExport.Format = .tar

    @Flag(help: "Keep the layers' mtimes instead of setting every one to 0.")
    var keepMtime = false

    @OptionGroup var limits: LayerLimitOptions

    mutating func run() throws {
        try reportingErrors {
            let ref = try ImageReference(parsing: image)
            let source = try ref.source(maxLayerSize: limits.maxLayerSize.bytes).image()
            let warnings = try RootfsExport.export(
                source, to: output, format: format, mtime: keepMtime ? nil : 0,
                limits: RootfsLimits(maxLayerSize: limits.maxLayerSize.bytes))
            for w in warnings { cliLog.warning("\(w)") }
            print("\(format.rawValue):\(output)")
        }
    }
}

extension RootfsExport.Format: ExpressibleByArgument {}

/// A byte count with an optional K, M, G or T suffix (powers of 1024).
