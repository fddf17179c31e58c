import KilnArchive
import KilnOCI

extension OCISink {
    /// Adds `artifact` to the layout as a manifest whose `subject` is `subject`, listed in
    /// `index.json` without a tag (with its `artifactType`, as image-spec 1.1 descriptors
    /// carry it), the way oras adds referrers to a layout. The subject must be in the
    /// layout already; nothing is written otherwise. Attaching the same artifact again
    /// changes nothing. Returns the artifact manifest's descriptor.
    public func attach(_ artifact: PendingArtifact, to subject: Descriptor, what: String) throws -> Descriptor {
        try put(referrers: [artifact.referrer(subject: subject)], what: what)[0]
    }

    /// Stores artifact manifests (made here or copied from elsewhere) with their blobs,
    /// each listed in `index.json`, in one commit. Each subject must be in the layout
    /// already or be one of the manifests stored before it in `referrers` (a signature of
    /// an SBOM); otherwise nothing is written.
    public func put(referrers: [ReferrerManifest], what: String) throws -> [Descriptor] {
        var present = Set<Digest>()
        for r in referrers {
            guard present.contains(r.subject.digest) || store.hasExisting(OCILayout.blobName(r.subject.digest)) else {
                store.abort()
                throw ImageError.notFound("attach: \(what) has no manifest \(r.subject.digest) to refer to")
            }
            present.insert(r.descriptor.digest)
        }
        return try transaction {
            var entries: [Descriptor] = []
            for r in referrers {
                for p in r.parts {
                    let put = try store.putBlob { out in _ = try p.open().copy(to: out) }
                    guard put.digest == p.descriptor.digest else {
                        throw ImageError.digestMismatch(what: "\(what): blob of artifact \(r.descriptor.digest)", expected: p.descriptor.digest, actual: put.digest)
                    }
                }
                let put = try store.putBlob(r.bytes)
                guard put.digest == r.descriptor.digest else {
                    throw ImageError.digestMismatch(what: "\(what): artifact manifest", expected: r.descriptor.digest, actual: put.digest)
                }
                var entry = Descriptor(mediaType: r.descriptor.mediaType, digest: r.descriptor.digest, size: r.descriptor.size)
                entry.artifactType = r.descriptor.artifactType
                entries.append(entry)
            }
            try putIndexJSON(adding: entries, replacingTag: nil)
            return referrers.map(\.descriptor)
        }
    }
}

extension OCILayout {
    /// The manifests listed in `index.json` whose `subject` is `digest` (image-spec 1.1
    /// manifest.md "subject"), as the referrers API lists them: media type, digest, size,
    /// `artifactType` (the config's media type when the manifest has none) and the
    /// manifest's annotations; only those of `artifactType` when given.
    public func referrers(of digest: Digest, artifactType: String? = nil) throws -> [Descriptor] {
        var found: [Descriptor] = []
        for d in try index().manifests where d.mediaType == MediaType.ociManifest && d.digest != digest {
            guard !found.contains(where: { $0.digest == d.digest }) else { continue }
            let m = try CanonicalJSON.decode(Manifest.self, from: try document(d, what: "manifest \(d.digest)"), what: "\(what): manifest \(d.digest)")
            guard m.subject?.digest == digest else { continue }
            var r = Descriptor(mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: m.annotations)
            r.artifactType = m.artifactType ?? m.config.mediaType
            if let artifactType, r.artifactType != artifactType { continue }
            found.append(r)
        }
        return found
    }

    /// Every blob the layout's `index.json` reaches (indexes, manifests, configs,
    /// layers), each once, for copying the layout as a whole.
    public func reachableBlobs() throws -> [Descriptor] {
        var out: [Descriptor] = []
        var seen = Set<Digest>()
        func visit(_ d: Descriptor, depth: Int) throws {
            guard seen.insert(d.digest).inserted else { return }
            out.append(d)
            guard depth < 8 else { throw ImageError.invalid("\(what): indexes nested too deeply") }
            if OCILayout.isIndex(d.mediaType) {
                let i = try CanonicalJSON.decode(Index.self, from: try document(d, what: "index \(d.digest)"), what: "\(what): index \(d.digest)")
                for c in i.manifests { try visit(c, depth: depth + 1) }
            } else if OCILayout.isImage(d.mediaType) {
                let m = try CanonicalJSON.decode(Manifest.self, from: try document(d, what: "manifest \(d.digest)"), what: "\(what): manifest \(d.digest)")
                for c in [m.config] + m.layers where seen.insert(c.digest).inserted { out.append(c) }
            }
        }
        for d in try index().manifests { try visit(d, depth: 0) }
        return out
    }
}
