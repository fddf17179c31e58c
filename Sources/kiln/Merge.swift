import ArgumentParser
import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

struct Merge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put several images into one docker-archive that docker load and podman load read in one go.",
        discussion: """
            Each IMAGE is docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG] or oci-archive:PATH[:TAG]. \
            Layers the images share are stored once. An image whose tag names an index (a \
            multi-platform image in an OCI layout or archive) is read for --platform, this \
            machine's by default (a docker-archive holds one platform per image).

            Example: kiln merge docker-archive:a.tar docker-archive:b.tar -o both.tar && podman load -i both.tar
            """)

    @Argument(help: "The images to merge.")
    var images: [String]

    @Option(name: .shortAndLong, help: "The docker-archive to write.")
    var output: String

    @OptionGroup var platform: PlatformOption

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            guard !images.isEmpty else { throw ValidationError("name at least one image") }
            let platform = try self.platform.selected()
            var pending: [PendingImage] = []
            for (i, s) in images.enumerated() {
                let ref = try ImageReference(parsing: s)
                let image = try await ImageLocation.local(ref).open(options: RegistryOptions(), platform: platform, fetchLayers: false).image
                // Keep the image's own name; an unnamed one gets image-N:latest.
                var name = "localhost/image-\(i + 1)", tag = "latest"
                if let full = image.names.first(where: { $0.contains(":") }), let c = full.lastIndex(of: ":") {
                    name = String(full[..<c])
                    tag = String(full[full.index(after: c)...])
                } else if let t = image.names.first {
                    tag = t
                }
                pending.append(image.pending(name: name, tag: tag))
            }
            let output = output
            // Every layer's bytes are copied: on a thread of its own (`OwnThread`).
            let written = try await OwnThread.run("kiln-merge") { [pending] in try DockerArchiveSink(path: output).writeAll(pending) }
            for w in written { print("docker-archive:\(output) \(w.reference) \(w.manifestDigest)") }
        }
    }
}
