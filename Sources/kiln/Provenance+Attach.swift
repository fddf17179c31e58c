import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

/// Stores each document beside its image at `destination` (an OCI layout or archive,
/// or a registry repository): an artifact (image-spec 1.1: `artifactType`
/// `Provenance.mediaType`, one layer holding the document) whose `subject` is the
/// image's manifest, so `kiln referrers`, `oras discover` and the registry's referrers
/// API find it, and `kiln inspect --files` and `kiln report` read it back. The images'
/// own manifests, configs and layers are not touched. Returns the artifacts' descriptors.
func attachProvenance(_ docs: [(Provenance, WrittenImage)], at destination: ImageLocation,
                      options: RegistryOptions) async throws -> [Descriptor] {
    var subjects: [Descriptor] = []
    for (_, written) in docs { subjects.append(try await destination.manifestDescriptor(written.manifestDigest, options: options)) }
    let items = HandOff(Array(zip(docs.map(\.0), subjects)))
    let referrers = try await OwnThread.run("kiln-provenance") {
        try items.value.map { doc, subject in
            let artifact = PendingArtifact(artifactType: Provenance.mediaType, blobs: [
                PendingArtifact.Blob(mediaType: Provenance.mediaType, content: .bytes(try doc.encode()),
                                     annotations: [AnnotationKey.title: "provenance.json"]),
            ])
            return try artifact.referrer(subject: subject)
        }
    }
    return try await destination.store(referrers: referrers, options: options)
}

/// The provenance document attached beside `image` at `location`, if any: the last
/// listed referrer of its manifest of the provenance type whose document describes the
/// image's layers. A docker-archive holds none; a registry that cannot list referrers
/// has none to give.
func attachedProvenance(location: ImageLocation, image: SourceImage, options: RegistryOptions) async throws -> Provenance? {
    if case .local(.dockerArchive) = location { return nil }
    guard let found = try? await location.referrers(of: image.manifestDigest, artifactType: Provenance.mediaType, options: options) else {
        return nil
    }
    for d in found.reversed() {
        let manifest = try CanonicalJSON.decode(Manifest.self, from: try await location.fetchManifest(d, options: options),
                                                what: "\(location): referrer \(d.digest)")
        guard let layer = manifest.layers.first(where: { $0.mediaType == Provenance.mediaType }) else { continue }
        let doc = try Provenance.decode(try await location.fetchBlob(layer, options: options), what: "\(location): provenance \(layer.digest)")
        if image.layers.contains(where: { doc.layer(diffID: $0.diffID) != nil }) { return doc }
    }
    return nil
}
