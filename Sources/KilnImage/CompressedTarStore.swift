#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// A tar file compressed as a whole, such as a `.tar.gz` docker-archive (the seed's
/// `tar -C image -c . | pigz -nT`). The tar is first written plain by a `TarStore`,
/// which patches layer headers in place once their sizes are known, then compressed
/// into a second temporary file that is renamed into place: a failure at any point
/// leaves nothing at `path`. The compressor writes no name and no mtime and the same
/// bytes for any number of threads, so equal archives give equal files.
public final class CompressedTarStore: LayoutStore {
    public let path: String
    public let compression: Compression
    /// Where the plain tar lands on the inner store's commit.
    private let plainPath: String
    private let plain: TarStore
    private var finished = false

    public init(path: String, compression: Compression = .gzip) throws {
        self.path = path
        self.compression = compression
        self.plainPath = siblingTemp(of: path) + ".tar"
        self.plain = try TarStore(path: plainPath)
    }

    deinit { if !finished { abort() } }

    public func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        try plain.putStreamed(name: name, body: body)
    }

    public func putKnown(_ name: String, size: Int64, body: (ByteWriter) throws -> Void) throws -> Digest {
        try plain.putKnown(name, size: size, body: body)
    }

    public func putLocalFile(_ name: String, from path: String, size: Int64) throws {
        try plain.putLocalFile(name, from: path, size: size)
    }

    public func putFile(_ name: String, _ bytes: [UInt8]) throws { try plain.putFile(name, bytes) }

    public func putDirectory(_ name: String) throws { try plain.putDirectory(name) }

    public func existingFile(_ name: String) -> [UInt8]? { nil }

    public func commit() throws {
        try plain.commit()
        defer { unlink(plainPath) }
        let tmp = siblingTemp(of: path)
        do {
            let file = try FileWriter(creating: tmp)
            let compressor = compression.writer(file)
            _ = try FileReader(path: plainPath).copy(to: compressor)
            try compressor.finish()
            try file.sync()
            guard rename(tmp, path) == 0 else {
                throw ImageError.io("cannot move the archive into place at \(path): \(errnoMessage())")
            }
        } catch {
            unlink(tmp)
            throw error
        }
        finished = true
    }

    public func abort() {
        plain.abort()
        unlink(plainPath)
        finished = true
    }
}
