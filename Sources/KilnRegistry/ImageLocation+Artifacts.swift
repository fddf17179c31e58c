import KilnArchive
import KilnImage
import KilnOCI

/// OCI 1.1 artifacts and referrers wherever an image lives: an OCI layout or archive
/// (artifacts listed in `index.json`), or a registry (the referrers API, else the
/// referrers tag schema). `kiln attach`, `kiln referrers`, `kiln build --attach-sbom`,
/// `kiln copy --referrers` and provenance attachments all go through here.
extension ImageLocation {
    /// The descriptor of the manifest this location names — what an artifact's
    /// `subject` points at: the image's manifest, or for an index the index itself,
    /// unless `platform` picks one of its images.
    public func subjectDescriptor(platform: Platform?, options: RegistryOptions) async throws -> Descriptor {
        switch self {
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            let top = try await client.manifest(repository: r.repository, reference: r.manifestReference)
            let d = Descriptor(mediaType: top.mediaType, digest: top.digest, size: Int64(top.bytes.count))
            guard let platform, PlatformSelection.isIndex(top.mediaType) else { return d }
            let index = try CanonicalJSON.decode(Index.self, from: top.bytes, what: "\(r): index")
            let chosen = try PlatformSelection.select(from: index, platform: platform, what: r.description)
            return Descriptor(mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size)
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { throw Self.noArtifacts(r) }
                let entry = try layout.entry(tag: r.layoutTag)
                let d = Descriptor(mediaType: entry.mediaType, digest: entry.digest, size: entry.size)
                guard let platform, PlatformSelection.isIndex(entry.mediaType) else { return d }
                let index = try CanonicalJSON.decode(Index.self, from: try layout.document(entry, what: "index"), what: "\(r): index")
                let chosen = try PlatformSelection.select(from: index, platform: platform, what: r.description)
                return Descriptor(mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size)
            }
        }
    }

    static func noArtifacts(_ r: ImageReference) -> ImageError {
        .invalid("\(r): a docker-archive cannot hold artifacts; use an OCI layout (oci:, oci-archive:) or a registry")
    }

    /// Stores `artifact` here with `subject` as its subject, and returns the artifact
    /// manifest's descriptor (with `artifactType` and annotations, as referrers lists
    /// give it). The subject must be here: otherwise nothing is written. A layout lists
    /// the artifact in `index.json` (an OCI archive is rewritten beside itself and
    /// renamed); a registry gets the blobs and the manifest by digest, and, unless it
    /// processed the subject itself (`OCI-Subject`, or its referrers API lists the
    /// artifact), the referrers tag `sha256-<hex>` is updated
    /// (`RegistryClient.addToReferrersTag`).
    public func attach(_ artifact: PendingArtifact, to subject: Descriptor, options: RegistryOptions) async throws -> Descriptor {
        try artifact.validate()
        switch self {
        case .local(let r):
            return try await OwnThread.run("kiln-attach") {
                let sink: OCISink
                switch r {
                case .oci(let p, _):
                    guard let layout = try OCILayout(r), (try? layout.files.size("oci-layout")) != nil else {
                        throw ImageError.notFound("attach: \(r) is not an OCI layout")
                    }
                    sink = OCISink(store: try DirectoryStore(path: p))
                case .ociArchive(let p, _):
                    guard let layout = try OCILayout(r) else { throw Self.noArtifacts(r) }
                    guard layout.hasBlob(subject.digest) else {
                        throw ImageError.notFound("attach: \(r) has no manifest \(subject.digest) to refer to")
                    }
                    sink = OCISink(store: try TarStore(path: p, carrying: layout))
                case .dockerArchive:
                    throw Self.noArtifacts(r)
                }
                return try sink.attach(artifact, to: subject, what: r.description)
            }
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            let repo = r.repository
            guard try await client.manifestDigest(repository: repo, reference: subject.digest.description) != nil else {
                throw RegistryError.notFound("attach: \(r.registry)/\(repo) has no manifest \(subject.digest) to refer to")
            }
            let blobs = artifact.blobs
            let layers = try await OwnThread.run("kiln-attach") { try blobs.map { try $0.descriptor() } }
            _ = try await client.pushBlob(repository: repo, descriptor: PendingArtifact.emptyDescriptor) {
                BufferReader(PendingArtifact.emptyConfig)
            }
            for (blob, d) in zip(blobs, layers) {
                _ = try await client.pushBlob(repository: repo, descriptor: d) { try blob.open() }
            }
            let (bytes, descriptor) = try artifact.manifest(layers: layers, subject: subject)
            let put = try await client.putManifestWithSubject(repository: repo, reference: descriptor.digest.description,
                                                              bytes: bytes, mediaType: MediaType.ociManifest)
            options.progress.close()
            if put.subjectProcessed { return descriptor }
            if let listed = try await client.referrers(repository: repo, subject: subject.digest),
               listed.contains(where: { $0.digest == descriptor.digest }) {
                return descriptor
            }
            try await client.addToReferrersTag(repository: repo, subject: subject.digest, referrer: descriptor)
            return descriptor
        }
    }

    /// The manifests here whose subject is `subject` (only those of `artifactType` when
    /// given): a layout's `index.json` entries, or a registry's referrers API, else its
    /// referrers tag.
    public func referrers(of subject: Digest, artifactType: String? = nil, options: RegistryOptions) async throws -> [Descriptor] {
        switch self {
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { return [] }
                return try layout.referrers(of: subject, artifactType: artifactType)
            }
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            return try await client.listReferrers(repository: r.repository, subject: subject, artifactType: artifactType)
        }
    }

    /// The bytes of a referrer listed by `referrers(of:)`: its manifest, checked against
    /// its digest (to read an attached document: `fetchBlob` of its layer).
    public func fetchManifest(_ d: Descriptor, options: RegistryOptions) async throws -> [UInt8] {
        switch self {
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { throw Self.noArtifacts(r) }
                return try layout.document(d, what: "manifest \(d.digest)")
            }
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            return try await client.manifest(repository: r.repository, reference: d.digest.description, expectedSize: d.size).bytes
        }
    }

    /// A small blob here (an attached document, at most `limit` bytes), checked against `d`.
    public func fetchBlob(_ d: Descriptor, options: RegistryOptions, limit: Int = 64 << 20) async throws -> [UInt8] {
        guard d.size <= Int64(limit) else { throw ImageError.invalid("\(self): blob \(d.digest) is \(d.size) bytes, more than \(limit)") }
        switch self {
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { throw Self.noArtifacts(r) }
                return try layout.document(d, what: "blob \(d.digest)")
            }
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            return try await client.blobBytes(repository: r.repository, descriptor: d, limit: limit)
        }
    }
}
