import KilnArchive
@testable import KilnImage

enum FuzzImage {
    /// An image archive as `kiln copy docker-archive:…` / `oci-archive:…` open it: the
    /// tar index (decompressed first when the archive is compressed as a whole), the
    /// manifest and config with their checks, then every layer blob read to its end.
    static func archive(_ data: [UInt8]) {
        withFile(data) { path in
            if let source = try? DockerArchiveSource(path: path, maxDecompressedSize: fuzzLimit),
               let image = try? source.image() {
                readLayers(image)
            }
            if let index = try? TarIndex(path: path),
               let image = try? OCILayoutSource(blobs: index, tag: nil, what: "fuzz").image() {
                readLayers(image)
            }
        }
    }

    static func readLayers(_ image: SourceImage) {
        for layer in image.layers {
            if let blob = try? layer.openBlob() { try? drain(blob) }
        }
    }
}
