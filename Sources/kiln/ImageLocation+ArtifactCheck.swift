import KilnImage
import KilnRegistry

/// Runs `open`, the opening of an image whose files a command reads (`inspect --files`,
/// `report`, `diff`). When it fails and `location` names an artifact by digest (an SBOM
/// or a signature that `kiln referrers` listed), the error says so in one line instead
/// of the artifact's config failing to read as an image's ("missing field
/// .architecture"). Checked only after a failure: an image costs no extra request.
func openingImage<T>(_ location: ImageLocation, options: RegistryOptions, _ open: () async throws -> T) async throws -> T {
    do {
        return try await open()
    } catch {
        if let artifact = try? await location.openArtifact(options: options) {
            let type = artifact.manifest.artifactType ?? artifact.manifest.config.mediaType
            throw ImageError.invalid("\(location) is an artifact (\(type)), not an image: `kiln inspect \(location)` shows it")
        }
        throw error
    }
}
