import KilnArchive
import KilnOCI

/// Writes a docker-archive (the `docker save` format) that `docker load`, `podman load`
/// and `skopeo copy docker-archive:` read: `manifest.json`, the configs, uncompressed
/// layers, and the pre-1.10 legacy layout the seed writes (`repositories`, and per
/// layer `<id>/VERSION`, `<id>/json` with the layer's tarsum, `<id>/layer.tar`).
/// `manifest.json` points at the same `<id>/layer.tar`, so no layer is stored twice,
/// and several images share the layers they have in common (mergeImages).
///
/// A layer's `<id>` is the hex of its ChainID: unique per position in the stack,
/// and the same whenever the same layers are stacked the same way.
///
/// Each `<id>/json` is the v1 image JSON the seed writes (`baseJson` plus `checksum`,
/// `parent`, `id` and `Size`), so a loader that only knows the legacy layout (Docker's
/// loader for archives without `manifest.json`, in Docker until moby removed it in
/// 2025) still gets the image's config; see `LegacyLayerJSON`.
public struct DockerArchiveSink: ImageSink {
    public let store: any LayoutStore
    /// A sequential store (a pipe) needs each layer's name and size before its bytes,
    /// so layers are read twice: once for their digests, once to write them.
    let sequential: Bool
    /// The most bytes a compressed layer may decompress to (archives store plain tars):
    /// a decompression bomb stops here with an error instead of filling the disk.
    public var maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize

    /// An archive file, written to a temporary file and renamed.
    public init(store: TarStore) {
        self.store = store
        self.sequential = false
    }

    /// An archive file compressed as a whole, as the seed's `tar … | pigz -nT`.
    public init(store: CompressedTarStore) {
        self.store = store
        self.sequential = false
    }

    /// An archive file at `path`: gzip-compressed when the name ends in `.tar.gz` or
    /// `.tgz`, as the seed's output, zstd-compressed for `.tar.zst` or `.tzst`, plain
    /// otherwise. `docker load` reads all three; containers/image (skopeo, podman)
    /// decompresses on load too, but Debian bookworm's 5.23.1 fails on every compressed
    /// docker-archive, GNU gzip's included.
    public init(path: String) throws {
        let compression = DockerArchiveSink.compression(forName: path)
        if compression != .none {
            self.init(store: try CompressedTarStore(path: path, compression: compression))
        } else {
            self.init(store: try TarStore(path: path))
        }
    }

    /// The whole-archive compression an output name asks for (`.none` for any other name).
    public static func compression(forName path: String) -> Compression {
        let name = path.lowercased()
        if name.hasSuffix(".tar.gz") || name.hasSuffix(".tgz") { return .gzip }
        if name.hasSuffix(".tar.zst") || name.hasSuffix(".tzst") { return .zstd }
        return .none
    }

    /// An archive streamed front to back, for `| podman load` (compress the store's
    /// writer for a compressed stream: `StreamStore(Compression.gzip.writer(out))`).
    public init(streamingTo store: StreamStore) {
        self.store = store
        self.sequential = true
    }

    public func write(_ image: PendingImage) throws -> WrittenImage {
        try writeAll([image])[0]
    }

    /// Writes several images into one archive that `docker load` and `podman load`
    /// read in one go.
    public func writeAll(_ images: [PendingImage]) throws -> [WrittenImage] {
        ProgressBoard.shared.phase("writing")
        do {
            var entries: [DockerArchiveManifestEntry] = []
            var repositories: [String: [String: String]] = [:]
            var results: [WrittenImage] = []
            var legacy = LegacyLayers()
            for image in images {
                let (entry, result, top) = try writeImage(image, legacy: &legacy)
                entries.append(entry)
                if let top { repositories[image.name, default: [:]][result.tag] = top }
                results.append(result)
            }
            // Written once every image is known: a layer that is one image's top and
            // another's middle must carry the config of the image it tops.
            for id in legacy.order {
                try store.putFile("\(id)/json", try CanonicalJSON.encode(legacy.documents[id]!))
            }
            try store.putFile("manifest.json", try CanonicalJSON.encode(entries))
            if !repositories.isEmpty { try store.putFile("repositories", try CanonicalJSON.encode(repositories)) }
            try store.commit()
            return results
        } catch {
            store.abort()
            throw error
        }
    }

