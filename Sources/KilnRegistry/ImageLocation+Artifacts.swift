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
    /// give it). The subject must be here: otherwise nothing is written. See `store`.
    public func attach(_ artifact: PendingArtifact, to subject: Descriptor, options: RegistryOptions) async throws -> Descriptor {
        try artifact.validate()
        let referrer = try await OwnThread.run("kiln-attach") { try artifact.referrer(subject: subject) }
        return try await store(referrers: [referrer], options: options)[0]
    }

    /// Stores artifact manifests here, each after its subject (which must be here, or
    /// stored earlier in the list). A layout lists them in `index.json`, in one commit
    /// (an OCI archive is rewritten beside itself and renamed); a registry gets each
    /// one's blobs and its manifest by digest, and, unless the registry processed the
    /// subject itself (`OCI-Subject`, or its referrers API lists the artifact), the
    /// referrers tag `sha256-<hex>` of the subject is updated
    /// (`RegistryClient.addToReferrersTag`). Nothing is written for a missing subject.
    public func store(referrers: [ReferrerManifest], options: RegistryOptions) async throws -> [Descriptor] {
        guard !referrers.isEmpty else { return [] }
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
                    guard layout.hasBlob(referrers[0].subject.digest) else {
                        throw ImageError.notFound("attach: \(r) has no manifest \(referrers[0].subject.digest) to refer to")
                    }
                    sink = OCISink(store: try TarStore(path: p, carrying: layout))
                case .dockerArchive:
                    throw Self.noArtifacts(r)
                }
                return try sink.put(referrers: referrers, what: r.description)
            }
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            let repo = r.repository
            var stored = Set<Digest>()
            for ref in referrers where !stored.contains(ref.subject.digest) {
                guard try await client.manifestDigest(repository: repo, reference: ref.subject.digest.description) != nil else {
                    throw RegistryError.notFound("attach: \(r.registry)/\(repo) has no manifest \(ref.subject.digest) to refer to")
                }
                stored.insert(ref.descriptor.digest)
            }
            for ref in referrers {
                for part in ref.parts {
                    _ = try await client.pushBlob(repository: repo, descriptor: part.descriptor) { try part.open() }
                }
                let put = try await client.putManifestWithSubject(repository: repo, reference: ref.descriptor.digest.description,
                                                                  bytes: ref.bytes, mediaType: ref.descriptor.mediaType)
                if put.subjectProcessed { continue }
                if let listed = try await client.referrers(repository: repo, subject: ref.subject.digest),
                   listed.contains(where: { $0.digest == ref.descriptor.digest }) {
                    continue
                }
                try await client.addToReferrersTag(repository: repo, subject: ref.subject.digest, referrer: ref.descriptor)
            }
            options.progress.close()
            return referrers.map(\.descriptor)
        }
    }

    /// A referrer listed here (by `referrers(of:)`), read whole to be stored elsewhere
    /// unchanged: its manifest and blobs (each at most `limit` bytes, in memory).
    public func readReferrer(_ d: Descriptor, options: RegistryOptions, limit: Int = 256 << 20) async throws -> ReferrerManifest {
        let bytes = try await fetchManifest(d, options: options)
        let m = try CanonicalJSON.decode(Manifest.self, from: bytes, what: "\(self): artifact \(d.digest)")
        guard let subject = m.subject else { throw ImageError.invalid("\(self): artifact \(d.digest) has no subject") }
        var parts: [ReferrerManifest.Part] = []
        for blob in [m.config] + m.layers where !parts.contains(where: { $0.descriptor.digest == blob.digest }) {
            parts.append(.init(descriptor: blob, content: .bytes(try await fetchBlob(blob, options: options, limit: limit))))
        }
        var descriptor = Descriptor(mediaType: m.mediaType ?? MediaType.ociManifest, digest: d.digest, size: Int64(bytes.count), annotations: m.annotations)
        descriptor.artifactType = m.artifactType ?? m.config.mediaType
        return ReferrerManifest(bytes: bytes, descriptor: descriptor, subject: subject, parts: parts)
    }

    /// The artifact manifest a registry reference pinned by digest names (an SBOM found
    /// with `kiln referrers`), or nil when it names an image or an index. Artifacts are
    /// told apart from images by `artifactType` or a config that is not an image config.
    public func openArtifact(options: RegistryOptions) async throws -> (bytes: [UInt8], manifest: Manifest)? {
        guard case .registry(let r) = self, let digest = r.digest else { return nil }
        let client = try RegistryClient(registry: r.registry, options: options)
        let m = try await client.manifest(repository: r.repository, reference: digest.description)
        guard m.mediaType == MediaType.ociManifest,
              let manifest = try? CanonicalJSON.decode(Manifest.self, from: m.bytes, what: "\(r)") else { return nil }
        let imageConfig = [MediaType.ociConfig, MediaType.dockerConfig].contains(manifest.config.mediaType)
        guard manifest.artifactType != nil || !imageConfig else { return nil }
        return (m.bytes, manifest)
    }

    /// The descriptor of a manifest stored here by digest (what an artifact's subject
    /// records): its media type and size.
    public func manifestDescriptor(_ digest: Digest, options: RegistryOptions) async throws -> Descriptor {
        switch self {
        case .registry(let r):
            let client = try RegistryClient(registry: r.registry, options: options)
            let m = try await client.manifest(repository: r.repository, reference: digest.description)
            return Descriptor(mediaType: m.mediaType, digest: digest, size: Int64(m.bytes.count))
        case .local(let r):
            return try await OwnThread.run("kiln-open") {
                guard let layout = try OCILayout(r) else { throw Self.noArtifacts(r) }
                let size = try layout.files.size(OCILayout.blobName(digest))
                let bytes = try layout.document(Descriptor(mediaType: "", digest: digest, size: size), what: "manifest \(digest)")
                let type = RegistryClient.embeddedMediaType(bytes) ?? MediaType.ociManifest
                return Descriptor(mediaType: type, digest: digest, size: size)
            }
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
