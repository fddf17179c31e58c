#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Foundation
import KilnArchive
import KilnOCI
import NIOCore
import NIOHTTP1

extension RegistryClient {
    /// `HEAD /v2/<name>/blobs/<digest>` (spec.md "Checking if content exists in the registry").
    public func blobExists(repository: String, digest: Digest, push: Bool = false) async throws -> Bool {
        let what = "blob \(digest) in \(registry)/\(repository)"
        let r = try await send(.HEAD, "/v2/\(repository)/blobs/\(digest)",
                               scopes: [Self.repositoryScope(repository, push: push)], what: what)
        await drain(r)
        switch r.status.code {
        case 200: return true
        case 404: return false
        default: throw RegistryError.http(status: Int(r.status.code), what: what, detail: "")
        }
    }

    /// `DELETE /v2/<name>/blobs/<digest>` (spec.md "Deleting Blobs"): true when the
    /// registry removed it from the repository, false when it does not allow deletes
    /// (405, `UNSUPPORTED`: docker-registry without `storage.delete.enabled`) or
    /// does not have it (404). Distribution removes the repository's link only: the
    /// bytes stay in its storage until garbage collection.
    public func deleteBlob(repository: String, digest: Digest) async throws -> Bool {
        let what = "blob \(digest) in \(registry)/\(repository)"
        let r = try await send(.DELETE, "/v2/\(repository)/blobs/\(digest)",
                               scopes: ["repository:\(repository):pull,push,delete"], what: what)
        let body = (try? await collect(r, limit: 1 << 20, what: what)) ?? []
        switch r.status.code {
        case 200, 202: return true
        case 404, 405: return false
        default:
            let e = Self.httpError(status: Int(r.status.code), body: body, what: what)
            if e.codes.contains(.unsupported) { return false }
            throw e
        }
    }

    /// A small blob (a config) read into memory and checked against its descriptor; bytes
    /// that do not match are fetched once more (a flipped bit on the way), then refused.
    public func blobBytes(repository: String, descriptor d: Descriptor, limit: Int = 16 << 20) async throws -> [UInt8] {
        let what = "blob \(d.digest)"
        guard d.size <= Int64(limit) else {
            throw RegistryError.protocolViolation("\(what): \(d.size) bytes is too large for a config")
        }
        var attempt = 1
        while true {
            let (_, bytes) = try await sendCollect(.GET, "/v2/\(repository)/blobs/\(d.digest)",
                                                   scopes: [Self.repositoryScope(repository, push: false)], what: what,
                                                   expect: [200], limit: Int(d.size) + 1)
            let tried = "\(what) from \(registry)/\(repository) (downloaded twice)"
            let actual = Digest.sha256(bytes)
            if Int64(bytes.count) == d.size, actual == d.digest { return bytes }
            if attempt < Self.verificationAttempts {
                attempt += 1
                continue
            }
            guard Int64(bytes.count) == d.size else { throw RegistryError.sizeMismatch(what: tried, expected: d.size, actual: Int64(bytes.count)) }
            throw RegistryError.digestMismatch(what: tried, expected: d.digest, actual: actual)
        }
    }

    /// How often a blob whose bytes do not match its descriptor is downloaded from the
    /// start before the mismatch is an error: twice, as skopeo and containerd retry a
    /// failed verification (a bit flipped by a proxy or a flaky link is usually gone the
    /// second time; a blob corrupt in the registry's storage is not).
    static let verificationAttempts = 2

    /// Downloads a blob to `path` (spec.md "Pulling blobs"), hashing as it streams.
    /// A transfer cut off part way resumes with `Range: bytes=N-`; a registry that
    /// answers 200 instead of 206 is read again from the start. The file appears at
    /// `path` only when its size and digest match the descriptor; otherwise nothing
    /// is left behind and the error names the blob.
    ///
    /// The network part stays here; the bytes are gathered into large batches
    /// (`downloadBatch`) that a `SerialWorker` thread hashes and writes while the next
    /// batch arrives, so no hashing or file I/O runs on the concurrency pool or NIO's
    /// event loops, and the file is written in a few large `write`s. Two batch buffers
    /// go back and forth between the two sides: nothing is allocated per chunk.
    /// The spool is temporary, so it is not fsynced: the sink that keeps the blob
    /// decides about durability.
    public func downloadBlob(repository: String, descriptor d: Descriptor, to path: String) async throws {
        try await downloadBlob(repository: repository, descriptor: d) { try FileBlobSink(path: path) }
    }

