import KilnArchive
import KilnOCI

/// Writes a docker-archive (the `docker save` format) that `docker load`, `podman load`
/// and `skopeo copy docker-archive:` read: `manifest.json`, the config, uncompressed
/// layers, and the pre-1.10 legacy layout the seed writes (`repositories`, and per
/// layer `<id>/VERSION`, `<id>/json` with the layer's tarsum, `<id>/layer.tar`).
/// `manifest.json` points at the same `<id>/layer.tar`, so no layer is stored twice.
///
/// A layer's `<id>` is the hex of its ChainID: unique per position in the stack,
/// and the same whenever the same layers are stacked the same way.
public struct DockerArchiveSink: ImageSink {
    public let store: TarStore

    public init(store: TarStore) { self.store = store }

    public func write(_ image: PendingImage) throws -> WrittenImage {
        do {
            let result = try writeUnchecked(image)
            try store.commit()
            return result
        } catch {
            store.abort()
            throw error
        }
    }

    private func writeUnchecked(_ image: PendingImage) throws -> WrittenImage {
        var diffIDs: [Digest] = []
        var layers: [Descriptor] = []
        var layerPaths: [String] = []
        var ids: [String] = []
        for input in image.layers {
            let parentChain = Digest.chainIDs(diffIDs).last
            func id(for diffID: Digest) -> String {
                parentChain.map { Digest.sha256(Array("\($0) \(diffID)".utf8)).hex } ?? diffID.hex
            }
            let written = try store.putStreamed(name: { "\(id(for: $0))/layer.tar" }) { out in
                switch input {
                case .produced(let producer, _):
                    try producer.writeTar(to: out)
                case .stored(let layer):
                    try layer.openUncompressed().copy(to: out)
                }
                try out.finish()
            }
            if case .stored(let layer) = input, written.digest != layer.diffID {
                throw ImageError.digestMismatch(what: "layer \(layer.descriptor.digest) (uncompressed)", expected: layer.diffID, actual: written.digest)
            }
            let layerID = id(for: written.digest)
            // The tarsum is read back from the archive (still in the page cache), so it is
            // computed by the same hardened reader whatever produced the layer.
            let checksum = try Tarsum.compute(reader: store.reader(for: "\(layerID)/layer.tar")!, version: .v1)
            var legacy: [String: String] = ["id": layerID, "checksum": checksum]
            if let parent = ids.last { legacy["parent"] = parent }
            if let created = image.config.created { legacy["created"] = created }
            try store.putDirectory(layerID)
            try store.putFile("\(layerID)/VERSION", Array("1.0".utf8))
            try store.putFile("\(layerID)/json", try CanonicalJSON.encode(legacy))
            diffIDs.append(written.digest)
            layers.append(Descriptor(mediaType: MediaType.dockerLayer, digest: written.digest, size: written.size))
            layerPaths.append("\(layerID)/layer.tar")
            ids.append(layerID)
        }
        let configBytes = try image.configBytes(diffIDs: diffIDs)
        let configDigest = Digest.sha256(configBytes)
        try store.putFile("\(configDigest.hex).json", configBytes)
        let tag = image.tag ?? PendingImage.derivedTag(configDigest: configDigest)
        let repoTag = "\(image.name):\(tag)"
        let manifest = [DockerArchiveManifestEntry(Config: "\(configDigest.hex).json", RepoTags: [repoTag], Layers: layerPaths)]
        try store.putFile("manifest.json", try CanonicalJSON.encode(manifest))
        if let top = ids.last {
            try store.putFile("repositories", try CanonicalJSON.encode([image.name: [tag: top]]))
        }
        // The digest a registry would show for this image as a Docker v2s2 manifest.
        let v2 = Manifest(mediaType: MediaType.dockerManifest,
                          config: Descriptor(mediaType: MediaType.dockerConfig, digest: configDigest, size: Int64(configBytes.count)),
                          layers: layers)
        return WrittenImage(reference: repoTag, tag: tag, manifestDigest: Digest.sha256(try CanonicalJSON.encode(v2)),
                            configDigest: configDigest, layers: layers, diffIDs: diffIDs)
    }
}

/// One entry of a docker-archive's `manifest.json`.
public struct DockerArchiveManifestEntry: Codable, Sendable {
    public var Config: String
    public var RepoTags: [String]?
    public var Layers: [String]
}

