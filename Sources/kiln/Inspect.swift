import ArgumentParser
import KilnImage
import KilnOCI
import KilnRegistry

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show an image's manifest digest, platform, config and layers.",
        discussion: """
            IMAGE is docker://HOST[:PORT]/REPO[:TAG][@DIGEST], docker-archive:PATH, oci:DIR[:TAG] \
            or oci-archive:PATH[:TAG]. A registry image is read without downloading its layers; \
            an index or manifest list is followed to --platform (default: this machine's).
            --json prints {reference, manifestDigest, manifest, config, layers[{digest, diffID, size, mediaType}]}.
            """)

    @Argument(help: "The image, in transport syntax.")
    var image: String

    @Flag(help: "Print JSON for scripts instead of text.")
    var json = false

    @Option(help: "The platform to pick from an index: OS/ARCH[/VARIANT].")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

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
    }

    func run() async throws {
        try await reportingErrors {
            let ref = try ImageLocation(parsing: image)
            let platform = try self.platform.map(PlatformSelection.parse) ?? .host
            let opened = try await ref.open(options: try registry.options(json: true), platform: platform, fetchLayers: false)
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

    private func pad(_ s: String) -> String { s + String(repeating: " ", count: max(1, 12 - s.count)) }
}
