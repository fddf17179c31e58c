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
///
/// Stored layers that are uncompressed (a docker-archive's) are compressed on the way
/// when `layers` says so (`kiln push` and `kiln copy` do by default, as skopeo does):
/// see `PushLayerPolicy` and `RegistrySink+Compress.swift`.
public final class RegistrySink: Sendable {
    public let reference: RegistryReference
    public let client: RegistryClient
    public let layers: PushLayerPolicy
    /// Told one line when compression changed what is pushed (the command prints it).
    public let notice: (@Sendable (String) -> Void)?

    public init(reference: RegistryReference, options: RegistryOptions, layers: PushLayerPolicy = .keep,
                notice: (@Sendable (String) -> Void)? = nil) throws {
        self.reference = reference
        self.client = try RegistryClient(registry: reference.registry, options: options)
        self.layers = layers
        self.notice = notice
    }

    /// A layer ready to push: its descriptor, diffID and where its bytes are.
    struct ReadyLayer: Sendable {
        var descriptor: Descriptor
        var diffID: Digest
        var spooled: String?
        var stored: (any StoredLayer)?
        /// Compressed on the way: the stored manifest no longer describes it, and its
        /// bytes are the spooled ones (`stored` only says where it came from).
        var changed = false
    }

    /// An image whose new layers are written, compressed, to spool files: what `upload` sends.
    public struct Prepared: Sendable {
        let layers: [ReadyLayer]
        let directory: String
        let configBytes: [UInt8]
        let configDescriptor: Descriptor
        let manifestBytes: [UInt8]
        let manifestType: String
        /// The reference (tag or digest) the manifest goes under.
        let manifestReference: String
        /// What the push will have written once `upload` succeeds.
        public let written: WrittenImage
        /// What compression did, for the notice (nil: nothing was compressed).
        var compressed: CompressionReport?

