#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// A layer decompressed into the spool: the plain tar a docker-archive stores, with
/// its diffID checked and its legacy tarsum computed, so the archive sink copies the
/// file in the kernel instead of decompressing it there (one layer after another).
public struct DecompressedLayer: StoredLayer {
    public let descriptor: Descriptor
    public let diffID: Digest
    public let localFile: String?
    public let tarsum: String?

    public func openBlob() throws -> ByteReader { try FileReader(path: localFile!) }
}

extension RegistrySource {
    /// The image with every (downloaded) layer decompressed into the spool, several
    /// layers at once, each on a thread of its own (`OwnThread`): for sinks that store
    /// plain tars (docker-archive), whose own decompression runs one layer at a time.
    /// `maxLayerSize` bounds each layer's uncompressed size (decompression bombs).
    public func decompressedImage(maxLayerSize: Int64) async throws -> SourceImage {
        let image = resolved
        let limit = max(2, ProcessInfo.processInfo.activeProcessorCount * 2)
        var out = [(any StoredLayer)?](repeating: nil, count: image.layers.count)
        try await withThrowingTaskGroup(of: (Int, DecompressedLayer).self) { group in
            var next = 0
            func add() {
                let i = next, layer = image.layers[i], path = spool.directory + "/plain-\(i)"
                next += 1
                group.addTask {
                    (i, try await OwnThread.run("kiln-decompress") { try Self.decompress(layer, to: path, limit: maxLayerSize) })
                }
            }
            while next < min(limit, image.layers.count) { add() }
            while let (i, l) = try await group.next() {
                out[i] = l
                if next < image.layers.count { add() }
            }
        }
        return SourceImage(manifestBytes: image.manifestBytes, manifest: image.manifest, configBytes: image.configBytes,
                           config: image.config, layers: out.map { $0! }, names: image.names)
    }

    /// Decompresses one layer to `path`, hashing the tar (its diffID) and computing its
    /// tarsum from the same bytes as they pass.
    static func decompress(_ layer: any StoredLayer, to path: String, limit: Int64) throws -> DecompressedLayer {
        do {
            let file = BufferingWriter(try FileWriter(creating: path, mode: 0o600))
            let hashed = HashingWriter(file)
            let tee = CopyingReader(try Compression.decompressing(try layer.openBlob(), limit: limit), to: hashed)
            let tarsum = try Tarsum.compute(reader: tee, version: .v1)
            try tee.drain()
            try hashed.finish()
            guard hashed.digest == layer.diffID else {
                throw RegistryError.digestMismatch(what: "layer \(layer.descriptor.digest) (uncompressed)",
                                                   expected: layer.diffID, actual: hashed.digest)
            }
            return DecompressedLayer(descriptor: Descriptor(mediaType: MediaType.dockerLayer, digest: layer.diffID, size: hashed.count),
                                     diffID: layer.diffID, localFile: path, tarsum: tarsum)
        } catch {
            unlink(path)
            throw error
        }
    }
}

/// Passes everything read through it on to a writer as well, in the reader's own
/// (large) reads, so the written file gets a few big `write`s.
final class CopyingReader: ByteReader {
    private let inner: ByteReader
    private let out: ByteWriter

    init(_ inner: ByteReader, to out: ByteWriter) {
        self.inner = inner
        self.out = out
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        if n > 0 { try out.write(UnsafeRawBufferPointer(rebasing: buffer[..<n])) }
        return n
    }

    /// Reads (and so copies) whatever the consumer left unread.
    func drain() throws {
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while try read(into: buf) > 0 {}
    }
}

/// Gathers small writes into large ones (`capacity` bytes) before passing them on;
/// writes at least that large go straight through.
final class BufferingWriter: ByteWriter {
    private let next: ByteWriter
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0

    init(_ next: ByteWriter, capacity: Int = 1 << 20) {
        self.next = next
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { buffer.deallocate() }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if used + bytes.count > buffer.count { try flush() }
        if bytes.count >= buffer.count {
            try next.write(bytes)
            return
        }
        UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + bytes.count)]).copyMemory(from: bytes)
        used += bytes.count
    }

    func finish() throws {
        try flush()
        try next.finish()
    }

    private func flush() throws {
        if used > 0 { try next.write(UnsafeRawBufferPointer(rebasing: buffer[..<used])) }
        used = 0
    }
}
