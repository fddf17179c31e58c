import KilnImage

/// What a build put into its image beyond the image itself: the base and the packages,
/// for the SBOM, `--json` and the user's notices.
public struct BuildReport {
    public var spec: Spec
    public var image: PendingImage
    public var base: BaseImage?
    public var packages: [Package]
    /// Package names the base image's dpkg database already satisfied.
    public var satisfiedByInstalled: [String]
    /// The files of each `closure:` and `swift:` item (by index in `contents`), at their
    /// host paths (normal form): what the SBOM names the host packages of.
    public var closureFiles: [Int: [String]] = [:]
    /// What each layer of `image` holds, bottom to top, for the provenance document
    /// (Provenance+Build.swift); nil when the build could not tell.
    public var layerProvenance: [Provenance.Layer]?

    public struct Package: Sendable {
        public var package: FetchedPackage
        /// Regular files the package installed, and their bytes.
        public var files: Int
        public var bytes: Int64
        /// The licence of the package's machine-readable copyright file, as SPDX.
        public var license: String?
    }
}