        /// Deletes the spooled layers.
        public func remove() {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
                for n in names { unlink(directory + "/" + n) }
            }
            rmdir(directory)
        }
    }

    /// What a push wrote, with the size of the manifest it put (`kiln push --json`
    /// reports it, as `pull` and `copy` report the manifest they moved).
    public struct Pushed: Sendable {
        public var image: WrittenImage
        public var manifestSize: Int64
        /// The media type the manifest was put with.
        public var manifestType: String = MediaType.ociManifest
    }

    /// Pushes `image`: its new layers are produced on a thread of their own (tar and
    /// compression are CPU work, kept off the concurrency pool), then everything is uploaded.
    public func push(_ image: PendingImage) async throws -> Pushed {
        try await push(image, byDigest: false)
    }

    /// `push`; with `byDigest` the manifest goes under its digest (see `prepare`).
    func push(_ image: PendingImage, byDigest: Bool) async throws -> Pushed {
        // A registry source's uncompressed layers are compressed here, so they must be local first.
        try await fetchLayersToCompress(image)
        let prepared = try await OwnThread.run("kiln-push-layers") { try self.prepare(image, byDigest: byDigest) }
        defer { prepared.remove() }
        let pushed = try await upload(prepared)
        if let c = prepared.compressed, let notice { notice(c.notice(manifestDigest: pushed.image.manifestDigest)) }
        return pushed
    }

    /// Writes the image's new layers (`LayerInput.produced`) to spool files, learning
    /// their digests and diffIDs; stored layers are passed on as they are. Synchronous:
    /// call it from a thread of its own (`OwnThread`).
    public func prepare(_ image: PendingImage) throws -> Prepared {
        try prepare(image, byDigest: false)
    }

    /// `prepare`; with `byDigest` the manifest goes under its digest, not a tag (an
    /// image of an index, whose tag names the index).
    func prepare(_ image: PendingImage, byDigest: Bool) throws -> Prepared {
        let tmp = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
            + "/kiln-push-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(tmp, 0o700) == 0 else { throw RegistryError.transport("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ready: [ReadyLayer] = []
        var report = CompressionReport()
        do {
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
                    if case .compress(let c, let twins) = layers, Compression(mediaType: layer.descriptor.mediaType) == Compression.none {
                        let (d, path, reused) = try compressedTwin(of: layer, compression: c, twins: twins, spool: tmp + "/layer-\(i)")
                        ready.append(ReadyLayer(descriptor: d, diffID: layer.diffID, spooled: path, stored: layer, changed: true))
                        report.record(reused: reused, compression: c)
                    } else {
                        ready.append(ReadyLayer(descriptor: layer.descriptor, diffID: layer.diffID, stored: layer))
                    }
                }
            }
            var prepared = try documents(image, layers: ready, directory: tmp, byDigest: byDigest)
            if report.layers > 0 {
                report.sourceManifestDigest = image.stored.map { Digest.sha256($0.manifest) }
                prepared.compressed = report
            }
            return prepared
        } catch {
            if let names = try? FileManager.default.contentsOfDirectory(atPath: tmp) { for n in names { unlink(tmp + "/" + n) } }
            rmdir(tmp)
            throw error
        }
    }

    /// Uploads a prepared image: blobs a few at a time (skipped when the registry has
    /// them, mounted when they come from another repository of it), then the config,
    /// then the manifest.
    public func upload(_ prepared: Prepared) async throws -> Pushed {
        let repo = reference.repository
        let client = self.client
        let sameRegistry = reference.registry
        let layers = prepared.layers
        // Layers, a few at a time.
        let limit = max(1, client.options.parallelism)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let l = layers[next]
                next += 1
                group.addTask {
                    var mountFrom: String?
                    if !l.changed, let r = l.stored as? RegistryLayer, r.registry == sameRegistry, r.repository != repo {
                        mountFrom = r.repository
                    }
                    _ = try await client.pushBlob(repository: repo, descriptor: l.descriptor, mountFrom: mountFrom) {
                        if let p = l.spooled { return try FileReader(path: p) }
                        if let r = l.stored as? RegistryLayer { return try await r.openBlobAsync() }
                        // A local stored layer: opening it is a file open, not a pipeline.
                        return try l.stored!.openBlob()
                    }
                }
            }
            while next < min(limit, layers.count) { add() }
            while try await group.next() != nil {
                if next < layers.count { add() }
            }
        }
        // The config comes from where the layers came from: mounted from there too.
        let configFrom = layers.lazy.compactMap { $0.stored as? RegistryLayer }
            .first { $0.registry == sameRegistry && $0.repository != repo }?.repository
        let configBytes = prepared.configBytes
        _ = try await client.pushBlob(repository: repo, descriptor: prepared.configDescriptor, mountFrom: configFrom) {
            BufferReader(configBytes)
        }
        try await client.putManifest(repository: repo, reference: prepared.manifestReference,
                                     bytes: prepared.manifestBytes, mediaType: prepared.manifestType)
        client.options.progress.close()
        return Pushed(image: prepared.written, manifestSize: Int64(prepared.manifestBytes.count), manifestType: prepared.manifestType)
    }

    /// The config and manifest for `image` with `layers`: a copy keeps the source's
    /// bytes, so digests are preserved; a built image gets an OCI manifest.
    func documents(_ image: PendingImage, layers: [ReadyLayer], directory: String, byDigest: Bool = false) throws -> Prepared {
        let diffIDs = layers.map(\.diffID)
        let descriptors = layers.map(\.descriptor)

        // Config and manifest: a copy keeps the source's bytes, so digests are preserved.
        let manifestBytes: [UInt8]
        let manifestType: String
        let configBytes: [UInt8]
        let changed = layers.contains { $0.changed }
        if let stored = image.stored,
           stored.manifestMediaType == MediaType.ociManifest || stored.manifestMediaType == MediaType.dockerManifest {
            configBytes = stored.config
            if changed {
                // Compressed layers: the same config (diffIDs do not change), a manifest
                // naming the new blobs (RegistrySink+Compress.swift).
                (manifestBytes, manifestType) = try Self.manifest(stored, layers: descriptors)
            } else {
                manifestBytes = stored.manifest
                manifestType = stored.manifestMediaType
            }
        } else {
            if case .preserveDigests = self.layers, let stored = image.stored {
                throw RegistryError.unsupported("--preserve-digests: the source's manifest (\(stored.manifestMediaType)) would have to be rewritten as an OCI manifest, which changes its digest")
            }
            configBytes = try image.configBytes(diffIDs: diffIDs)
            manifestBytes = try PendingImage.ociManifest(config: configBytes, layers: descriptors)
            manifestType = MediaType.ociManifest
        }
        let manifest = try CanonicalJSON.decode(Manifest.self, from: manifestBytes, what: "manifest")
        guard manifest.config.digest == .sha256(configBytes) else {
            throw RegistryError.digestMismatch(what: "config", expected: manifest.config.digest, actual: .sha256(configBytes))
        }
        let configDescriptor = Descriptor(mediaType: manifest.config.mediaType, digest: manifest.config.digest, size: Int64(configBytes.count))

        let manifestDigest = Digest.sha256(manifestBytes)
        if !byDigest, let pinned = reference.digest, pinned != manifestDigest {
            throw RegistryError.digestMismatch(what: "\(reference): manifest to push", expected: pinned, actual: manifestDigest)
        }
        let tag = byDigest ? nil : reference.tag ?? (reference.digest == nil ? (image.tag ?? "latest") : nil)
        let written = WrittenImage(reference: reference.name + (tag.map { ":\($0)" } ?? "@\(manifestDigest)"), tag: tag ?? "",
                                   manifestDigest: manifestDigest, configDigest: configDescriptor.digest,
                                   layers: descriptors, diffIDs: diffIDs)
        return Prepared(layers: layers, directory: directory, configBytes: configBytes, configDescriptor: configDescriptor,
                        manifestBytes: manifestBytes, manifestType: manifestType,
                        manifestReference: tag ?? manifestDigest.description, written: written)
    }
}
