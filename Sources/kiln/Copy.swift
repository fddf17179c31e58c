import ArgumentParser
import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy an image between formats, keeping its layers, config and manifest as they are.",
        discussion: """
            SOURCE and DESTINATION are docker://HOST[:PORT]/REPO[:TAG][@DIGEST], docker-archive:PATH[:NAME:TAG], \
            oci:DIR[:TAG] or oci-archive:PATH[:TAG]. From an index, --platform picks one image (default: this \
            machine's); --all copies the index with every platform, byte for byte (registries, OCI layouts \
            and archives; a docker-archive holds one platform).
            Layers are copied byte for byte and checked against their digests on the way, except \
            that uncompressed layers going to a registry are compressed (gzip, or \
            --dest-compress-format zstd; --preserve-digests keeps them as they are), as skopeo does.

            --referrers also copies what refers to the image (and, with --all, to the index and \
            each of its images): SBOMs, signatures, provenance (OCI 1.1 artifacts), unchanged.

            Example: kiln copy docker-archive:hello.tar oci:layout:latest
            """)

    @Argument(help: "The image to read.")
    var source: String

    @Argument(help: "Where to write it.")
    var destination: String

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    @Flag(help: "Copy an index with all its images, its digest unchanged (not into a docker-archive).")
    var all = false

    @Flag(help: "Copy what refers to the image too (SBOMs, signatures: OCI 1.1 referrers), unchanged.")
    var referrers = false

    @Option(help: "The platform to pick from an index: OS/ARCH[/VARIANT].")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    @OptionGroup var layerFlags: PushLayerFlags

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        let (_, dst) = try usageChecked { (try ImageLocation(parsing: source), try ImageLocation(parsing: destination)) }
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
        if layerFlags.givenExplicitly, case .local = dst {
            throw ValidationError("--dest-compress-format and --preserve-digests apply to a docker:// destination")
        }
        if all, let f = layerFlags.compressFormat {
            throw ValidationError("--all copies the index and its images byte for byte; --dest-compress-format \(f.rawValue) would change them")
        }
        if all, case .local(.dockerArchive) = dst {
            throw ValidationError("--all: a docker-archive holds one platform; copy one with --platform instead")
        }
        if referrers, case .local(.dockerArchive) = dst {
            throw ValidationError("--referrers: a docker-archive holds no artifacts; copy to a registry or an OCI layout")
        }
        if referrers, layerFlags.compressFormat != nil {
            throw ValidationError("--referrers: artifacts refer to the manifest by digest; --dest-compress-format would change it")
        }
        if all, platform != nil {
            throw ValidationError("--all copies every platform of an index; --platform picks one (give one or the other)")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let src = try ImageLocation(parsing: source)
            let dst = try ImageLocation(parsing: destination)
            let options = try registry.options(json: json)
            if all, let r = try await IndexCopy.copyAll(from: src, to: dst, options: options) {
                if referrers {
                    let subjects = [r.digest] + r.written.manifests.map(\.image.manifestDigest)
                    try await copyReferrers(subjects, from: src, to: dst, options: options)
                }
                if json { try printJSON(TransferReport(reference: dst.description, digest: r.digest, size: r.size)) }
                else { print("\(dst) index \(r.digest) (\(r.images) images)") }
                return
            }
            // Into a local destination every layer is read: download them all first, in
            // parallel (into a docker-archive, decompressing as they arrive, below); a
            // registry destination mounts or streams them itself.
            let opened = try await src.open(options: options, platform: try platform.map(PlatformSelection.parse) ?? .host,
                                            fetchLayers: dst.readsLayerBytes && !dst.storesPlainLayers,
                                            maxLayerSize: limits.maxLayerSize.bytes)
            defer { opened.removeSpool() }
            if platform == nil, !all { await noticeIndexChoice(src, took: opened.image.config.platform, options: options) }
            // A docker-archive stores plain tars: decompress a registry image's layers several at once.
            let image = dst.storesPlainLayers ? try await opened.imageForPlainLayers(maxLayerSize: limits.maxLayerSize.bytes) : opened.image
            let (dName, dTag) = dst.destinationName
            // Name: the destination's, else the source's own (`name:tag`), else a generic one.
            var name = dName ?? "localhost/image"
            var tag = dTag
            if dName == nil, let first = image.names.first(where: { $0.contains(":") && !$0.hasSuffix(":") }) {
                let c = first.lastIndex(of: ":")!
                name = String(first[..<c])
                if tag == nil { tag = String(first[first.index(after: c)...]) }
            } else if tag == nil, let first = image.names.first, !first.contains(":"), !first.contains("/") {
                tag = first
            }
            if let dName { try ReferenceGrammar.validateName(dName) }
            if let tag { try ReferenceGrammar.validateTag(tag) }
            let policy: PushLayerPolicy
            if case .registry = dst { policy = try layerFlags.policy() } else { policy = .keep }
            if referrers, Self.changesDigest(image, to: dst, policy: policy),
               !(try await src.referrers(of: image.manifestDigest, options: options)).isEmpty {
                throw ImageError.invalid("--referrers: the copy's manifest would not keep the digest \(image.manifestDigest) its artifacts refer to (\(image.manifest.mediaType == MediaType.dockerManifest ? "a Docker manifest becomes an OCI one in a layout" : "uncompressed layers are compressed for a registry; --preserve-digests keeps them"))")
            }
            let written = try await dst.write(image.pending(name: name, tag: tag ?? "latest"), options: options,
                                              maxLayerSize: limits.maxLayerSize.bytes,
                                              layers: policy, notice: printPushNotice).image
            options.progress.close()
            if referrers {
                // Artifacts name their subject by digest (checked above: the copy keeps it;
                // `store` refuses any artifact whose subject is not at the destination).
                try await copyReferrers([image.manifestDigest], from: src, to: dst, options: options)
            }
            if json {
                print(String(decoding: try CanonicalJSON.encode(written), as: UTF8.self))
            } else {
                print("\(dst) \(written.reference) \(written.manifestDigest)")
            }
        }
    }
}

extension Copy {
    /// Whether writing `image` to `dst` rewrites its manifest: a Docker manifest in an OCI
    /// layout (converted as skopeo does), or uncompressed layers compressed for a registry.
    static func changesDigest(_ image: SourceImage, to dst: ImageLocation, policy: PushLayerPolicy) -> Bool {
        switch dst {
        case .local(.dockerArchive): return false
        case .local: return image.manifest.mediaType == MediaType.dockerManifest
        case .registry:
            guard case .compress = policy else { return false }
            return image.layers.contains { Compression(mediaType: $0.descriptor.mediaType) == Compression.none }
        }
    }

    /// Copies the referrers of `subjects` (already at `dst` with the same digests).
    func copyReferrers(_ subjects: [Digest], from src: ImageLocation, to dst: ImageLocation, options: RegistryOptions) async throws {
        let copied = try await ReferrersCopy.copy(subjects: subjects, from: src, to: dst, options: options)
        options.progress.close()
        for d in copied { notice("copied referrer \(d.digest) (\(d.artifactType ?? "-"))") }
    }
}
