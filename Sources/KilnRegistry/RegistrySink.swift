#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// Writes an image to a registry (spec.md "Push"): blobs first — skipped when the
/// registry has them, mounted from another repository of the same registry when the
/// layer comes from there, uploaded otherwise — then the config, then the manifest
/// under the reference's tag (or digest), with its own media type as Content-Type.
///
/// Layers being built (`LayerInput.produced`) are written once to a spooled temporary
/// file, compressed, to learn their digest and diffID; the registry is then asked
/// whether it has that digest, and the file is uploaded only if not.
public final class RegistrySink: ImageSink, Sendable {
    public let reference: RegistryReference
    public let client: RegistryClient

    public init(reference: RegistryReference, options: RegistryOptions) throws {
        self.reference = reference
        self.client = try RegistryClient(registry: reference.registry, options: options)
    }

    /// A layer ready to push: its descriptor, diffID and where its bytes are.
    struct ReadyLayer: Sendable {
        var descriptor: Descriptor
        var diffID: Digest
        var spooled: String?
        var stored: (any StoredLayer)?
    }

    public func write(_ image: PendingImage) throws -> WrittenImage {
        try push(image).image
    }

    /// What a push wrote, with the size of the manifest it put (`kiln push --json`
    /// reports it, as `pull` and `copy` report the manifest they moved).
    public struct Pushed: Sendable {
        public var image: WrittenImage
        public var manifestSize: Int64
    }

    /// Writes `image` as ``write(_:)`` does and also tells the manifest's size.
    public func push(_ image: PendingImage) throws -> Pushed {
        let tmp = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            + "/kiln-push-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(tmp, 0o700) == 0 else { throw RegistryError.transport("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        defer {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) { for n in names { unlink(tmp + "/" + n) } }
            rmdir(tmp)
        }
        // Produce on this thread (compression is CPU work, kept off the concurrency pool).
        var ready: [ReadyLayer] = []
        for (i, input) in image.layers.enumerated() {
            switch input {
            case .produced(let producer, let compression):
                let path = tmp + "/layer-\(i)"
                let file = try FileWriter(creating: path, mode: 0o600)
                let compressed = HashingWriter(file)
                let uncompressed = HashingWriter(compression.writer(compressed))
                try producer.writeTar(to: uncompressed)
                try uncompressed.finish()
                ready.append(ReadyLayer(descriptor: Descriptor(mediaType: layerMediaType(compression), digest: compressed.digest,
                                                               size: compressed.count),
                                        diffID: uncompressed.digest, spooled: path))
            case .stored(let layer):
                ready.append(ReadyLayer(descriptor: layer.descriptor, diffID: layer.diffID, stored: layer))
            }
        }
        let layers = ready
        return try runBlocking { try await self.push(image, layers: layers) }
    }

    func push(_ image: PendingImage, layers: [ReadyLayer]) async throws -> Pushed {
        let repo = reference.repository
        let client = self.client
        let sameRegistry = reference.registry
        // Layers, a few at a time.
        let limit = max(1, client.options.parallelism)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let l = layers[next]
                next += 1
                group.addTask {
                    var mountFrom: String?
                    if let r = l.stored as? RegistryLayer, r.registry == sameRegistry, r.repository != repo {
                        mountFrom = r.repository
                    }
                    _ = try await client.pushBlob(repository: repo, descriptor: l.descriptor, mountFrom: mountFrom) {
                        if let p = l.spooled { return try FileReader(path: p) }
                        if let r = l.stored as? RegistryLayer { return try await r.openBlobAsync() }
                        return try l.stored!.openBlob()
                    }
                }
            }
            while next < min(limit, layers.count) { add() }
            while try await group.next() != nil {
                if next < layers.count { add() }
            }
        }
        let diffIDs = layers.map(\.diffID)
        let descriptors = layers.map(\.descriptor)

        // Config and manifest: a copy keeps the source's bytes, so digests are preserved.
        let manifestBytes: [UInt8]
        let manifestType: String
        let configBytes: [UInt8]
        if let stored = image.stored,
           stored.manifestMediaType == MediaType.ociManifest || stored.manifestMediaType == MediaType.dockerManifest {
            configBytes = stored.config
            manifestBytes = stored.manifest
            manifestType = stored.manifestMediaType
        } else {
            var config = image.config
            if let stored = image.stored {
                configBytes = stored.config
                config = try CanonicalJSON.decode(ImageConfig.self, from: configBytes, what: "config")
            } else {
                config.rootfs = RootFS(diffIDs: diffIDs)
                configBytes = try CanonicalJSON.encode(config)
            }
            let manifest = Manifest(
                mediaType: MediaType.ociManifest,
                config: Descriptor(mediaType: MediaType.ociConfig, digest: .sha256(configBytes), size: Int64(configBytes.count)),
                layers: descriptors.map { d in var d = d; d.mediaType = ociLayerMediaType(d.mediaType); return d })
            manifestBytes = try CanonicalJSON.encode(manifest)
            manifestType = MediaType.ociManifest
        }
        let manifest = try CanonicalJSON.decode(Manifest.self, from: manifestBytes, what: "manifest")
        guard manifest.config.digest == .sha256(configBytes) else {
            throw RegistryError.digestMismatch(what: "config", expected: manifest.config.digest, actual: .sha256(configBytes))
        }
        let configDescriptor = Descriptor(mediaType: manifest.config.mediaType, digest: manifest.config.digest, size: Int64(configBytes.count))
        _ = try await client.pushBlob(repository: repo, descriptor: configDescriptor) { BufferReader(configBytes) }

        let manifestDigest = Digest.sha256(manifestBytes)
        if let pinned = reference.digest, pinned != manifestDigest {
            throw RegistryError.digestMismatch(what: "\(reference): manifest to push", expected: pinned, actual: manifestDigest)
        }
        let tag = reference.tag ?? (reference.digest == nil ? (image.tag ?? "latest") : nil)
        try await client.putManifest(repository: repo, reference: tag ?? manifestDigest.description,
                                     bytes: manifestBytes, mediaType: manifestType)
        client.options.progress.close()
        let written = WrittenImage(reference: reference.name + (tag.map { ":\($0)" } ?? "@\(manifestDigest)"), tag: tag ?? "",
                                   manifestDigest: manifestDigest, configDigest: configDescriptor.digest,
                                   layers: descriptors, diffIDs: diffIDs)
        return Pushed(image: written, manifestSize: Int64(manifestBytes.count))
    }
}
