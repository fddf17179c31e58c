import Foundation
import KilnImage
import KilnOCI

/// The builder's side of the provenance document (`Provenance`, KilnImage): what each
/// layer of the plan holds, from the same path → items map the layering groups by.
/// The content layers' part is kept with a cached plan (ImageBuilder+PlanCache.swift),
/// so a build from the plan cache describes its layers as the cold build did.
extension ImageBuilder {
    /// The content layers' provenance: for each layer of `split`, the items whose files it
    /// holds (a file several items provide counts under each), and, when it holds files
    /// of several origins, which paths are whose. Files no item provides (accounts,
    /// extraCommands' new files) are the spec's own.
    static func contentProvenance(_ split: [FileTree], provenance: [String: Set<Int>], spec: Spec) -> [Provenance.Layer] {
        let items = spec.contents.enumerated().map { i, item in provenanceItem(item, index: i, spec: spec) }
        return split.map { layer in
            // Files grouped by the set of items providing them (one group per layer,
            // usually: layering groups by that set); names are made per group, not per file.
            struct Group { var files = 0; var bytes: Int64 = 0; var paths: [String] = [] }
            var groups: [[Int]: Group] = [:]
            var files = 0
            var bytes: Int64 = 0
            for (path, node) in layer.nodes where !node.isDirectory {
                let set = provenance[path] ?? []
                let key = set.count == 1 ? [set.first!] : set.sorted()
                var size: Int64 = 0
                var counted = true
                switch node.content {
                case .file(let src): size = src.size
                case .hardlink: size = 0
                default: counted = false
                }
                groups[key, default: Group()].paths.append(path)
                guard counted else { continue }
                groups[key]!.files += 1
                groups[key]!.bytes += size
                files += 1
                bytes += size
            }
            func name(_ key: [Int]) -> String {
                key.isEmpty ? specOwnOrigin
                    : key.count == 1 ? items[key[0]].name
                    : "shared by " + key.map { "contents[\($0)]" }.joined(separator: ", ")
            }
            var perItem: [Int: (files: Int, bytes: Int64)] = [:]
            var perOrigin: [String: (files: Int, bytes: Int64)] = [:]
            for (key, g) in groups {
                perOrigin[name(key), default: (0, 0)].files += g.files
                perOrigin[name(key), default: (0, 0)].bytes += g.bytes
                for i in key {
                    perItem[i, default: (0, 0)].files += g.files
                    perItem[i, default: (0, 0)].bytes += g.bytes
                }
            }
            let used = perItem.keys.sorted().map { i -> Provenance.Item in
                var item = items[i]
                item.files = perItem[i]!.files
                item.bytes = perItem[i]!.bytes
                return item
            }
            let names = Set(groups.keys.map(name))
            var origins: [Provenance.Origin]?
            if names.count > 1 {
                var fileOrigin: [String: String] = [:]
                for (key, g) in groups { for p in g.paths { fileOrigin[p] = name(key) } }
                let paths = Provenance.originPaths(fileOrigin)
                origins = names.sorted().map { n in
                    Provenance.Origin(name: n, files: perOrigin[n]?.files ?? 0, bytes: perOrigin[n]?.bytes ?? 0, paths: paths[n] ?? [])
                }
            } else if let only = names.first, !(used.count == 1 && used[0].name == only) {
                // One origin that is not one item (the spec's accounts, files items share).
                origins = [Provenance.Origin(name: only, files: files, bytes: bytes, paths: [])]
            }
            return Provenance.Layer(source: .contents, files: files, bytes: bytes, items: used, packages: nil, origins: origins)
        }
    }

    /// How files that no content item provides are named.
    static let specOwnOrigin = "spec: accounts, extraCommands, generated files"

    /// An item as the document names it: the host path relative to the spec's directory
    /// when below it (so the document is the same wherever the project is checked out).
    static func provenanceItem(_ item: ContentItem, index: Int, spec: Spec) -> Provenance.Item {
        // The kind's case name (directory, source, archive, closure…), any payload left out.
        let kind = String(String(describing: item.kind).prefix { $0 != "(" })
        let specDir = specDirectory(spec)
        var path = item.path
        if path == specDir || (specDir.isEmpty && path == "/") {
            path = "."
        } else if path.hasPrefix(specDir + "/") {
            path = String(path.dropFirst(specDir.count + 1))
        }
        let file = item.location.file.split(separator: "/").last.map(String.init) ?? item.location.file
        return Provenance.Item(index: index, kind: kind, path: path, target: item.target,
                               location: "\(file):\(item.location.line)", files: 0, bytes: 0, product: item.swift?.product)
    }

