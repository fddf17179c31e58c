import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

/// One platform's image as `kiln build` wrote it: what went into it and where it went.
/// For a spec without `platforms`, the one image, its platform read from its config.
struct BuiltImage {
    var platform: Platform
    var report: BuildReport
    var written: WrittenImage
}

extension Build {
    /// What goes beside the built images once they are written: `--sbom PATH` (one file
    /// per platform when there are several: `sbomPath(for:)`). `index` is the written
    /// index when there are several platforms; `destination` is where the images went
    /// (`oci:DIR:TAG` or `oci-archive:PATH:TAG` with the tag they were written under, or
    /// the `--push` reference), nil for a docker-archive or `--stream`.
    func writeAttachments(_ built: [BuiltImage], index: WrittenIndex?, destination: ImageLocation?) async throws {
        // Every build's provenance, kept in the layer cache (Provenance+Cache.swift).
        await keepProvenanceInCache(built)
        if let sbom {
            let items = HandOff(built.map { b in (path: built.count > 1 ? Self.sbomPath(sbom, for: b.platform) : sbom, image: b) })
            try await OwnThread.run("kiln-sbom") {
                for (path, b) in items.value {
                    let bytes = try SBOM(report: b.report, manifestDigest: b.written.manifestDigest, reference: b.written.reference).encode()
                    try FileSystem.writeAtomically(bytes, to: path)
                }
            }
        }
        // --attach-sbom: the SBOMs beside their images (AttachOptions.swift).
        try await attachSBOMs(built, destination: destination)
        // Provenance: `--provenance PATH`, and attached beside the images (ProvenanceOptions.swift).
        try await writeProvenance(built, destination: destination)
    }

    /// `image.spdx.json` for linux/arm64/v8 is `image.linux-arm64-v8.spdx.json`: the
    /// platform goes before the extension (`.spdx.json` or `.json` kept whole), or at
    /// the end of a name without one.
    static func sbomPath(_ path: String, for platform: Platform) -> String {
        let suffix = platform.description.replacingOccurrences(of: "/", with: "-")
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let name = path[slash...]
        for ext in [".spdx.json", ".json"] where name.hasSuffix(ext) && name.count > ext.count {
            return String(path.dropLast(ext.count)) + "." + suffix + ext
        }
        if let dot = name.lastIndex(of: "."), dot != name.startIndex {
            return String(path[..<dot]) + "." + suffix + String(path[dot...])
        }
        return path + "." + suffix
    }
}
