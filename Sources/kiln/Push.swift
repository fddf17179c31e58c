import ArgumentParser
import KilnImage
import KilnOCI
import KilnRegistry

struct Push: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload a local image to a registry.",
        discussion: """
            SOURCE is docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH[:TAG]; REF is \
            docker://HOST[:PORT]/REPO[:TAG]. Blobs the registry already has are not uploaded; \
            the manifest is pushed byte for byte, so its digest is the source's — unless the \
            image has uncompressed layers (a docker-archive's): those are compressed with gzip \
            (--dest-compress-format zstd for zstd), which changes the manifest digest (a notice \
            says so); --preserve-digests pushes them as they are. Compressed layers are kept in \
            the layer cache, so pushing the same archive again compresses nothing.
            From an index (a multi-platform image), --platform picks the image to push (default: \
            this machine's); kiln copy --all pushes the index with every platform.

            Example: kiln push oci:layout:1.0 docker://127.0.0.1:5000/hello:1.0
            """)

    @Argument(help: "The local image.")
    var source: String

    @Argument(help: "The registry reference to push to.")
    var reference: String

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var layerFlags: PushLayerFlags

    @OptionGroup var platform: PlatformOption

    @Flag(help: "Print the result as JSON (reference, digest, size) on stdout.")
    var json = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try usageChecked { (try ImageLocation(parsing: source), try RegistryReference(parsing: reference)) }
    }

    func run() async throws {
        try await reportingErrors {
            let src = try ImageLocation(parsing: source)
            let dst = try RegistryReference(parsing: reference)
            let options = try registry.options(json: json)
            // A registry source's layers are mounted or streamed by the upload itself.
            let opened = try await src.open(options: options, platform: try platform.selected(), fetchLayers: false)
            defer { opened.removeSpool() }
            if platform.platform == nil { await noticeIndexChoice(src, took: opened.image.config.platform, options: options) }
            let pushed = try await ImageLocation.registry(dst).write(opened.image.pending(name: dst.name, tag: dst.tag ?? "latest"),
                                                                     options: options, layers: try layerFlags.policy(),
                                                                     notice: printPushNotice)
            try reportPush(pushed.image, json: json, size: pushed.manifestSize)
        }
    }
}

/// Prints what a push wrote: one line, or `{reference, digest, size}` with --json,
/// `size` being the manifest's (as `pull --json` and `copy --json` report it).
func reportPush(_ written: WrittenImage, json: Bool, size: Int64? = nil) throws {
    if json {
        precondition(size != nil, "reportPush: --json needs the pushed manifest's size")
        try printJSON(TransferReport(reference: "docker://" + written.reference, digest: written.manifestDigest, size: size ?? 0))
    } else {
        print("docker://\(written.reference) \(written.manifestDigest)")
    }
}
