import KilnArchive
import KilnImage
import KilnOCI

/// Any image location the CLI accepts, in skopeo's transport syntax: the local
/// transports of `ImageReference` (docker-archive:, oci:, oci-archive:) and
/// `docker://` registries. KilnImage knows nothing of registries; this is where the
/// transports meet, so every command that names an image goes through here.
public enum ImageLocation: Sendable, CustomStringConvertible {
    case local(ImageReference)
    case registry(RegistryReference)

    public init(parsing s: String) throws {
        if s.hasPrefix("docker:") {
            self = .registry(try RegistryReference(parsing: s))
            return
        }
        do {
            self = .local(try ImageReference(parsing: s))
        } catch {
            if !s.contains(":") || s.hasPrefix("docker") {
                throw ImageError.invalid("\"\(s)\" names no transport: use docker://HOST/REPO[:TAG], docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH[:TAG]")
            }
            let transport = s.prefix { $0 != ":" }
            if !["docker-archive", "oci", "oci-archive"].contains(String(transport)) {
                throw ImageError.invalid("unknown transport \"\(transport)\" in \"\(s)\" (supported: docker, docker-archive, oci, oci-archive)")
            }
            throw error
        }
    }

    /// Opens the image: a registry's manifest and config are fetched and checked now;
    /// a local archive or layout is opened on a thread of its own (opening a compressed
    /// docker-archive decompresses it). With `fetchLayers`, a registry image's layers
    /// are downloaded too, so that synchronous readers (local sinks, flattening) can read them.
    public func open(options: RegistryOptions, platform: Platform = .host, fetchLayers: Bool,
                     maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize) async throws -> OpenedImage {
        switch self {
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                // A layout entry that is an index is followed to `platform`, as a registry's is.
                if let layout = try OCILayout(r) {
                    let tag = r.layoutTag
                    let entry = try layout.entry(tag: tag)
                    if PlatformSelection.isIndex(entry.mediaType) {
                        let index = try CanonicalJSON.decode(Index.self, from: try layout.document(entry, what: "index"), what: "\(r): index")
                        let chosen = try PlatformSelection.select(from: index, platform: platform, what: r.description)
                        guard PlatformSelection.isImageManifest(chosen.mediaType) else {
                            throw ImageError.invalid("\(r): the \(platform) entry is itself an index (nested indexes are not read)")
                        }
                        let source = OCILayoutSource(blobs: layout.files, tag: tag, what: r.description, manifest: chosen)
                        return OpenedImage(image: try source.image(), registry: nil)
                    }
                    // The archive indexed once: read the image from the same files.
                    return OpenedImage(image: try OCILayoutSource(blobs: layout.files, tag: tag, what: r.description).image(), registry: nil)
                }
                let image = try r.source(maxLayerSize: maxLayerSize).image()
                return OpenedImage(image: image, registry: nil)
            }
        case .registry(let r):
            let source = try await RegistrySource.open(reference: r, options: options, platform: platform)
            do {
                if fetchLayers { try await source.fetchLayers() }
                return OpenedImage(image: try source.image(), registry: source)
            } catch {
                source.removeSpool()
                throw error
            }
        }
    }

    /// Writes `image` here: to a registry by `RegistrySink.push`, to a local archive or
    /// layout by its sink on a thread of its own. Layers read from a registry must have
    /// been fetched for a local destination (`open(…, fetchLayers: true)`).
    /// Returns what was written and, for a registry, the size of the manifest put there.
    /// `layers` says what a registry destination does with uncompressed layers, and
    /// `notice` hears what compression changed.
    public func write(_ image: PendingImage, options: RegistryOptions,
                      maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize,
                      layers: PushLayerPolicy = .keep,
                      notice: (@Sendable (String) -> Void)? = nil) async throws -> (image: WrittenImage, manifestSize: Int64?) {
        switch self {
        case .local(let r):
            let written = try await OwnThread.run("kiln-write") { try r.sink(maxLayerSize: maxLayerSize).write(image) }
            return (written, nil)
        case .registry(let r):
            guard r.digest == nil || r.tag == nil else {
                throw RegistryError.invalidReference(r.description, reason: "a destination takes a tag or a digest, not both")
            }
            let pushed = try await RegistrySink(reference: r, options: options, layers: layers, notice: notice).push(image)
            return (pushed.image, pushed.manifestSize)
        }
    }

    /// Writes a multi-platform image here: an OCI layout or archive gets the index and
    /// every image in one commit (`OCISink.write(_:PendingIndex)`, on a thread of its
    /// own); a registry gets every manifest by digest, then the index
    /// (`RegistrySink.push(_:PendingIndex)`). A docker-archive holds one platform: an error.
    public func write(index: PendingIndex, options: RegistryOptions, layers: PushLayerPolicy = .keep,
                      notice: (@Sendable (String) -> Void)? = nil) async throws -> WrittenIndex {
        switch self {
        case .local(let r):
            guard case .dockerArchive = r else {
                return try await OwnThread.run("kiln-write") {
                    guard let sink = try r.ociSink() else { throw ImageError.invalid("\(r): not an OCI layout") }
                    return try sink.write(index)
                }
            }
            throw ImageError.invalid("\(r): a docker-archive holds one platform; name one with --platform (the index has \(index.entries.map(\.platform.description).joined(separator: ", ")))")
        case .registry(let r):
            guard r.digest == nil || r.tag == nil else {
                throw RegistryError.invalidReference(r.description, reason: "a destination takes a tag or a digest, not both")
            }
            return try await RegistrySink(reference: r, options: options, layers: layers, notice: notice).push(index)
        }
    }

    /// Whether writing here reads the layers' bytes (a registry destination can mount or
    /// skip layers it has; a local one copies every byte).
    public var readsLayerBytes: Bool {
        if case .local = self { return true }
        return false
    }

    /// Whether this is a local format that stores layers as plain tars (docker-archive):
    /// registry layers are then decompressed in parallel before it is written
    /// (`OpenedImage.imageForPlainLayers`).
    public var storesPlainLayers: Bool {
        if case .local(.dockerArchive) = self { return true }
        return false
    }

    /// The name and tag this location gives an image written to it.
    public var destinationName: (name: String?, tag: String?) {
        switch self {
        case .local(let r): return r.destinationName
        case .registry(let r): return (r.name, r.tag)
        }
    }

    public var description: String {
        switch self {
        case .local(let r): return r.description
        case .registry(let r): return r.description
        }
    }
}

/// An image opened from any location; `registry` is set when it came from one, and
/// owns the spool of its downloaded blobs (`removeSpool` when done).
public struct OpenedImage: Sendable {
    public let image: SourceImage
    public let registry: RegistrySource?

    /// The image for a sink that stores plain tars: a registry image's downloaded layers
    /// decompressed several at once (`RegistrySource.decompressedImage`); any other
    /// image as it is (its sink decompresses what it must).
    public func imageForPlainLayers(maxLayerSize: Int64) async throws -> SourceImage {
        guard let registry else { return image }
        return try await registry.decompressedImage(maxLayerSize: maxLayerSize)
    }

    /// Deletes downloaded blobs, if any.
    public func removeSpool() { registry?.removeSpool() }
}
