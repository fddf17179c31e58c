import AsyncHTTPClient
import KilnArchive
import KilnOCI
import NIOCore
import NIOHTTP1

/// What happened to a blob being pushed.
public enum UploadOutcome: String, Sendable {
    case existed = "exists"
    case mounted
    case uploaded = "done"
}

extension RegistryClient {
    /// Pushes a blob (spec.md "Pushing blobs"), skipping it when `HEAD` finds it,
    /// mounting it from `mountFrom` (another repository of this registry) when that
    /// works, and otherwise uploading: one `PUT` for blobs up to
    /// `options.monolithicUploadLimit`, else `PATCH` chunks of `options.chunkSize`
    /// then a closing `PUT ?digest=`. `open` is called again for each attempt; the
    /// bytes are checked against the descriptor before the upload is closed.
    public func pushBlob(repository: String, descriptor d: Descriptor, mountFrom: String? = nil,
                         open: () async throws -> ByteReader) async throws -> UploadOutcome {
        let id = shortDigest(d.digest.description)
        let progress = options.progress
        var attempt = 1
        while true {
            do {
                if try await blobExists(repository: repository, digest: d.digest, push: true) {
                    progress.finish(id, outcome: UploadOutcome.existed.rawValue)
                    return .existed
                }
                let outcome = try await uploadOnce(repository: repository, descriptor: d, mountFrom: mountFrom, open: open)
                progress.finish(id, outcome: outcome.rawValue)
                return outcome
            } catch let e as RegistryError {
                guard e.isRetryable, attempt < options.maxAttempts else { throw e }
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
            }
        }
    }

    private func uploadOnce(repository: String, descriptor d: Descriptor, mountFrom: String?,
                            open: () async throws -> ByteReader) async throws -> UploadOutcome {
        let what = "blob \(d.digest)"
        let id = shortDigest(d.digest.description)
        var scopes = [Self.repositoryScope(repository, push: true)]
        var path = "/v2/\(repository)/blobs/uploads/"
        if let from = mountFrom, from != repository {
            // spec.md "Mounting a blob from another repository".
            path += "?mount=\(d.digest)&from=\(from)"
            scopes.append(Self.repositoryScope(from, push: false))
        }
        let (start, _) = try await sendCollect(.POST, path, body: { .bytes(ByteBuffer()) }, scopes: scopes,
                                               what: "\(what): starting the upload", expect: [201, 202])
        if start.status.code == 201 { return .mounted }
        var location = try uploadLocation(start, what: what)

        let reader = try await open()
        var hasher = SHA256Hasher()
        let pushScopes = [Self.repositoryScope(repository, push: true)]
        options.progress.start(id, verb: "pushing", total: d.size)

        func readChunk(_ max: Int) throws -> ByteBuffer {
            var buf = ByteBuffer()
            try buf.writeWithUnsafeMutableBytes(minimumWritableBytes: max) { raw in
                let n = try reader.readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<max]))
                hasher.update(UnsafeRawBufferPointer(rebasing: raw[..<n]))
                return n
            }
            return buf
        }

        if d.size <= options.monolithicUploadLimit {
            let all = try readChunk(Int(d.size) + 1)
            try checkSource(count: Int64(all.readableBytes), hasher: hasher, d: d)
            let (done, _) = try await sendCollect(.PUT, Self.appendQuery(location, "digest=\(d.digest)"), absoluteURL: true,
                                                  headers: ["Content-Type": "application/octet-stream"],
                                                  body: { .bytes(all) }, scopes: pushScopes, what: what,
                                                  expect: [201], retry: .never)
            options.progress.advance(id, by: d.size)
            try checkDigestHeader(done, d: d)
            return .uploaded
        }

        var offset: Int64 = 0
        while true {
            let chunk = try readChunk(options.chunkSize)
            let n = Int64(chunk.readableBytes)
            if n == 0 { break }
            guard offset + n <= d.size else {
                throw RegistryError.sizeMismatch(what: "\(what) (source)", expected: d.size, actual: offset + n)
            }
            let (r, _) = try await sendCollect(.PATCH, location, absoluteURL: true,
                                               headers: ["Content-Type": "application/octet-stream",
                                                         "Content-Range": "\(offset)-\(offset + n - 1)"],
                                               body: { .bytes(chunk) }, scopes: pushScopes,
                                               what: "\(what): uploading bytes \(offset)-\(offset + n - 1)",
                                               expect: [202], retry: .never)
            location = try uploadLocation(r, what: what)
            offset += n
            options.progress.advance(id, by: n)
        }
        try checkSource(count: offset, hasher: hasher, d: d)
        let (done, _) = try await sendCollect(.PUT, Self.appendQuery(location, "digest=\(d.digest)"), absoluteURL: true,
                                              body: { .bytes(ByteBuffer()) },
                                              scopes: pushScopes, what: "\(what): closing the upload", expect: [201], retry: .never)
        try checkDigestHeader(done, d: d)
        return .uploaded
    }

    private func checkSource(count: Int64, hasher: SHA256Hasher, d: Descriptor) throws {
        guard count == d.size else { throw RegistryError.sizeMismatch(what: "blob \(d.digest) (source)", expected: d.size, actual: count) }
        let actual = hasher.finalize()
        guard actual == d.digest else { throw RegistryError.digestMismatch(what: "blob \(d.digest) (source)", expected: d.digest, actual: actual) }
    }

    private func checkDigestHeader(_ r: HTTPClientResponse, d: Descriptor) throws {
        if let h = r.headers.first(name: "Docker-Content-Digest"), h != d.digest.description {
            throw RegistryError.protocolViolation("blob \(d.digest): the registry stored it as \(h)")
        }
    }

    /// The absolute URL of an upload session from a `Location` header, which may be relative.
    func uploadLocation(_ r: HTTPClientResponse, what: String) throws -> String {
        guard let loc = r.headers.first(name: "Location"), !loc.isEmpty else {
            throw RegistryError.protocolViolation("\(what): the registry gave no upload location")
        }
        if loc.hasPrefix("http://") || loc.hasPrefix("https://") { return loc }
        guard let base = state.get().base else { throw RegistryError.protocolViolation("\(what): no base URL") }
        return base + (loc.hasPrefix("/") ? loc : "/" + loc)
    }

    /// Adds a query parameter; the registry's locations often carry one already (`?_state=…`).
    static func appendQuery(_ url: String, _ param: String) -> String {
        url + (url.contains("?") ? "&" : "?") + param
    }
}
