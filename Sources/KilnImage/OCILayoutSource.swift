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
/// annotation, or is the only one in `index.json` when no tag is given (as skopeo), or
/// is given as `manifest` (an index's entry for one platform, chosen by the caller).
public struct OCILayoutSource: ImageSource {
    public let blobs: any LayoutFiles
    public let tag: String?
    public let what: String
    /// The image manifest to read, when the caller chose it (from an index).
    public let manifest: Descriptor?

    public init(blobs: any LayoutFiles, tag: String?, what: String, manifest: Descriptor? = nil) {
        self.blobs = blobs
        self.tag = tag
        self.what = what
        self.manifest = manifest
    }

    public func image() throws -> SourceImage {
        let layout = OCILayout(files: blobs, what: what)
        let chosen = try manifest ?? layout.entry(tag: tag)
        guard OCILayout.isImage(chosen.mediaType) else {
            if OCILayout.isIndex(chosen.mediaType) {
                throw ImageError.invalid("\(what): \(tag.map { "\"\($0)\"" } ?? "the image") is an index of several platforms; pick one with --platform")
            }
            throw ImageError.invalid("\(what): \(chosen.digest) is a \(chosen.mediaType), not an image manifest")
        }
        let name = manifest == nil ? chosen.annotations?[AnnotationKey.refName] : tag
        return try image(manifest: chosen, names: name.map { [$0] } ?? [])
    }

    /// The image whose manifest `chosen` describes.
    func image(manifest chosen: Descriptor, names: [String]) throws -> SourceImage {
        let blobs = self.blobs
        let what = self.what
        @Sendable func path(_ d: Descriptor) -> String { OCILayout.blobName(d.digest) }
        let manifestBytes = try readVerified(chosen, from: blobs, name: path(chosen), what: "\(what): manifest")
        return try SourceImage.assemble(
            manifestBytes: manifestBytes, what: what,
            names: names,
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
