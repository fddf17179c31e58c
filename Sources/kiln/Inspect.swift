import ArgumentParser
import KilnImage
import KilnOCI
import KilnRegistry

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an image's manifest digest, platform, config and layers.",
        discussion: """
            IMAGE is docker://HOST[:PORT]/REPO[:TAG][@DIGEST], docker-archive:PATH, oci:DIR[:TAG] \
            or oci-archive:PATH[:TAG]. A registry image is read without downloading its layers.
            An index or manifest list (a multi-platform image) is listed: its digest and, per \
            platform, the manifest's digest, platform and size; --platform OS/ARCH[/VARIANT] \
            shows that platform's image instead (--platform host: this machine's, which is what \
            skopeo inspect shows).
            --json prints {reference, manifestDigest, manifest, config, layers[{digest, diffID, size, mediaType}]}; \
            for an index, {reference, indexDigest, mediaType, size, index, manifests[{digest, platform, size, mediaType}]}; \
            for an artifact (docker://…@DIGEST of one that kiln referrers lists), {reference, manifestDigest, artifactType, manifest}.
            """)

    @Argument(help: "The image, in transport syntax.")
    var image: String

    @Flag(help: "Print JSON for scripts instead of text.")
    var json = false

    @Option(help: "Show this platform's image of an index: OS/ARCH[/VARIANT], or host (default: list the platforms).")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var fileListing: FileListingOptions

    @OptionGroup var global: GlobalOptions

    struct LayerInfo: Codable {
        var digest: Digest
        var diffID: Digest
        var size: Int64
        var mediaType: String
    }

    struct Report: Codable {
        var reference: String
        var names: [String]
        var manifestDigest: Digest
        var manifest: Manifest
        var config: ImageConfig
        var configDigest: Digest
        var layers: [LayerInfo]
    }

    func validate() throws {
        try usageChecked { try ImageLocation(parsing: image) }
        if let platform, platform != "host" { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        try await reportingErrors {
            let ref = try ImageLocation(parsing: image)
            let platform = try self.platform.map { $0 == "host" ? .host : try PlatformSelection.parse($0) } ?? .host
            if fileListing.files { return try await listFiles(ref, options: try registry.options(json: true), platform: platform, listing: fileListing, json: json) }
            let options = try registry.options(json: true)
            if self.platform == nil, let index = try await ref.openIndex(options: options) {
                try showIndex(index, of: ref)
                return
            }
            if let artifact = try await ref.openArtifact(options: options) {
                try showArtifact(artifact.manifest, bytes: artifact.bytes, of: ref)
                return
            }
            let opened = try await ref.open(options: options, platform: platform, fetchLayers: false)
            defer { opened.removeSpool() }
            let img = opened.image
            let layers = img.layers.map { LayerInfo(digest: $0.descriptor.digest, diffID: $0.diffID, size: $0.descriptor.size, mediaType: $0.descriptor.mediaType) }
            if json {
                let r = Report(reference: ref.description, names: img.names, manifestDigest: img.manifestDigest, manifest: img.manifest,
                               config: img.config, configDigest: img.manifest.config.digest, layers: layers)
                print(String(decoding: try CanonicalJSON.encode(r), as: UTF8.self))
                return
            }
            let c = img.config
            var lines = [
                "Image:      \(ref)",
                "Names:      \(img.names.isEmpty ? "-" : img.names.joined(separator: ", "))",
                "Manifest:   \(img.manifestDigest) (\(img.manifest.mediaType ?? "?"), \(img.manifestBytes.count) bytes)",
                "Config:     \(img.manifest.config.digest)",
                "Platform:   \(c.platform)",
                "Created:    \(c.created ?? "-")",
            ]
            if let cc = c.config {
                func show(_ k: String, _ v: [String]?) { if let v, !v.isEmpty { lines.append(pad(k) + v.joined(separator: " ")) } }
                show("Entrypoint:", cc.Entrypoint)
                show("Cmd:", cc.Cmd)
                show("Env:", cc.Env)
                show("WorkingDir:", cc.WorkingDir.map { [$0] })
                show("User:", cc.User.map { [$0] })
                show("Ports:", cc.ExposedPorts.map { $0.keys.sorted() })
                show("Volumes:", cc.Volumes.map { $0.keys.sorted() })
                show("Labels:", cc.Labels.map { $0.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" } })
                show("StopSignal:", cc.StopSignal.map { [$0] })
            }
            lines.append("Layers:     \(layers.count)")
            for (i, l) in layers.enumerated() {
                lines.append("  \(i + 1). \(l.digest)  \(l.size) bytes  \(l.mediaType)")
                lines.append("     diffID \(l.diffID)")
            }
            print(lines.joined(separator: "\n"))
        }
    }

    struct IndexEntry: Codable {
        var digest: Digest
        var platform: Platform?
        var size: Int64
        var mediaType: String
    }

    struct IndexReport: Codable {
        var reference: String
        var indexDigest: Digest
        var mediaType: String
        var size: Int64
        var index: Index
        var manifests: [IndexEntry]
    }

    /// The platforms of an index, one line each, or its JSON report.
    func showIndex(_ opened: OpenedIndex, of ref: ImageLocation) throws {
        let entries = opened.index.manifests.map { IndexEntry(digest: $0.digest, platform: $0.platform, size: $0.size, mediaType: $0.mediaType) }
        if json {
            try printJSON(IndexReport(reference: ref.description, indexDigest: opened.digest, mediaType: opened.mediaType,
                                      size: Int64(opened.bytes.count), index: opened.index, manifests: entries))
            return
        }
        let names = entries.map { $0.platform?.description ?? "-" }
        let width = max(names.map(\.count).max() ?? 0, 8)
        var lines = [
            "Image:      \(ref)",
            "Index:      \(opened.digest) (\(opened.mediaType), \(opened.bytes.count) bytes)",
            "Platforms:  \(entries.count)",
        ]
        for (e, name) in zip(entries, names) {
            lines.append("  " + name + String(repeating: " ", count: width - name.count) + "  \(e.digest)  \(e.size) bytes")
        }
        lines.append("(--platform OS/ARCH[/VARIANT] shows one image)")
        print(lines.joined(separator: "\n"))
    }

    struct ArtifactReport: Codable {
        var reference: String
        var manifestDigest: Digest
        var artifactType: String
        var manifest: Manifest
    }

    /// An artifact manifest (OCI 1.1): its type, subject, annotations and files.
    func showArtifact(_ m: Manifest, bytes: [UInt8], of ref: ImageLocation) throws {
        let type = m.artifactType ?? m.config.mediaType
        if json {
            try printJSON(ArtifactReport(reference: ref.description, manifestDigest: .sha256(bytes), artifactType: type, manifest: m))
            return
        }
        var lines = [
            "Artifact:   \(ref)",
            "Manifest:   \(Digest.sha256(bytes)) (\(bytes.count) bytes)",
            "Type:       \(type)",
            "Subject:    " + (m.subject.map { "\($0.digest) (\($0.mediaType))" } ?? "-"),
        ]
        for (k, v) in (m.annotations ?? [:]).sorted(by: { $0.key < $1.key }) { lines.append("Annotation: \(k)=\(v)") }
        lines.append("Blobs:      \(m.layers.count)")
        for (i, l) in m.layers.enumerated() {
            lines.append("  \(i + 1). \(l.digest)  \(l.size) bytes  \(l.mediaType)" + (l.annotations?[AnnotationKey.title].map { "  \($0)" } ?? ""))
        }
        print(lines.joined(separator: "\n"))
    }

    private func pad(_ s: String) -> String { s + String(repeating: " ", count: max(1, 12 - s.count)) }
}
