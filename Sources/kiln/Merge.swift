import ArgumentParser
import KilnImage
import KilnOCI

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put several images into one docker-archive that docker load and podman load read in one go.",
        discussion: """
            Each IMAGE is docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG] or oci-archive:PATH[:TAG]. \
            Layers the images share are stored once.

            Example: kiln merge docker-archive:a.tar docker-archive:b.tar -o both.tar && podman load -i both.tar
            """)

    @Argument(help: "The images to merge.")
    var images: [String]

    @Option(name: .shortAndLong, help: "The docker-archive to write.")
    var output: String

    mutating func run() throws {
        try reportingErrors {
            guard !images.isEmpty else { throw ValidationError("name at least one image") }
            var pending: [PendingImage] = []
            for (i, s) in images.enumerated() {
                let ref = try ImageReference(parsing: s)
                let image = try ref.source().image()
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
            let written = try DockerArchiveSink(path: output).writeAll(pending)
            for w in written { print("docker-archive:\(output) \(w.reference) \(w.manifestDigest)") }
        }
    }
}