    private func writeImage(_ image: PendingImage, legacy: inout LegacyLayers)
        throws -> (DockerArchiveManifestEntry, WrittenImage, String?) {
        var diffIDs: [Digest] = []
        var layers: [Descriptor] = []
        var ids: [String] = []
        for input in image.layers {
            let parentChain = Digest.chainIDs(diffIDs).last
            func id(for diffID: Digest) -> String {
                parentChain.map { Digest.sha256(Array("\($0) \(diffID)".utf8)).hex } ?? diffID.hex
            }
            let (diffID, size, checksum) = try writeLayer(input, id: id)
            let layerID = id(for: diffID)
            if legacy.documents[layerID] == nil {
                try store.putDirectory(layerID)
                try store.putFile("\(layerID)/VERSION", Array("1.0".utf8))
                legacy.add(LegacyLayerJSON(id: layerID, parent: ids.last, checksum: checksum, size: size, image: image.config))
            }
            diffIDs.append(diffID)
            layers.append(Descriptor(mediaType: MediaType.dockerLayer, digest: diffID, size: size))
            ids.append(layerID)
        }
        if let top = ids.last { legacy.setTop(top, image: image.config) }
        let configBytes = try image.configBytes(diffIDs: diffIDs)
        let configDigest = Digest.sha256(configBytes)
        try store.putFile("\(configDigest.hex).json", configBytes)
        let tag = image.tag ?? PendingImage.derivedTag(configDigest: configDigest)
        let repoTag = "\(image.name):\(tag)"
        let entry = DockerArchiveManifestEntry(Config: "\(configDigest.hex).json", RepoTags: [repoTag],
                                               Layers: ids.map { "\($0)/layer.tar" })
        // The digest a registry would show for this image as a Docker v2s2 manifest.
        let v2 = Manifest(mediaType: MediaType.dockerManifest,
                          config: Descriptor(mediaType: MediaType.dockerConfig, digest: configDigest, size: Int64(configBytes.count)),
                          layers: layers)
        let result = WrittenImage(reference: repoTag, tag: tag, manifestDigest: Digest.sha256(try CanonicalJSON.encode(v2)),
                                  configDigest: configDigest, layers: layers, diffIDs: diffIDs)
        return (entry, result, ids.last)
    }

    /// Writes one layer's uncompressed tar as `<id>/layer.tar`; returns its diffID, size
    /// and tarsum.
    private func writeLayer(_ input: LayerInput, id: (Digest) -> String) throws -> (Digest, Int64, String) {
        switch input {
        case .produced(let producer, _):
            let tarsum = TarsumAccumulator()
            if sequential {
                let hasher = HashingWriter(nil)
                try producer.writeTar(to: hasher, tarsum: tarsum)
                let name = "\(id(hasher.digest))/layer.tar"
                let written = try store.putKnown(name, size: producer.uncompressedSize) { try producer.writeTar(to: $0) }
                guard written == hasher.digest else {
                    throw ImageError.invalid("\(name): the layer changed between its two passes (did a file change during the build?)")
                }
                return (written, producer.uncompressedSize, tarsum.finish())
            }
            let written = try store.putStreamed(name: { "\(id($0))/layer.tar" }) { out in
                try producer.writeTar(to: out, tarsum: tarsum)
            }
            return (written.digest, written.size, tarsum.finish())
        case .stored(let layer) where layer.localFile != nil && layer.tarsum != nil
            && Compression(mediaType: layer.descriptor.mediaType) == Compression.none:
            // A cache entry of the plain tar: copied in the kernel, digests known.
            try store.putLocalFile("\(id(layer.diffID))/layer.tar", from: layer.localFile!, size: layer.descriptor.size)
            return (layer.diffID, layer.descriptor.size, layer.tarsum!)
        case .stored(let layer):
            // The tarsum is computed by the hardened reader from the bytes as they pass.
            func pass(into out: ByteWriter) throws -> (String, Int64, Digest) {
                let counted = HashingWriter(out)
                let tee = TeeReader(try layer.openUncompressed(limit: maxLayerSize), counted)
                let checksum = try Tarsum.compute(reader: tee, version: .v1)
                try tee.drain()
                return (checksum, counted.count, counted.digest)
            }
            let what = "layer \(layer.descriptor.digest) (uncompressed)"
            if sequential {
                let (checksum, size, digest) = try pass(into: NullWriter())
                guard digest == layer.diffID else { throw ImageError.digestMismatch(what: what, expected: layer.diffID, actual: digest) }
                _ = try store.putKnown("\(id(digest))/layer.tar", size: size) { out in _ = try pass(into: out) }
                return (digest, size, checksum)
            }
            var checksum = ""
            let written = try store.putStreamed(name: { "\(id($0))/layer.tar" }) { out in
                checksum = try pass(into: out).0
            }
            guard written.digest == layer.diffID else {
                throw ImageError.digestMismatch(what: what, expected: layer.diffID, actual: written.digest)
            }
            return (written.digest, written.size, checksum)
        }
    }
}

/// One entry of a docker-archive's `manifest.json`.
public struct DockerArchiveManifestEntry: Codable, Sendable {
    public var Config: String
    public var RepoTags: [String]?
    public var Layers: [String]
}

/// Copies everything read through it to a writer.
final class TeeReader: ByteReader {
    let source: ByteReader
    let copy: ByteWriter
    init(_ source: ByteReader, _ copy: ByteWriter) {
        self.source = source
        self.copy = copy
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try source.read(into: buffer)
        if n > 0 { try copy.write(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        return n
    }
    /// Reads (and copies) whatever the consumer left, such as padding after the tar's end.
    func drain() throws {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while try read(into: buf) > 0 {}
    }
}
