#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// Files of an OCI layout, wherever they are kept.
public protocol LayoutFiles: Sendable {
    func open(_ name: String) throws -> ByteReader
    func size(_ name: String) throws -> Int64
}

/// An OCI layout directory.
public struct DirectoryBlobs: LayoutFiles {
    public let root: String
    public init(root: String) { self.root = root }

    public func open(_ name: String) throws -> ByteReader {
        do { return try FileReader(path: root + "/" + name) } catch {
            throw ImageError.notFound("\(root): \(name) not found (is this an OCI layout?)")
        }
    }

    public func size(_ name: String) throws -> Int64 {
        var st = stat()
        guard stat(root + "/" + name, &st) == 0 else { throw ImageError.notFound("\(root): \(name) not found") }
        return Int64(st.st_size)
    }
}

/// Reads an image from an OCI image layout (image-spec image-layout.md), in a
/// directory or a tar. The manifest is chosen by its `org.opencontainers.image.ref.name`
/// annotation, or is the only one in `index.json` when no tag is given (as skopeo).
public struct OCILayoutSource: ImageSource {
    public let blobs: any LayoutFiles
    public let tag: String?
    public let what: String

    public init(blobs: any LayoutFiles, tag: String?, what: String) {
        self.blobs = blobs
        self.tag = tag
        self.what = what
    }

    public func image() throws -> SourceImage {
        let layout = try blobs.open("oci-layout").readAll(limit: 4096)
        guard let l = try? CanonicalJSON.decode([String: String].self, from: layout, what: "oci-layout"),
              l["imageLayoutVersion"] == "1.0.0" else {
            throw ImageError.invalid("\(what): oci-layout is not {\"imageLayoutVersion\":\"1.0.0\"}")
        }
        let index = try CanonicalJSON.decode(Index.self, from: try blobs.open("index.json").readAll(limit: documentLimit), what: "\(what): index.json")
        let manifests = index.manifests.filter { $0.mediaType == MediaType.ociManifest || $0.mediaType == MediaType.dockerManifest }
        let chosen: Descriptor
        if let tag {
            guard let d = manifests.first(where: { $0.annotations?[AnnotationKey.refName] == tag }) else {
                let tags = manifests.compactMap { $0.annotations?[AnnotationKey.refName] }
                throw ImageError.notFound("\(what): no image tagged \"\(tag)\" (tags: \(tags.isEmpty ? "none" : tags.joined(separator: ", ")))")
            }
            chosen = d
        } else {
            guard manifests.count == 1 else {
                throw ImageError.invalid("\(what): the layout holds \(manifests.count) images; name one with :TAG")
            }
            chosen = manifests[0]
        }
        let blobs = self.blobs
        let what = self.what
        @Sendable func path(_ d: Descriptor) -> String { "blobs/\(d.digest.algorithm)/\(d.digest.hex)" }
        let manifestBytes = try readVerified(chosen, from: blobs, name: path(chosen), what: "\(what): manifest")
        return try SourceImage.assemble(
            manifestBytes: manifestBytes, what: what,
            names: chosen.annotations?[AnnotationKey.refName].map { [$0] } ?? [],
            readBlob: { try blobs.open(path($0)).readAll(limit: documentLimit) },
            openBlob: { d in
                let size = try blobs.size(path(d))
                guard size == d.size else {
                    throw ImageError.invalid("\(what): blob \(d.digest) is \(size) bytes, the manifest says \(d.size)")
                }
                return try blobs.open(path(d))
            })
    }
}

func readVerified(_ d: Descriptor, from files: any LayoutFiles, name: String, what: String) throws -> [UInt8] {
    let bytes = try files.open(name).readAll(limit: documentLimit)
    let actual = Digest.sha256(bytes)
    guard actual == d.digest else { throw ImageError.digestMismatch(what: what, expected: d.digest, actual: actual) }
    guard Int64(bytes.count) == d.size else {
        throw ImageError.invalid("\(what): \(bytes.count) bytes, the descriptor says \(d.size)")
    }
    return bytes
}
