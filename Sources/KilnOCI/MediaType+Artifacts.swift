/// Media types and annotations of OCI 1.1 artifacts (image-spec media-types.md,
/// manifest.md "Guidelines for Artifact Usage", annotations.md).
extension MediaType {
    /// The empty descriptor's type: a config (or layer) that is `{}`.
    public static let ociEmpty = "application/vnd.oci.empty.v1+json"
    /// An SPDX JSON document (SPDX 2.3 §4), the type of Kiln's SBOM artifacts.
    public static let spdxJSON = "application/spdx+json"
}

extension AnnotationKey {
    /// A blob's file name (oras names pulled files by it).
    public static let title = "org.opencontainers.image.title"
}
