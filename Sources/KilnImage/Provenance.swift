import KilnOCI

/// Where each layer of a built image came from: Kiln's provenance document
/// (`application/vnd.kiln.provenance.v1+json`), kept by every `kiln build` in the layer
/// cache by the image's config digest (KilnBuild's LayerCache+Provenance.swift), written
/// by `kiln build --provenance PATH`, and attached beside the image in layouts and
/// registries (`--attach-provenance`) as an OCI artifact whose `subject` is the image's
/// manifest (image-spec manifest.md "subject", "artifactType").
///
/// For each layer, bottom to top: its diffID and digest, what put it there (`source`:
/// the base image, a Debian package layer, Kiln's generated files, the spec's contents,
/// runAsRoot), the content items (index in `contents`, kind, host path, spec location)
/// or packages (name, version) it holds with their file count and bytes, and, when
/// several origins share one layer, which paths belong to which (`origins`, each as the
/// fewest directories and files that hold only its files). A file that several items
/// provide (libraries shared by closures) counts under each of them.
///
/// Canonical JSON of values from the spec and its inputs only (host paths relative to
/// the spec's directory, locations by the spec's file name): the same build gives the
/// same bytes, cold or from the plan cache.
public struct Provenance: Sendable, Codable, Equatable {
    public static let mediaType = "application/vnd.kiln.provenance.v1+json"

    public var mediaType: String = Provenance.mediaType
    /// The spec's file name.
    public var spec: String?
    /// The manifest the document describes (that of the written image).
    public var manifestDigest: Digest?
    public var layers: [Layer]

    public enum Source: String, Sendable, Codable {
        case base, packages, generated, contents, runAsRoot
    }

    public struct Layer: Sendable, Codable, Equatable {
        public var diffID: Digest?
        public var digest: Digest?
        public var source: Source
        /// The base image's reference, for `source: base`.
        public var base: String?
        /// Regular files (hard links included) and their bytes; nil where Kiln did not
        /// list the layer (base and runAsRoot layers).
        public var files: Int?
        public var bytes: Int64?
        public var items: [Item]?
        public var packages: [Package]?
        /// Set when more than one origin shares the layer.
        public var origins: [Origin]?

        public init(source: Source, base: String? = nil, files: Int? = nil, bytes: Int64? = nil,
                    items: [Item]? = nil, packages: [Package]? = nil, origins: [Origin]? = nil) {
            self.source = source
            self.base = base
            self.files = files
            self.bytes = bytes
            self.items = items
            self.packages = packages
            self.origins = origins
        }
    }

    /// One item of the spec's `contents`.
    public struct Item: Sendable, Codable, Equatable {
        public var index: Int
        /// directory, source, archive or closure.
        public var kind: String
        /// The host path, relative to the spec's directory when below it.
        public var path: String
        public var target: String?
        /// `FILE:LINE` in the spec (the file by name).
        public var location: String
        public var files: Int
        public var bytes: Int64
        /// `swift:` items: the product (`path` is the package directory, often `.`).
        public var product: String?

        public init(index: Int, kind: String, path: String, target: String?, location: String, files: Int, bytes: Int64,
                    product: String? = nil) {
            self.index = index
            self.kind = kind
            self.path = path
            self.target = target
            self.location = location
            self.files = files
            self.bytes = bytes
            self.product = product
        }

        /// `contents[2] archive vendor.tar.gz`, `contents[0] swift App`: how reports and
        /// listings name the item (as the spec names it).
        public var name: String { "contents[\(index)] \(kind) \(product ?? path)" }
    }

    public struct Package: Sendable, Codable, Equatable {
        public var name: String
        public var version: String
        public var files: Int
        public var bytes: Int64
        public var license: String?

        public init(name: String, version: String, files: Int, bytes: Int64, license: String?) {
            self.name = name
            self.version = version
            self.files = files
            self.bytes = bytes
            self.license = license
        }
    }

    /// One origin's part of a layer several share.
    public struct Origin: Sendable, Codable, Equatable {
        public var name: String
        public var files: Int
        public var bytes: Int64
        /// Paths (no leading `/`) whose files are all this origin's: directories or files.
        public var paths: [String]