    /// The spec's directory as the parser resolved the items' paths against it ("" for `/`).
    static func specDirectory(_ spec: Spec) -> String {
        var abs = spec.path
        if !abs.hasPrefix("/") { abs = FileManager.default.currentDirectoryPath + "/" + abs }
        abs = SpecPaths.clean(abs)
        return abs.lastIndex(of: "/").map { String(abs[..<$0]) } ?? ""
    }

    /// A local base (`oci:/abs/dir:tag`) named relative to the spec's directory
    /// (`oci:../dir:tag`), as the spec names it; a registry reference as it is.
    static func provenanceBase(_ reference: String, spec: Spec) -> String {
        guard let colon = reference.firstIndex(of: ":"),
              ["oci", "oci-archive", "docker-archive"].contains(String(reference[..<colon])) else { return reference }
        let rest = reference[reference.index(after: colon)...]
        guard rest.hasPrefix("/") else { return reference }
        let from = specDirectory(spec).split(separator: "/")
        let to = rest.split(separator: "/")
        var common = 0
        while common < from.count, common < to.count - 1, from[common] == to[common] { common += 1 }
        let up = Array(repeating: "..", count: from.count - common)
        return reference[...colon] + (up + to[common...].map(String.init)).joined(separator: "/")
    }

    /// Every layer of the assembled image, bottom to top: the base's, the packages' and
    /// Kiln's generated files', the contents', runAsRoot's — in `assemble`'s order. Nil
    /// when the counts do not agree (then no document is better than a wrong one).
    func layerProvenance(image: PendingImage, base: BaseImage?, pkg: PackageLayers?,
                         content: [Provenance.Layer]?) -> [Provenance.Layer]? {
        guard let content else { return nil }
        var new: [Provenance.Layer] = []
        if let pkg {
            // Each layer's packages as the layers were made (one each, the least popular
            // merged into the last when the layer budget is short).
            for i in pkg.layers.indices {
                let packages = pkg.packages(ofLayer: i).map {
                    Provenance.Package(name: $0.package.package.name, version: $0.package.package.version,
                                       files: $0.files, bytes: $0.bytes, license: $0.license)
                }
                new.append(Provenance.Layer(source: .packages, files: packages.reduce(0) { $0 + $1.files },
                                            bytes: packages.reduce(0) { $0 + $1.bytes }, packages: packages))
            }
            var files = 0
            var bytes: Int64 = 0
            for node in pkg.generated.nodes.values {
                if case .file(let src) = node.content { files += 1; bytes += src.size }
            }
            new.append(Provenance.Layer(source: .generated, files: files, bytes: bytes))
        }
        new += content
        let baseName = base.map { Self.provenanceBase($0.reference, spec: spec) }
        let baseLayers = (base?.image.layers ?? []).map { _ in Provenance.Layer(source: .base, base: baseName) }
        let runAsRoot = runAsRootScript == nil ? [] : [Provenance.Layer(source: .runAsRoot)]
        // `assemble` leaves the new layers out on a base when they hold nothing.
        if image.layers.count == baseLayers.count + new.count + runAsRoot.count {
            return baseLayers + new + runAsRoot
        }
        if image.layers.count == baseLayers.count + runAsRoot.count {
            return baseLayers + runAsRoot
        }
        return nil
    }
}

extension BuildReport {
    /// The provenance document of the image as written (its diffIDs and digests), nil
    /// when the build could not describe its layers.
    public func provenance(written: WrittenImage) -> Provenance? {
        guard var layers = layerProvenance, layers.count == written.diffIDs.count, layers.count == written.layers.count else { return nil }
        for i in layers.indices {
            layers[i].diffID = written.diffIDs[i]
            layers[i].digest = written.layers[i].digest
        }
        let file = spec.path.split(separator: "/").last.map(String.init)
        return Provenance(spec: file, manifestDigest: written.manifestDigest, layers: layers)
    }
}
