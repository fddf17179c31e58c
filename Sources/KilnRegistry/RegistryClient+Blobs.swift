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

    /// A small blob (a config) read into memory and checked against its descriptor.
    public func blobBytes(repository: String, descriptor d: Descriptor, limit: Int = 16 << 20) async throws -> [UInt8] {
        let what = "blob \(d.digest)"
        guard d.size <= Int64(limit) else {
            throw RegistryError.protocolViolation("\(what): \(d.size) bytes is too large for a config")
        }
        let (_, bytes) = try await sendCollect(.GET, "/v2/\(repository)/blobs/\(d.digest)",
                                               scopes: [Self.repositoryScope(repository, push: false)], what: what,
                                               expect: [200], limit: Int(d.size) + 1)
        guard Int64(bytes.count) == d.size else { throw RegistryError.sizeMismatch(what: what, expected: d.size, actual: Int64(bytes.count)) }
        let actual = Digest.sha256(bytes)
        guard actual == d.digest else { throw RegistryError.digestMismatch(what: what, expected: d.digest, actual: actual) }
        return bytes
    }

    /// Downloads a blob to `path` (spec.md "Pulling blobs"), hashing as it streams.
    /// A transfer cut off part way resumes with `Range: bytes=N-`; a registry that
    /// answers 200 instead of 206 is read again from the start. The file appears at
    /// `path` only when its size and digest match the descriptor; otherwise nothing
    /// is left behind and the error names the blob.
    public func downloadBlob(repository: String, descriptor d: Descriptor, to path: String) async throws {
        let what = "blob \(d.digest)"
        let id = shortDigest(d.digest.description)
        let progress = options.progress
        let tmp = path + ".partial"
        let file = try FileWriter(creating: tmp)
        var ok = false
        defer { if !ok { unlink(tmp) } }
        var hasher = SHA256Hasher()
        var received: Int64 = 0
        var attempt = 1
        progress.start(id, verb: "pulling", total: d.size)
        while true {
            var headers = HTTPHeaders()
            if received > 0 { headers.add(name: "Range", value: "bytes=\(received)-") }
            let r = try await send(.GET, "/v2/\(repository)/blobs/\(d.digest)", headers: headers,
                                   scopes: [Self.repositoryScope(repository, push: false)], what: what)
            let status = Int(r.status.code)
            if status == 206, received > 0, Self.rangeStart(r.headers.first(name: "Content-Range")) == received {
                // Resumed where we stopped.
            } else if status == 200 || status == 206 {
                if received > 0 {
                    try file.truncate(to: 0)
                    hasher = SHA256Hasher()
                    received = 0
                    progress.rewind(id, to: 0)
                }
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
                    let n = Int64(chunk.readableBytes)
                    guard received + n <= d.size else {
                        throw RegistryError.sizeMismatch(what: what, expected: d.size, actual: received + n)
                    }
                    try chunk.withUnsafeReadableBytes { buf in
                        hasher.update(buf)
                        try file.write(buf)
                    }
                    received += n
                    progress.advance(id, by: n)
                    chunk.moveReaderIndex(forwardBy: Int(n))
                }
            } catch let e as RegistryError {
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
        guard received == d.size else { throw RegistryError.sizeMismatch(what: what, expected: d.size, actual: received) }
        let actual = hasher.finalize()
        guard actual == d.digest else { throw RegistryError.digestMismatch(what: what, expected: d.digest, actual: actual) }
        try file.sync()
        guard rename(tmp, path) == 0 else {
            throw RegistryError.transport("cannot move \(tmp) into place: \(String(cString: strerror(errno)))")
        }
        ok = true
        progress.finish(id, outcome: "done")
    }

    /// The first byte of `Content-Range: bytes START-END/TOTAL`.
    static func rangeStart(_ header: String?) -> Int64? {
        guard let h = header, h.hasPrefix("bytes ") else { return nil }
        let spec = h.dropFirst("bytes ".count)
        guard let dash = spec.firstIndex(of: "-") else { return nil }
        return Int64(spec[..<dash])
    }
}
