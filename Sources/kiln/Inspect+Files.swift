import ArgumentParser
import Foundation
import KilnArchive
import KilnImage
import KilnOCI
import KilnRegistry

/// `kiln inspect --files [--provenance PATH]`.
struct FileListingOptions: ParsableArguments {
    @Flag(help: "List the image's files with size, layer (its digest's first 12 hex digits) and origin (the spec item or package, from the provenance).")
    var files = false

    @Option(help: ArgumentHelp("With --files: the image's provenance document (default: the one attached beside it, else the one kiln build kept in the layer cache).", valueName: "path"))
    var provenance: String?

    @OptionGroup var cache: CacheDirOption

    func validate() throws {
        if provenance != nil, !files { throw ValidationError("--provenance names the origins of --files; add --files") }
        if cache.cacheDir != nil, !files { throw ValidationError("--cache-dir is where --files finds the provenance kept by kiln build; add --files") }
    }
}

/// One file of `inspect --files --json`.
struct ListedFile: Codable {
    var path: String
    var type: String
    var size: Int64
    var mode: String
    var uid: Int
    var gid: Int
    var target: String?
    var layer: String
    var origin: String
}

extension Inspect {
    /// Lists every file of the image (directories left out): size, layer, origin, path,
    /// one line each in path order, or a JSON array with `--json`. Origins come from the
    /// provenance document (given, attached, or kept in the layer cache by the build);
    /// without one a file is named by its layer.
    func listFiles(_ location: ImageLocation, options: RegistryOptions, platform: Platform,
                   listing: FileListingOptions, json: Bool) async throws {
        let opened = try await openingImage(location, options: options) {
            try await location.open(options: options, platform: platform, fetchLayers: true)
        }
        defer { opened.removeSpool() }
        let img = opened.image
        let document = try await provenanceDocument(explicit: listing.provenance, location: location, image: img, options: options,
                                                    cacheRoot: listing.cache.root)
        let files = try await OwnThread.run("kiln-inspect") { try ImageFiles.read(img, hashing: false) }
        let layers = img.layers.map { l in (name: String(l.descriptor.digest.hex.prefix(12)), provenance: document?.layer(diffID: l.diffID)) }
        let indexes = layers.map { $0.provenance?.originIndex() ?? [:] }
        let listed = files.visible.filter { $0.kind != .directory }.map { e in
            let l = layers[e.layer]
            return ListedFile(path: "/" + e.path, type: e.kind.rawValue, size: e.size, mode: String(e.mode, radix: 8),
                              uid: e.uid, gid: e.gid, target: e.target, layer: l.name,
                              origin: l.provenance?.origin(of: e.path, index: indexes[e.layer]) ?? "layer \(e.layer + 1)")
        }
        if json {
            print(String(decoding: try CanonicalJSON.encode(listed), as: UTF8.self))
            return
        }
        let width = max(String(listed.map(\.size).max() ?? 0).count, 4)
        var out = ""
        for f in listed {
            let size = String(f.size)
            out += String(repeating: " ", count: width - size.count) + size + "  " + f.layer + "  " + f.path
            if let t = f.target { out += (f.type == "hardlink" ? " link to " : " -> ") + t }
            out += "  [" + f.origin + "]\n"
        }
        print(out, terminator: "")
    }
}

/// The provenance document of `image`: from `explicit` when given (an error if it cannot
/// be read or describes none of the image's layers), else the one attached beside the
/// image in its layout or registry, else the one `kiln build` kept in the layer cache at
/// `cacheRoot` (Provenance+Cache.swift), else nil.
func provenanceDocument(explicit: String?, location: ImageLocation, image: SourceImage,
                        options: RegistryOptions, cacheRoot: String?) async throws -> Provenance? {
    if let explicit {
        let doc = try Provenance.decode(try FileReader(path: explicit).readAll(limit: 256 << 20), what: explicit)
        guard image.layers.contains(where: { doc.layer(diffID: $0.diffID) != nil }) else {
            throw ImageError.invalid("\(explicit): describes none of the layers of \(location) (another image's provenance?)")
        }
        return doc
    }
    if let attached = try await attachedProvenance(location: location, image: image, options: options) { return attached }
    return cacheRoot.flatMap { cachedProvenance(root: $0, image: image) }
}
