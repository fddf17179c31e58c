import ArgumentParser
import KilnImage
import KilnOCI
import KilnRegistry

struct Referrers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the artifacts that refer to an image (SBOMs, signatures, provenance).",
        discussion: """
            Lists the manifests whose subject is IMAGE's manifest (OCI 1.1): in an OCI layout or \
            archive, the index.json entries that refer to it; in a registry, the referrers API \
            (GET /v2/<name>/referrers/<digest>), else the sha256-<hex> referrers tag. One line \
            each: digest, artifact type, size, annotations. For a multi-platform IMAGE, the \
            index's referrers; --platform lists one image's.
            --json prints {reference, subject, referrers[descriptors]}.
            """)

    @Argument(help: "The image, in transport syntax.")
    var image: String

    @Option(help: "Only artifacts of this type.")
    var artifactType: String?

    @Option(help: "For a multi-platform IMAGE: this platform's image (OS/ARCH[/VARIANT]) instead of the index.")
    var platform: String?

    @Flag(help: "Print JSON for scripts instead of text.")
    var json = false

    @OptionGroup var registry: RegistryFlags

    struct Report: Codable {
        var reference: String
        var subject: Descriptor
        var referrers: [Descriptor]
    }

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if case .local(.dockerArchive) = try usageChecked({ try ImageLocation(parsing: image) }) {
            throw ValidationError("referrers: a docker-archive holds no artifacts; use an OCI layout (oci:, oci-archive:) or a registry")
        }
        if let artifactType, !MediaTypeGrammar.isValid(artifactType) {
            throw ValidationError("--artifact-type \"\(artifactType)\" is not a media type (type/subtype)")
        }
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        try await reportingErrors {
            let location = try ImageLocation(parsing: image)
            let options = try registry.options(json: true)
            let subject = try await location.subjectDescriptor(platform: try platform.map(PlatformSelection.parse), options: options)
            let found = try await location.referrers(of: subject.digest, artifactType: artifactType, options: options)
            if json {
                try printJSON(Report(reference: location.description, subject: subject, referrers: found))
                return
            }
            if found.isEmpty {
                // stdout stays empty for scripts; a person is told the list is empty, not broken.
                let what = artifactType.map { "no artifacts of type \($0)" } ?? "no artifacts"
                notice("\(what) refer to \(location)@\(subject.digest)")
            }
            for d in found {
                let notes = (d.annotations ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                print(([d.digest.description, d.artifactType ?? "-", "\(d.size) bytes"] + notes).joined(separator: "  "))
            }
        }
    }
}
