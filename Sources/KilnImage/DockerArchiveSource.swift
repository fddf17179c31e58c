#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// Reads the first image of a docker-archive (`docker save` format) through its
/// `manifest.json`. Layers may be stored plain or compressed; the manifest Kiln
/// reports is the Docker v2s2 manifest a registry would hold for them.
///
/// The archive itself may be compressed as a whole (gzip, zstd or xz: a `.tar.gz` as
/// `kiln build -o x.tar.gz` and nixpkgs' dockerTools write, and as `docker load`
/// accepts). Its members are read in place by offset, which a compressed stream cannot
/// give, so such an archive is decompressed once into a private temporary file and
/// read from there exactly as a plain one.
public struct DockerArchiveSource: ImageSource {
    public let path: String
    let files: TarIndex
    /// Chooses the image whose `RepoTags` has this name and/or tag (nil: the first image).
    public let name: String?
    public let tag: String?

    /// - Parameter maxDecompressedSize: for an archive compressed as a whole, the most
    ///   bytes it may decompress to before `ArchiveError.tooLarge` (a decompression bomb
    ///   would otherwise fill the temporary directory); the default is the per-layer limit
    ///   (`RootfsLimits.defaultMaxLayerSize`, 64 GiB).
    public init(path: String, name: String? = nil, tag: String? = nil,
                maxDecompressedSize: Int64 = RootfsLimits.defaultMaxLayerSize) throws {
        self.path = path
        self.files = try DockerArchiveSource.index(path, limit: maxDecompressedSize)
        self.name = name
        self.tag = tag
    }

    /// Indexes the archive at `path`: in place when it is a plain tar, else through a
    /// decompressed copy.
    static func index(_ path: String, limit: Int64) throws -> TarIndex {
        let reader = try FileReader(path: path)
        var head = [UInt8](repeating: 0, count: XzReader.magic.count)
        let n = try head.withUnsafeMutableBytes { try reader.readFully(into: $0) }
        head.removeLast(head.count - n)
        guard Compression.detect(head) != .none || XzReader.isXz(head) else {
            guard lseek(reader.fd, 0, SEEK_SET) == 0 else { throw ArchiveError.io("cannot seek in", path: path, errno: errno) }
            return try TarIndex(reading: reader, path: path)
        }
        return try decompressedIndex(PrefixedReader(prefix: head, reader), path: path, limit: limit)
    }

    /// Streams the decompressed archive into a temporary file and indexes that.
    ///
    /// The file is created by `mkstemp` (mode 0600, in `$TMPDIR`, else /tmp) and
    /// unlinked at once: only the descriptor the index keeps reaches it, so no other user
    /// can open it, and its blocks are freed when the last reader of the source is
    /// released. Nothing is left behind on failure, nor even if the process is killed.
    /// Memory stays flat: the bytes pass through one copy buffer.
    static func decompressedIndex(_ compressed: ByteReader, path: String, limit: Int64) throws -> TarIndex {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(base)/kiln-archive-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw ImageError.io("\(path): cannot create a temporary file in \(base) to decompress the archive into: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        // Not inherited by children (runAsRoot's helpers, compressors).
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        let spool = "a temporary file in \(base)"
        do {
            _ = try Compression.decompressing(compressed, limit: limit).copy(to: FileWriter(fd: fd, path: spool))
        } catch let e as ArchiveError {
            switch e {
            case .io: throw ImageError.io("\(path): cannot decompress the archive: \(e)")
            case .tooLarge: throw ImageError.invalid("\(path): \(e)")
            default: throw ImageError.invalid("\(path): corrupt compressed archive: \(e)")
            }
        }
        guard lseek(fd, 0, SEEK_SET) == 0 else { throw ArchiveError.io("cannot seek in", path: spool, errno: errno) }
        return try TarIndex(reading: FileReader(fd: fd, path: path), path: path)
    }

    /// `NAME[:TAG]` split at a colon whose right side holds no `/`.
    public static func split(_ reference: String) -> (name: String?, tag: String?) {
        if let c = reference.lastIndex(of: ":"), !reference[reference.index(after: c)...].contains("/") {
            return (String(reference[..<c]), String(reference[reference.index(after: c)...]))
        }
        return (reference, nil)
    }

    /// The entry of `manifest.json` to read.
    func select(_ entries: [DockerArchiveManifestEntry], what: String) throws -> DockerArchiveManifestEntry {
        guard name != nil || tag != nil else {
            guard let first = entries.first else { throw ImageError.invalid("\(what): manifest.json lists no image") }
            return first
        }
        // docker.io/library/x and x are the same name.
        func short(_ n: String) -> String {
            for p in ["docker.io/library/", "docker.io/", "index.docker.io/library/"] where n.hasPrefix(p) { return String(n.dropFirst(p.count)) }
            return n
        }
        let matches = entries.filter { e in
            (e.RepoTags ?? []).contains { rt in
                let (n, t) = DockerArchiveSource.split(rt)
                return (name == nil || short(n ?? "") == short(name!)) && (tag == nil || t == tag)
            }
        }
        let wanted = [name, tag.map { ":" + $0 }].compactMap { $0 }.joined()
        let all = entries.flatMap { $0.RepoTags ?? [] }
        guard let first = matches.first else {
            throw ImageError.notFound("\(what): no image \(wanted) (images: \(all.isEmpty ? "none named" : all.joined(separator: ", ")))")
        }
        guard matches.count == 1 else {
            throw ImageError.invalid("\(what): \(matches.count) images match \(wanted); name both the image and its tag")
        }
        return first
    }

    public func image() throws -> SourceImage {
        let what = "docker-archive:\(path)"
        let entries = try CanonicalJSON.decode([DockerArchiveManifestEntry].self,
                                               from: try files.open("manifest.json").readAll(limit: documentLimit),
                                               what: "\(what): manifest.json")
        let entry = try select(entries, what: what)
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
