#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI
import NIOCore

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
    /// The image with every layer decompressed into the spool, several layers at once,
    /// each decompressed on a thread of its own: for sinks that store plain tars
    /// (docker-archive), whose own decompression runs one layer after another. A layer
    /// not downloaded yet is decompressed as it arrives (`DecompressingBlobSink`), so
    /// its compressed bytes are never written to disk; one already downloaded is
    /// decompressed from its file. `maxLayerSize` bounds each layer's uncompressed size
    /// (decompression bombs).
    public func decompressedImage(maxLayerSize: Int64) async throws -> SourceImage {
        let image = resolved
        let limit = max(1, client.options.parallelism)
        var out = [(any StoredLayer)?](repeating: nil, count: image.layers.count)
        try await withThrowingTaskGroup(of: (Int, DecompressedLayer).self) { group in
            var next = 0
            func add() {
                let i = next, layer = image.layers[i], path = spool.directory + "/plain-\(i)"
                next += 1
                let spool = self.spool
                group.addTask {
                    if let file = layer.localFile {
                        return (i, try await OwnThread.run("kiln-decompress") {
                            try Self.decompress(try FileReader(path: file), layer: layer.descriptor, diffID: layer.diffID,
                                                to: path, limit: maxLayerSize)
                        })
                    }
                    // A new decompressor for each try: bytes that fail the digest check are
                    // downloaded again from the start (`downloadBlob`).
                    let sink = try await spool.client.downloadBlob(repository: spool.repository, descriptor: layer.descriptor) {
                        DecompressingBlobSink(layer: layer.descriptor, diffID: layer.diffID, path: path, limit: maxLayerSize)
                    }
                    return (i, try sink.result())
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

    /// Decompresses one layer's blob from `reader` to `path`, hashing the tar (its
    /// diffID, checked) and computing its tarsum from the same bytes as they pass.
    static func decompress(_ reader: ByteReader, layer: Descriptor, diffID: Digest, to path: String,
                           limit: Int64) throws -> DecompressedLayer {
        do {
            let file = BufferingWriter(try FileWriter(creating: path, mode: 0o600))
            let hashed = HashingWriter(file)
            let tee = CopyingReader(try Compression.decompressing(reader, limit: limit), to: hashed)
            let tarsum = try Tarsum.compute(reader: tee, version: .v1)
            try tee.drain()
            try hashed.finish()
            guard hashed.digest == diffID else {
                throw RegistryError.digestMismatch(what: "layer \(layer.digest) (uncompressed)", expected: diffID, actual: hashed.digest)
            }
            return DecompressedLayer(descriptor: Descriptor(mediaType: MediaType.dockerLayer, digest: diffID, size: hashed.count),
                                     diffID: diffID, localFile: path, tarsum: tarsum)
        } catch {
            unlink(path)
            throw error
        }
    }
}

/// A download decompressed as it arrives: the download's worker thread hands each batch
/// to a `BytePipe`, and a thread of its own decompresses from the other end into the
/// plain tar file (`RegistrySource.decompress`). The compressed digest is checked by
/// the download; the diffID and tarsum by the decompressing thread.
final class DecompressingBlobSink: BlobSink {
    private let pipe = BytePipe()
    private let outcome = LockedBox<Result<DecompressedLayer, any Error>?>(nil)
    private let ended = NSCondition()
    let path: String

    init(layer: Descriptor, diffID: Digest, path: String, limit: Int64) {
        self.path = path
        let pipe = self.pipe, outcome = self.outcome, ended = self.ended
        let thread = Thread {
            nameThisThread("kiln-decompress")
            let r = Result { try RegistrySource.decompress(pipe, layer: layer, diffID: diffID, to: path, limit: limit) }
            pipe.closeReading(r.error)
            ended.lock()
            outcome.set(r)
            ended.broadcast()
            ended.unlock()
        }
        thread.name = "kiln-decompress"
        thread.stackSize = 8 << 20
        thread.start()
    }

    func write(_ bytes: ByteBuffer) throws { try pipe.write(bytes) }

    /// Corrupt bytes make the decompressor fail before the digest can be checked.
    var failsOnCorruptBytes: Bool { true }

    /// Waits (on the download's worker thread) for the decompression to end.
    private func wait() -> Result<DecompressedLayer, any Error> {
        ended.lock()
        defer { ended.unlock() }
        while outcome.get() == nil { ended.wait() }
        return outcome.get()!
    }

    func finish() throws {
        pipe.closeWriting()
        _ = try wait().get()
    }

    func abort() {
        pipe.closeWriting(failed: true)
        _ = wait()
        unlink(path)
    }

    /// The decompressed layer, once `finish` has returned.
    func result() throws -> DecompressedLayer {
        guard let r = outcome.get() else { throw RegistryError.protocolViolation("layer decompression did not finish") }
        return try r.get()
    }
}

extension Result {
    var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

/// A bounded queue of bytes between two threads of their own: the writer waits while
/// `capacity` batches are queued, the reader while none is. Either side may close it:
/// the reader with its error (the writer's next write throws it), the writer when
/// done (the reader sees the end) or failed (the reader sees an error).
final class BytePipe: ByteReader, @unchecked Sendable {
    // `@unchecked`: every field below is read and written under `condition`'s lock.
    private let condition = NSCondition()
    private var batches: [ByteBuffer] = []
    private var writerClosed = false
    private var writerFailed = false
    private var readerClosed = false
    private var readerError: (any Error)?
    private let capacity: Int

    init(capacity: Int = 4) { self.capacity = capacity }

    /// Queues `bytes` (kept, not copied: the writer hands the buffer over).
    func write(_ bytes: ByteBuffer) throws {
        guard bytes.readableBytes > 0 else { return }
        condition.lock()
        defer { condition.unlock() }
        while batches.count >= capacity && !readerClosed { condition.wait() }
        if readerClosed {
            throw readerError ?? RegistryError.protocolViolation("layer decompression stopped before the end of the blob")
        }
        batches.append(bytes)
        condition.broadcast()
    }

    func closeWriting(failed: Bool = false) {
        condition.lock()
        writerClosed = true
        writerFailed = failed
        condition.broadcast()
        condition.unlock()
    }

    func closeReading(_ error: (any Error)?) {
        condition.lock()
        readerClosed = true
        readerError = error
        batches.removeAll()
        condition.broadcast()
        condition.unlock()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        condition.lock()
        defer { condition.unlock() }
        while batches.isEmpty && !writerClosed { condition.wait() }
        if writerFailed { throw CancellationError() }
        guard !batches.isEmpty else { return 0 }
        let n = min(buffer.count, batches[0].readableBytes)
        batches[0].withUnsafeReadableBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n)
        }
        batches[0].moveReaderIndex(forwardBy: n)
        if batches[0].readableBytes == 0 {
            batches.removeFirst()
            condition.broadcast()
        }
        return n
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
