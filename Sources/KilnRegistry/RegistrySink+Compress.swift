#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// What a push does to stored layers that are uncompressed.
public enum PushLayerPolicy: Sendable {
    /// Push them as they are (`kiln build --push`, whose layers are compressed as the
    /// spec says, and library use).
    case keep
    /// Push every layer, the config and the manifest exactly as they are, and fail
    /// when that is impossible (`--preserve-digests`, as skopeo's).
    case preserveDigests
    /// Compress uncompressed layers (gzip unless `--dest-compress-format zstd`), as
    /// skopeo does by default; the compressed blobs are kept in `twins` (the Kiln
    /// cache) so the same layer pushed again is not compressed again.
    case compress(Compression, twins: CompressedTwins?)
}

/// What compression did during one push: the notice printed after it.
struct CompressionReport: Sendable {
    var layers = 0
    var reused = 0
    var compression = Compression.gzip
    var sourceManifestDigest: Digest?

    mutating func record(reused: Bool, compression: Compression) {
        layers += 1
        if reused { self.reused += 1 }
        self.compression = compression
    }

    /// One line, e.g. `uncompressed layers pushed as gzip: 1 compressed now, 1 from the
    /// cache; the manifest digest changed from sha256:… to sha256:… (--preserve-digests keeps it)`.
    func notice(manifestDigest: Digest) -> String {
        var s = "uncompressed layers pushed as \(compression.rawValue): \(layers - reused) compressed now, \(reused) from the cache"
        if let from = sourceManifestDigest, from != manifestDigest {
            s += "; the manifest digest changed from \(from) to \(manifestDigest) (--preserve-digests keeps it)"
        }
        // Artifacts refer to a manifest by digest: `kiln copy --referrers` refuses a copy
        // whose digest changed rather than copy artifacts whose subject is not there.
        return s
    }
}

extension RegistrySink {
    /// The compressed twin of an uncompressed stored layer: found in the cache, or
    /// made now (on the caller's thread: `prepare` runs on one of its own) into the
    /// cache, or into `spool` without one. The uncompressed bytes are checked against
    /// the layer's diffID on the way. Returns its descriptor, its file and whether it
    /// came from the cache.
    func compressedTwin(of layer: any StoredLayer, compression: Compression, twins: CompressedTwins?,
                        spool: String) throws -> (Descriptor, String, Bool) {
        if let twins, let hit = twins.lookup(diffID: layer.diffID, compression: compression) {
            return (hit.descriptor, hit.path, true)
        }
        let out = twins?.temporaryBlob() ?? spool
        do {
            let file = try FileWriter(creating: out, mode: 0o644)
            let compressed = HashingWriter(file)
            let plain = HashingWriter(compression.writer(compressed))
            _ = try layer.openBlob().copy(to: plain, bufferSize: 4 << 20)
            try plain.finish()
            guard plain.digest == layer.diffID else {
                throw RegistryError.digestMismatch(what: "layer \(layer.descriptor.digest) (uncompressed)",
                                                   expected: layer.diffID, actual: plain.digest)
            }
            let d = Descriptor(mediaType: layerMediaType(compression), digest: compressed.digest, size: compressed.count)
            if let twins {
                return (d, try twins.record(diffID: layer.diffID, compression: compression, descriptor: d, temporary: out), false)
            }
            return (d, out, false)
        } catch {
            unlink(out)
            throw error
        }
    }

    /// Downloads the uncompressed layers of a registry image that this push will
    /// compress (a registry destination otherwise mounts or streams them as they are).
    func fetchLayersToCompress(_ image: PendingImage) async throws {
        guard case .compress = layers else { return }
        var bySpool: [ObjectIdentifier: (BlobSpool, [Descriptor])] = [:]
        for case .stored(let l) in image.layers {
            guard let r = l as? RegistryLayer, Compression(mediaType: r.descriptor.mediaType) == Compression.none else { continue }
            bySpool[ObjectIdentifier(r.spool), default: (r.spool, [])].1.append(r.descriptor)
        }
        for (spool, descriptors) in bySpool.values { try await spool.fetch(descriptors) }
    }

    /// The stored manifest with its layers replaced by `layers` (some now compressed):
    /// config, annotations and subject as they were. A Docker manifest stays one when
    /// every layer has a Docker media type (gzip or none); zstd makes it OCI, with the
    /// config's media type to match.
    static func manifest(_ stored: StoredDocuments, layers: [Descriptor]) throws -> ([UInt8], String) {
        var m = try CanonicalJSON.decode(Manifest.self, from: stored.manifest, what: "manifest")
        let docker = stored.manifestMediaType == MediaType.dockerManifest
            && !layers.contains { Compression(mediaType: $0.mediaType) == .zstd }
        m.layers = layers.map { d in
            var d = d
            if let c = Compression(mediaType: d.mediaType) { d.mediaType = layerMediaType(c, oci: !docker) }
            return d
        }
        if docker {
            m.mediaType = MediaType.dockerManifest
        } else {
            m.mediaType = MediaType.ociManifest
            if m.config.mediaType == MediaType.dockerConfig { m.config.mediaType = MediaType.ociConfig }
        }
        return (try CanonicalJSON.encode(m), m.mediaType!)
    }
}
