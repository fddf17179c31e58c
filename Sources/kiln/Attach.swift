import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KilnImage
import KilnOCI
import KilnRegistry

/// `--annotation K=V`, repeatable: parsed once for `attach`.
func parseAnnotations(_ list: [String]) throws -> [String: String] {
    var out: [String: String] = [:]
    for a in list {
        guard let eq = a.firstIndex(of: "="), eq != a.startIndex else {
            throw ValidationError("--annotation \"\(a)\": expected KEY=VALUE")
        }
        let key = String(a[..<eq])
        guard out[key] == nil else { throw ValidationError("--annotation \(key) is given twice") }
        out[key] = String(a[a.index(after: eq)...])
    }
    return out
}

struct Attach: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attach a file to an image as an OCI artifact (an SBOM, a signature, a report).",
        discussion: """
            Stores FILE as an OCI 1.1 artifact: an image manifest with artifactType TYPE, the \
            empty config ({}, application/vnd.oci.empty.v1+json), one layer holding FILE (its \
            media type --media-type, default TYPE; titled with FILE's name, as oras does) and \
            subject = IMAGE's manifest (for a multi-platform IMAGE, the index itself unless \
            --platform picks one image).
            IMAGE is oci:DIR[:TAG], oci-archive:PATH[:TAG] (the artifact is listed in index.json, \
            untagged) or docker://HOST/REPO[:TAG][@DIGEST] (pushed by digest; registries without \
            the referrers API get the sha256-<hex> referrers tag, updated read-modify-write). \
            The same inputs give the same artifact digest: no timestamp is added (give one with \
            --annotation org.opencontainers.image.created=…). kiln referrers IMAGE lists it.

            Example: kiln attach oci:layout:v1 sbom.spdx.json --artifact-type application/spdx+json
            """)

    @Argument(help: "The image the artifact describes.")
    var image: String

    @Argument(help: "The file to attach.")
    var file: String

    @Option(help: "The artifact's type, a media type such as application/spdx+json.")
    var artifactType: String

    @Option(help: "The media type of FILE's layer (default: the artifact type).")
    var mediaType: String?

    @Option(help: "KEY=VALUE on the artifact's manifest (repeatable).")
    var annotation: [String] = []

    @Option(help: "For a multi-platform IMAGE: attach to this platform's image (OS/ARCH[/VARIANT]) instead of the index.")
    var platform: String?

    @Flag(help: "Print the artifact's descriptor as JSON.")
    var json = false

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if case .local(.dockerArchive) = try usageChecked({ try ImageLocation(parsing: image) }) {
            throw ValidationError("attach: a docker-archive holds no artifacts; use an OCI layout (oci:, oci-archive:) or a registry")
        }
        guard MediaTypeGrammar.isValid(artifactType) else {
            throw ValidationError("--artifact-type \"\(artifactType)\" is not a media type (type/subtype, as application/spdx+json)")
        }
        if let mediaType, !MediaTypeGrammar.isValid(mediaType) {
            throw ValidationError("--media-type \"\(mediaType)\" is not a media type (type/subtype)")
        }
        _ = try parseAnnotations(annotation)
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        try await reportingErrors {
            let location = try ImageLocation(parsing: image)
            // Checked first, so a missing FILE writes nothing anywhere.
            guard access(file, R_OK) == 0 else { throw ImageError.notFound("attach: \(file): no such readable file") }
            let options = try registry.options(json: json)
            let subject: Descriptor
            do {
                subject = try await location.subjectDescriptor(platform: try platform.map(PlatformSelection.parse), options: options)
            } catch RegistryError.notFound(let why) {
                // `why` names what is missing: the tag, or the platform and what the index has.
                throw ImageError.notFound("attach: \(why)")
            }
            let artifact = PendingArtifact(artifactType: artifactType,
                                           blobs: [.file(file, mediaType: mediaType ?? artifactType)],
                                           annotations: try parseAnnotations(annotation))
            let d = try await location.attach(artifact, to: subject, options: options)
            if json {
                try printJSON(AttachReport(reference: location.description, artifact: d, subject: subject))
            } else {
                print("\(location) artifact \(d.digest) (\(artifactType)) refers to \(subject.digest)")
            }
        }
    }
}

/// `kiln attach --json`.
struct AttachReport: Codable {
    var reference: String
    var artifact: Descriptor
    var subject: Descriptor
}