    /// Downloads a blob into a sink from `makeSink` (a file, or a decompressor): as
    /// `downloadBlob(…to:)`, with the bytes handed to `sink.write` in order on the
    /// transfer's worker thread; `sink.finish` runs once the digest checks, `sink.abort`
    /// on any failure. Bytes whose size or digest do not match the descriptor are not
    /// trusted, even the ones that came before: the sink is aborted and the blob
    /// downloaded once more from the start into a new sink (`verificationAttempts`);
    /// a second mismatch is the error, saying the blob was downloaded twice. Returns the
    /// sink that finished.
    @discardableResult
    func downloadBlob<S: BlobSink>(repository: String, descriptor d: Descriptor,
                                   makeSink: () throws -> S) async throws -> S {
        var attempt = 1
        while true {
            let sink = try makeSink()
            let worker = SerialWorker(name: "kiln-download")
            do {
                defer { worker.stop() }
                do {
                    try await transfer(repository: repository, descriptor: d, into: sink, worker: worker, restart: attempt > 1)
                    return sink
                } catch {
                    // After the writes already queued, so nothing is written once it is removed.
                    _ = try? await worker.run { sink.abort() }
                    throw error
                }
            } catch let bad as UnverifiedBlob {
                guard attempt < Self.verificationAttempts else {
                    throw bad.error(what: "blob \(d.digest) from \(registry)/\(repository) (downloaded twice)", expected: d)
                }
                attempt += 1
            }
        }
    }

    /// One download from the start; bytes that do not match the descriptor throw
    /// `UnverifiedBlob` (the caller decides whether to try again), any other failure its
    /// own error. A decompressor that fails part way (`failsOnCorruptBytes`) does not
    /// stop the download: the rest is hashed, so that bytes corrupted on the way are
    /// told from a blob that is bad as the registry has it (the sink's error).
    private func transfer(repository: String, descriptor d: Descriptor, into sink: any BlobSink,
                          worker: SerialWorker, restart: Bool) async throws {
        let what = "blob \(d.digest)"
        let id = shortDigest(d.digest.description)
        let progress = options.progress
        let hasher = LockedBox(SHA256Hasher())
        let sinkError = LockedBox<(any Error)?>(nil)
        let batchSize = Self.downloadBatch
        var batch = ByteBuffer()
        batch.reserveCapacity(batchSize)
        var writing: Task<ByteBuffer, any Error>?
        /// Hands `batch` to the worker and takes back the buffer it finished with.
        func flush() async throws {
            let previous = try await writing?.value
            let full = batch
            batch = previous ?? ByteBuffer()
            batch.clear()
            batch.reserveCapacity(batchSize)
            writing = Task {
                try await worker.run {
                    full.withUnsafeReadableBytes { buf in hasher.update { $0.update(buf) } }
                    if sinkError.get() == nil {
                        do { try sink.write(full) } catch {
                            // A file that cannot be written stops the download at once.
                            guard sink.failsOnCorruptBytes else { throw error }
                            sinkError.set(error)
                        }
                    }
                    return full
                }
            }
        }
        var received: Int64 = 0
        var skip: Int64 = 0
        var attempt = 1
        if restart { progress.rewind(id, to: 0) } else { progress.start(id, verb: "pulling", total: d.size) }
        while true {
            var headers = HTTPHeaders()
            if received > 0 { headers.add(name: "Range", value: "bytes=\(received)-") }
            let r = try await send(.GET, "/v2/\(repository)/blobs/\(d.digest)", headers: headers,
                                   scopes: [Self.repositoryScope(repository, push: false)], what: what)
            let status = Int(r.status.code)
            if status == 206, received > 0, Self.rangeStart(r.headers.first(name: "Content-Range")) == received {
                // Resumed where we stopped.
            } else if status == 200 || status == 206 {
                // The whole blob again: its first `received` bytes are the ones already
                // passed on (the digest check at the end says whether they were), so
                // they are skipped rather than written twice.
                skip = received
                if status == 206 {
                    await drain(r)
                    throw RegistryError.protocolViolation("\(what): the registry sent a partial answer to a whole request")
                }
            } else {
                let body = (try? await collect(r, limit: 1 << 20, what: what)) ?? []
                throw Self.httpError(status: status, body: body, what: what)
            }
            do {
                for try await var chunk in r.body {
                    if skip > 0 {
                        let drop = Int(min(skip, Int64(chunk.readableBytes)))
                        chunk.moveReaderIndex(forwardBy: drop)
                        skip -= Int64(drop)
                        if chunk.readableBytes == 0 { continue }
                    }
                    let n = Int64(chunk.readableBytes)
                    guard received + n <= d.size else { throw UnverifiedBlob.size(received + n) }
                    batch.writeImmutableBuffer(chunk)
                    received += n
                    progress.advance(id, by: n)
                    if batch.readableBytes >= batchSize { try await flush() }
                }
            } catch let e as RegistryError {
                throw e
            } catch let e as UnverifiedBlob {
                throw e
            } catch let e as ArchiveError {
                throw e
            } catch {
                if Task.isCancelled { throw CancellationError() }
                guard attempt < options.maxAttempts else {
                    throw RegistryError.transport("\(what): \(describeTransportError(error, url: nil)) after \(received) of \(d.size) bytes")
                }
                progress.rewind(id, to: received)
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
                continue
            }
            if received < d.size, attempt < options.maxAttempts {
                // The body ended early without an error: resume too.
                progress.rewind(id, to: received)
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
                continue
            }
            break
        }
        guard received == d.size else { throw UnverifiedBlob.size(received) }
        try await flush()
        _ = try await writing?.value
        let actual = hasher.get().finalize()
        guard actual == d.digest else { throw UnverifiedBlob.digest(actual) }
        if let e = sinkError.get() { throw e }
        try await worker.run { try sink.finish() }
        progress.finish(id, outcome: "done")
    }