        public init(name: String, files: Int, bytes: Int64, paths: [String]) {
            self.name = name
            self.files = files
            self.bytes = bytes
            self.paths = paths
        }
    }

    public init(spec: String?, manifestDigest: Digest?, layers: [Layer]) {
        self.spec = spec
        self.manifestDigest = manifestDigest
        self.layers = layers
    }

    public func encode() throws -> [UInt8] { try CanonicalJSON.encode(self) }

    /// Reads a document, checking its media type.
    public static func decode(_ bytes: [UInt8], what: String) throws -> Provenance {
        let p = try CanonicalJSON.decode(Provenance.self, from: bytes, what: what)
        guard p.mediaType == mediaType else {
            throw ImageError.invalid("\(what): not a Kiln provenance document (mediaType \(p.mediaType), expected \(mediaType))")
        }
        return p
    }

    /// The layer with this diffID, if the document lists it.
    public func layer(diffID: Digest) -> Layer? { layers.first { $0.diffID == diffID } }
}

extension Provenance.Layer {
    /// The layer as a whole: the base, one package, several, Kiln's files, one item…
    public var name: String {
        switch source {
        case .base: return "base " + (base ?? "image")
        case .generated: return "kiln: package metadata"
        case .runAsRoot: return "runAsRoot"
        case .packages:
            let p = packages ?? []
            return p.count == 1 ? "package \(p[0].name) \(p[0].version)" : "packages: " + p.map(\.name).joined(separator: " ")
        case .contents:
            if let o = origins, o.count == 1 { return o[0].name }
            let i = items ?? []
            return i.count == 1 ? i[0].name : "contents: " + i.map { "[\($0.index)]" }.joined(separator: "")
        }
    }

    /// The origin of one path of this layer (no leading `/`): the origin whose paths hold
    /// it or one of its ancestors, else the layer's name.
    public func origin(of path: String) -> String {
        guard let origins, origins.count > 1 else { return origins?.first?.name ?? name }
        var cur = Substring(path)
        while true {
            for o in origins where o.paths.contains(where: { $0 == cur }) { return o.name }
            guard let slash = cur.lastIndex(of: "/") else { return name }
            cur = cur[..<slash]
        }
    }

    /// A lookup for many paths: each origin path to its origin's name.
    public func originIndex() -> [String: String] {
        var out: [String: String] = [:]
        for o in origins ?? [] { for p in o.paths { out[p] = o.name } }
        return out
    }

    /// `origin(of:)` through an index made by `originIndex()`.
    public func origin(of path: String, index: [String: String]) -> String {
        guard let origins, origins.count > 1 else { return origins?.first?.name ?? name }
        var cur = Substring(path)
        while true {
            if let n = index[String(cur)] { return n }
            guard let slash = cur.lastIndex(of: "/") else { return name }
            cur = cur[..<slash]
        }
    }
}

extension Provenance {
    /// The fewest paths that name exactly the files of each group: for each file, its
    /// highest ancestor directory under which every file of `files` is in the same group.
    /// - Parameter files: path (no leading `/`) → group name; directories left out.
    public static func originPaths(_ files: [String: String]) -> [String: [String]] {
        // For each directory, its one group, or nil when files of several groups are below.
        var dirGroup: [String: String?] = [:]
        for (path, group) in files {
            var cur = Substring(path)
            while let slash = cur.lastIndex(of: "/") {
                cur = cur[..<slash]
                let key = String(cur)
                if let seen = dirGroup[key] {
                    if seen != group { dirGroup[key] = .some(nil) }
                } else {
                    dirGroup[key] = .some(group)
                }
            }
        }
        var out: [String: Set<String>] = [:]
        for (path, group) in files {
            var best = path
            var cur = Substring(path)
            while let slash = cur.lastIndex(of: "/") {
                cur = cur[..<slash]
                guard case .some(.some(let g)) = dirGroup[String(cur)], g == group else { break }
                best = String(cur)
            }
            out[group, default: []].insert(best)
        }
        return out.mapValues { $0.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) } }
    }
}
