import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page showing what takes the space in an image.",
        discussion: """
            The page (inline CSS and script, no network, no external fonts) shows a treemap of \
            the image by layer (each named by its digest's first 12 hex digits, as `docker \
            history` does), then by origin (the spec item or package that brought the files, \
            from Kiln's provenance document: --provenance PATH, else attached beside the image, \
            else the one kiln build kept in the layer cache), \
            then by directory; the largest files; the bytes shipped for nothing (files a later \
            layer overwrites or deletes, identical files in several layers); the packages with \
            their versions and licences (from --sbom, SPDX or CycloneDX JSON, else an \
            SPDX SBOM attached beside the image, else the provenance); and the config. Small \
            files are gathered per directory, so images of 100k files give a page of a few \
            hundred kB. The same image gives the same bytes.

            Example: kiln report oci:build/app:1.0 -o app-report.html
            """)

    @Argument(help: "The image, in transport syntax (docker://, docker-archive:, oci:, oci-archive:).")
    var image: String

    @Option(name: .shortAndLong, help: "The HTML file to write.")
    var output: String

    @Option(help: ArgumentHelp("The image's provenance document (default: the one attached beside it, else the one kiln build kept in the layer cache).", valueName: "path"))
    var provenance: String?

    @OptionGroup var cache: CacheDirOption

    @Option(help: ArgumentHelp("An SBOM of the image (SPDX 2.x or CycloneDX JSON), for package versions and licences.", valueName: "path"))
    var sbom: String?

    @Option(help: "The platform to pick from an index: OS/ARCH[/VARIANT].")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try usageChecked { try ImageLocation(parsing: image) }
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        try await reportingErrors {
            // Refused before any work: an output that cannot be replaced by a file.
            try checkOutputPath(output, what: "-o")
            let location = try ImageLocation(parsing: image)
            let options = try registry.options(json: true)
            let selection = try platform.map(PlatformSelection.parse) ?? .host
            let maxLayerSize = limits.maxLayerSize.bytes
            let opened = try await openingImage(location, options: options) {
                try await location.open(options: options, platform: selection, fetchLayers: true, maxLayerSize: maxLayerSize)
            }
            defer { opened.removeSpool() }
            let document = try await provenanceDocument(explicit: provenance, location: location, image: opened.image, options: options,
                                                        cacheRoot: cache.root)
            var packages = try sbom.map { path in
                try ImageReport.packages(fromSBOM: try FileReader(path: path).readAll(limit: 256 << 20), what: path)
            } ?? []
            if sbom == nil { packages = try await attachedSBOMPackages(location: location, image: opened.image, options: options) }
            let (img, reference, out) = (opened.image, location.description, output)
            let size = try await OwnThread.run("kiln-report") {
                let report = try ImageReport(image: img, reference: reference, provenance: document, packages: packages,
                                             limits: RootfsLimits(maxLayerSize: maxLayerSize))
                let bytes = Array(report.html().utf8)
                try FileSystem.writeAtomically(bytes, to: out)
                return bytes.count
            }
            print("\(out): \(size) bytes")
        }
    }
}

/// One clear line, before any work, when `path` names a directory (a report, a
/// provenance document or an SBOM is one file, replaced whole).
func checkOutputPath(_ path: String, what: String) throws {
    var st = stat()
    if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR {
        throw ImageError.invalid("\(what) \(path): is a directory (give the path of a file)")
    }
    try checkOutputParent(path, what: what)
}

/// One clear line, before any work, when the directory `path` would be written in is
/// missing (otherwise the temporary file beside it fails after the work, named by its
/// temporary name).
func checkOutputParent(_ path: String, what: String) throws {
    let parent = (path as NSString).deletingLastPathComponent
    var st = stat()
    guard stat(parent.isEmpty ? "." : parent, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
        throw ImageError.invalid("\(what) \(path): no directory \(parent) to write it in")
    }
}

/// The packages of the SPDX SBOM attached beside `image` (`kiln build --attach-sbom`,
/// `kiln attach`), if any; none for a docker-archive or a registry that lists no referrers.
func attachedSBOMPackages(location: ImageLocation, image: SourceImage, options: RegistryOptions) async throws -> [ImageReport.Package] {
    let spdx = "application/spdx+json"
    if case .local(.dockerArchive) = location { return [] }
    guard let found = try? await location.referrers(of: image.manifestDigest, artifactType: spdx, options: options) else { return [] }
    for d in found.reversed() {
        let manifest = try CanonicalJSON.decode(Manifest.self, from: try await location.fetchManifest(d, options: options),
                                                what: "\(location): referrer \(d.digest)")
        guard let layer = manifest.layers.first(where: { $0.mediaType == spdx }) else { continue }
        let bytes = try await location.fetchBlob(layer, options: options, limit: 256 << 20)
        return try ImageReport.packages(fromSBOM: bytes, what: "\(location): SBOM \(layer.digest)")
    }
    return []
}
