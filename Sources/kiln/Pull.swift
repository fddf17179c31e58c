import ArgumentParser
import KilnImage
import KilnOCI
import KilnRegistry

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download an image from a registry into a local archive or layout.",
        discussion: """
            REF is docker://HOST[:PORT]/REPO[:TAG][@DIGEST] (or HOST/REPO[:TAG] without the prefix; \
            names without a host are Docker Hub's). Indexes and manifest lists are followed to \
            --platform (default: this machine's). Every manifest, config and layer is checked \
            against its digest and size; layers are kept as the registry stores them.

            Examples:
              kiln pull docker://127.0.0.1:5000/hello:1.0 -o hello.tar
              kiln pull docker://quay.io/org/app@sha256:… --format oci -o app-layout
            """)

    @Argument(help: "The image in the registry.")
    var reference: String

    @Option(name: .shortAndLong, help: "Where to write the image.")
    var output: String

    @Option(help: "Output format: docker-archive, oci or oci-archive.")
    var format: OutputFormat = .dockerArchive

    @Option(help: "The platform to pick from an index: OS/ARCH[/VARIANT].")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    @Flag(help: "Print the result as JSON (reference, digest, size) on stdout.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try usageChecked { try RegistryReference(parsing: reference) }
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        try await reportingErrors {
            let ref = try RegistryReference(parsing: reference)
            let options = try registry.options(json: json)
            let platform = try self.platform.map(PlatformSelection.parse) ?? .host
            // A docker-archive's layers are downloaded and decompressed together below.
            let opened = try await ImageLocation.registry(ref).open(options: options, platform: platform,
                                                                    fetchLayers: format != .dockerArchive)
            defer { opened.removeSpool() }
            let dest: ImageReference
            switch format {
            case .dockerArchive: dest = .dockerArchive(path: output)
            case .oci: dest = .oci(path: output, tag: ref.tag)
            case .ociArchive: dest = .ociArchive(path: output, tag: ref.tag)
            }
            // A docker-archive stores plain tars: the layers are decompressed as they arrive,
            // several at once (the archive sink would decompress them one after another).
            let image = format == .dockerArchive ? try await opened.imageForPlainLayers(maxLayerSize: limits.maxLayerSize.bytes)
                                                 : opened.image
            options.progress.close()
            _ = try await ImageLocation.local(dest).write(image.pending(name: ref.name, tag: ref.tag ?? "latest"), options: options,
                                                          maxLayerSize: limits.maxLayerSize.bytes)
            if json {
                try printJSON(TransferReport(reference: ref.description, digest: image.manifestDigest, size: Int64(image.manifestBytes.count)))
            } else {
                print("\(format.rawValue):\(output) \(ref) \(image.manifestDigest)")
            }
        }
    }
}
