import ArgumentParser
import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

struct Export: AsyncParsableCommand {
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

            An image whose tag names an index (a multi-platform image in an OCI layout or \
            archive) is read for --platform, this machine's by default.

            Examples:
              kiln export oci:layout:latest -o rootfs.tar
              kiln export docker-archive:image.tar --format dir -o rootfs
              kiln export --platform linux/arm64/v8 oci:layout:1.0 -o rootfs-arm64.tar
            """)

    @Argument(help: "The image: docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG] or oci-archive:PATH[:TAG].")
    var image: String

    @Option(name: .shortAndLong, help: "Where to write the root file system.")
    var output: String

    @Option(help: "tar (default) or dir.")
    var format: RootfsExport.Format = .tar

    @Flag(help: "Keep the layers' mtimes instead of setting every one to 0.")
    var keepMtime = false

    @OptionGroup var platform: PlatformOption

    @OptionGroup var limits: LayerLimitOptions

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let ref = try ImageReference(parsing: image)
            let maxLayerSize = limits.maxLayerSize.bytes
            // A layout's index is followed to the platform as every command follows it.
            let source = try await ImageLocation.local(ref).open(options: RegistryOptions(), platform: try platform.selected(),
                                                                 fetchLayers: false, maxLayerSize: maxLayerSize).image
            let (output, format, mtime) = (output, format, keepMtime ? nil : Int64(0))
            // Flattening reads and writes every byte: on a thread of its own (`OwnThread`).
            let warnings = try await OwnThread.run("kiln-export") {
                try RootfsExport.export(source, to: output, format: format, mtime: mtime,
                                        limits: RootfsLimits(maxLayerSize: maxLayerSize))
            }
            for w in warnings { cliLog.warning("\(w)") }
            print("\(format.rawValue):\(output)")
        }
    }
}

extension RootfsExport.Format: ExpressibleByArgument {}

/// A byte count with an optional K, M, G or T suffix (powers of 1024).