    /// Bytes gathered before the download worker hashes and writes them.
    static let downloadBatch = 4 << 20

    /// The first byte of `Content-Range: bytes START-END/TOTAL`.
    static func rangeStart(_ header: String?) -> Int64? {
        guard let h = header, h.hasPrefix("bytes ") else { return nil }
        let spec = h.dropFirst("bytes ".count)
        guard let dash = spec.firstIndex(of: "-") else { return nil }
        return Int64(spec[..<dash])
    }
}

/// A download whose bytes do not match its descriptor: how many arrived, or what they
/// hash to. Internal to `downloadBlob`, which tries again or turns it into a
/// `RegistryError` naming the blob.
enum UnverifiedBlob: Error {
    case size(Int64)
    case digest(Digest)

    func error(what: String, expected d: Descriptor) -> RegistryError {
        switch self {
        case .size(let n): return .sizeMismatch(what: what, expected: d.size, actual: n)
        case .digest(let actual): return .digestMismatch(what: what, expected: d.digest, actual: actual)
        }
    }
}

/// Where a download's bytes go, in order, on the transfer's worker thread.
protocol BlobSink: Sendable {
    /// The next bytes; a sink may keep the buffer (it is not written to afterwards).
    func write(_ bytes: ByteBuffer) throws
    /// Every byte arrived and the blob's digest checked.
    func finish() throws
    /// The download failed: leave nothing behind.
    func abort()
    /// Whether `write` may fail because the bytes are corrupt (a decompressor): the
    /// download then goes on, hashing only, to tell corruption on the way (downloaded
    /// again) from a blob that is bad as the registry has it (the sink's error).
    var failsOnCorruptBytes: Bool { get }
}

extension BlobSink {
    var failsOnCorruptBytes: Bool { false }
}

/// A blob downloaded into a file: written to `path.partial`, renamed to `path` when
/// complete and checked.
final class FileBlobSink: BlobSink {
    let path: String
    private let writer: LockedBox<FileWriter>

    init(path: String) throws {
        self.path = path
        writer = LockedBox(try FileWriter(creating: path + ".partial"))
    }

    func write(_ bytes: ByteBuffer) throws {
        try bytes.withUnsafeReadableBytes { buf in try writer.update { try $0.write(buf) } }
    }

    func finish() throws {
        guard rename(path + ".partial", path) == 0 else {
            throw RegistryError.transport("cannot move \(path).partial into place: \(String(cString: strerror(errno)))")
        }
    }

    func abort() { unlink(path + ".partial") }
}
