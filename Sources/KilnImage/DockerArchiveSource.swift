import KilnArchive
import KilnOCI

/// Reads the first image of a docker-archive (`docker save` format) through its
/// `manifest.json`. Layers may be stored plain or compressed; the manifest Kiln
/// reports is the Docker v2s2 manifest a registry would hold for them.
public struct DockerArchiveSource: ImageSource {
    public let path: String
    let files: TarIndex

    public init(path: String) throws {
        self.path = path
        self.files = try TarIndex(path: path)
    }

    public func image() throws -> SourceImage {
        let what = "docker-archive:\(path)"
        let entries = try CanonicalJSON.decode([DockerArchiveManifestEntry].self,
                                               from: try files.open("manifest.json").readAll(limit: documentLimit),
                                               what: "\(what): manifest.json")
        guard let entry = entries.first else { throw ImageError.invalid("\(what): manifest.json lists no image") }
        let configBytes = try files.open(entry.Config).readAll(limit: documentLimit)
        let config = try CanonicalJSON.decode(ImageConfig.self, from: configBytes, what: "\(what): \(entry.Config)")
        guard config.rootfs.diff_ids.count == entry.Layers.count else {
            throw ImageError.invalid("\(what): manifest.json lists \(entry.Layers.count) layers but the config has \(config.rootfs.diff_ids.count) diff_ids")
        }
        let files = self.files
        var layers: [any StoredLayer] = []
        for (name, diffID) in zip(entry.Layers, config.rootfs.diff_ids) {
            let size = try files.size(name)
            var head = [UInt8](repeating: 0, count: 6)
            let n = try head.withUnsafeMutableBytes { try files.open(name).readFully(into: $0) }
            let compression = Compression.detect(Array(head[..<n]))
            // A plain layer's digest is its diffID (checked when its bytes are copied);
            // a compressed one must be hashed.
            let digest: Digest
            if compression == .none {
                digest = diffID
            } else {
                let h = HashingWriter(nil)
                try files.open(name).copy(to: h)
                digest = h.digest
            }
            let d = Descriptor(mediaType: layerMediaType(compression, oci: false), digest: digest, size: size)
            layers.append(BlobLayer(descriptor: d, diffID: diffID, open: { try files.open(name) }))
        }
        let manifest = Manifest(
            mediaType: MediaType.dockerManifest,
            config: Descriptor(mediaType: MediaType.dockerConfig, digest: .sha256(configBytes), size: Int64(configBytes.count)),
            layers: layers.map(\.descriptor))
        return SourceImage(manifestBytes: try CanonicalJSON.encode(manifest), manifest: manifest,
                           configBytes: configBytes, config: config, layers: layers, names: entry.RepoTags ?? [])
    }
}
