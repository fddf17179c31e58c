import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

/// `kiln build --attach-sbom`.
struct AttachOptions: ParsableArguments {
    @Flag(help: "Attach each platform's SPDX SBOM (the --sbom document) to its image as an OCI artifact (application/spdx+json); with --push or --format oci/oci-archive.")
    var attachSbom = false

    /// An SBOM is attached where the image is kept with its referrers: a registry or an
    /// OCI layout (a docker-archive or a stream cannot hold artifacts).
    func check(push: String?, format: OutputFormat, stream: Bool) throws {
        guard attachSbom, push == nil else { return }
        if stream || format == .dockerArchive {
            throw ValidationError("--attach-sbom attaches the SBOM beside the image: it needs --push or --format oci/oci-archive (a docker-archive holds no artifacts)")
        }
    }
}

extension Build {
    /// Attaches each built image's SBOM (`SBOM.encode`, the document `--sbom` writes) to
    /// that image at `destination`: one artifact of type `application/spdx+json` per
    /// platform, whose subject is that platform's manifest (not the index), all stored
    /// in one step (one commit of a layout).
    func attachSBOMs(_ built: [BuiltImage], destination: ImageLocation?) async throws {
        guard attach.attachSbom, let destination else { return }
        let options = try registry.options(json: true)
        var subjects: [Descriptor] = []
        for b in built { subjects.append(try await destination.manifestDescriptor(b.written.manifestDigest, options: options)) }
        let items = HandOff(Array(zip(built, subjects)))
        let referrers = try await OwnThread.run("kiln-sbom") {
            try items.value.map { b, subject in
                let bytes = try SBOM(report: b.report, manifestDigest: b.written.manifestDigest, reference: b.written.reference).encode()
                let artifact = PendingArtifact(artifactType: SBOM.artifactType, blobs: [
                    PendingArtifact.Blob(mediaType: SBOM.artifactType, content: .bytes(bytes),
                                         annotations: [AnnotationKey.title: "sbom.spdx.json"]),
                ])
                return try artifact.referrer(subject: subject)
            }
        }
        let stored = try await destination.store(referrers: referrers, options: options)
        for (b, d) in zip(built, stored) {
            notice("attached SBOM \(d.digest) to \(b.written.manifestDigest) (\(b.platform))")
        }
    }
}
