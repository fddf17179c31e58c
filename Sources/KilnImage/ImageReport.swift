import Foundation
import KilnOCI

/// What `kiln report` shows of one image: its layers (each named, as `docker history`
/// names them, by its digest's first 12 hex digits), where their files came from (the
/// provenance document, when there is one), the largest files, the bytes shipped for
/// nothing (files a later layer overwrites or deletes, identical files in several
/// layers), its packages, and its config. Rendered to one self-contained HTML page by
/// `html()` (ImageReport+HTML.swift); everything here is sorted, nothing read from the
/// clock, so the same image gives the same bytes.
public struct ImageReport: Sendable {
    public struct Layer: Sendable {
        public var index: Int
        public var digest: Digest
        public var diffID: Digest
        /// The blob's size, as stored.
        public var size: Int64
        /// Regular files in the layer's tar and their bytes.
        public var files: Int
        public var bytes: Int64
        /// The history entry's `created_by` (and comment).
        public var createdBy: String?
        /// What put the layer there, from the provenance document.
        public var provenance: Provenance.Layer?
        /// The first 12 hex digits of the digest.
        public var shortName: String { String(digest.hex.prefix(12)) }
    }

    public struct Package: Sendable, Equatable {
        public var name: String
        public var version: String
        public var license: String?
        public init(name: String, version: String, license: String?) {
            self.name = name
            self.version = version
            self.license = license
        }
    }

    /// Files of one content digest visible in several layers.
    public struct Duplicate: Sendable {
        public var digest: Digest
        public var size: Int64
        public var paths: [(layer: Int, path: String)]
        /// Bytes beyond the first layer's copy.
        public var wasted: Int64
    }

    public var reference: String
    public var manifestDigest: Digest
    public var config: ImageConfig
    public var configBytes: [UInt8]
    public var layers: [Layer]
    public var files: ImageFiles
    public var provenance: Provenance?
    public var packages: [Package]
    public var duplicates: [Duplicate]

    /// Reads `image`'s layers (hashing their files) and gathers the report.
    public init(image: SourceImage, reference: String, provenance: Provenance?, packages: [Package],
                limits: RootfsLimits = RootfsLimits()) throws {
        let files = try ImageFiles.read(image, hashing: true, limits: limits)
        var history = (image.config.history ?? []).filter { $0.empty_layer != true }
        if history.count != image.layers.count { history = [] }
        var layers: [Layer] = []
        for (i, l) in image.layers.enumerated() {
            let regular = files.layers[i].filter { $0.kind == .file }
            let h = history.isEmpty ? nil : history[i]
            let createdBy = h.map { [$0.created_by, $0.comment].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " — ") }
            layers.append(Layer(index: i, digest: l.descriptor.digest, diffID: l.diffID, size: l.descriptor.size,
                                files: regular.count, bytes: regular.reduce(0) { $0 + $1.size },
                                createdBy: createdBy?.isEmpty == false ? createdBy : nil,
                                provenance: provenance?.layer(diffID: l.diffID)))
        }
        self.reference = reference
        self.manifestDigest = image.manifestDigest
        self.config = image.config
        self.configBytes = image.configBytes
        self.layers = layers
        self.files = files
        self.provenance = provenance
        var packages = packages
        if packages.isEmpty, let provenance {
            packages = provenance.layers.flatMap { $0.packages ?? [] }.map { Package(name: $0.name, version: $0.version, license: $0.license) }
        }
        self.packages = packages.sorted { ($0.name, $0.version) < ($1.name, $1.version) }
        self.duplicates = Self.duplicates(files.visible)
    }

    /// Where a file of layer `layer` came from: the provenance's origin, else "layer N".
    public func origin(layer: Int, path: String) -> String {
        layers[layer].provenance?.origin(of: path) ?? "layer \(layer + 1)"
    }

    /// Identical regular files (by digest, non-empty) that more than one layer holds.
    static func duplicates(_ visible: [ImageFiles.Entry]) -> [Duplicate] {
        var byDigest: [Digest: [ImageFiles.Entry]] = [:]
        for e in visible where e.kind == .file && e.size > 0 {
            if let d = e.digest { byDigest[d, default: []].append(e) }
        }
        var out: [Duplicate] = []
        for (d, es) in byDigest {
            let layers = Set(es.map(\.layer))
            guard layers.count > 1 else { continue }
            out.append(Duplicate(digest: d, size: es[0].size, paths: es.map { ($0.layer, $0.path) },
                                 wasted: es[0].size * Int64(layers.count - 1)))
        }
        return out.sorted { $0.wasted != $1.wasted ? $0.wasted > $1.wasted : $0.digest < $1.digest }
    }

    public var totalBytes: Int64 { layers.reduce(0) { $0 + $1.bytes } }
    public var wastedBytes: Int64 { files.wasted.reduce(0) { $0 + $1.entry.size } + duplicates.reduce(0) { $0 + $1.wasted } }

    /// Packages from an SBOM: SPDX 2.x JSON (`packages`: name, versionInfo,
    /// licenseDeclared) or CycloneDX JSON (`components`: name, version, licenses). The
    /// packages an SPDX document describes (the image itself) are left out.
    public static func packages(fromSBOM bytes: [UInt8], what: String) throws -> [Package] {
        guard let doc = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw ImageError.invalid("\(what): not a JSON SBOM")
        }
        var out: [Package] = []
        func license(_ s: Any?) -> String? {
            guard let s = s as? String, !s.isEmpty, s != "NOASSERTION", s != "NONE" else { return nil }
            return s
        }
        if let pkgs = doc["packages"] as? [[String: Any]] {
            let described = Set(doc["documentDescribes"] as? [String] ?? [])
            for p in pkgs {
                guard let name = p["name"] as? String, let version = p["versionInfo"] as? String,
                      !described.contains(p["SPDXID"] as? String ?? "") else { continue }
                out.append(Package(name: name, version: version,
                                   license: license(p["licenseDeclared"]) ?? license(p["licenseConcluded"])))
            }
        } else if let comps = doc["components"] as? [[String: Any]] {
            for c in comps {
                guard let name = c["name"] as? String, let version = c["version"] as? String else { continue }
                let ls = (c["licenses"] as? [[String: Any]] ?? []).compactMap { l -> String? in
                    if let e = l["expression"] as? String { return e }
                    let lic = l["license"] as? [String: Any]
                    return (lic?["id"] as? String) ?? (lic?["name"] as? String)
                }
                out.append(Package(name: name, version: version, license: ls.isEmpty ? nil : ls.joined(separator: " AND ")))
            }
        } else {
            throw ImageError.invalid("\(what): neither an SPDX (packages) nor a CycloneDX (components) document")
        }
        return out
    }
}
