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
    /// then a closing `PUT ?digest=`. A chunk cut off part way is resumed where the
    /// registry says it stopped (`resumeOffset`); the whole upload starts again only
    /// when the registry no longer knows the session. `open` is called again for each
    /// new start (and to rewind); the bytes are read and hashed on a thread of the
    /// transfer's own and checked against the descriptor before the upload is closed.
    public func pushBlob(repository: String, descriptor d: Descriptor, mountFrom: String? = nil,
                         open: @escaping @Sendable () async throws -> ByteReader) async throws -> UploadOutcome {
        let id = shortDigest(d.digest.description)
        let progress = options.progress
        let worker = SerialWorker(name: "kiln-upload")
        defer { worker.stop() }
        let source = UploadSource(open: open, worker: worker)
        var attempt = 1
        while true {
            do {
                if try await blobExists(repository: repository, digest: d.digest, push: true) {
                    progress.finish(id, outcome: UploadOutcome.existed.rawValue)
                    return .existed
                }
                let outcome = try await uploadOnce(repository: repository, descriptor: d, mountFrom: mountFrom, source: source)
                progress.finish(id, outcome: outcome.rawValue)
                return outcome
            } catch let e as RegistryError {
                guard e.isRetryable || e.restartsUpload, attempt < options.maxAttempts else { throw e }
                try await backoff(attempt: attempt, retryAfter: nil)
                attempt += 1
            }
        }
    }

    private func uploadOnce(repository: String, descriptor d: Descriptor, mountFrom: String?,
                            source: UploadSource) async throws -> UploadOutcome {
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

        let pushScopes = [Self.repositoryScope(repository, push: true)]
        options.progress.start(id, verb: "pushing", total: d.size)
        var generation = try await source.rewind(to: 0)

        if d.size <= options.monolithicUploadLimit {
            let all = try await source.read(Int(d.size) + 1, generation: generation)
            try await source.check(d)
            let (done, _) = try await sendCollect(.PUT, Self.appendQuery(location, "digest=\(d.digest)"), absoluteURL: true,
                                                  headers: ["Content-Type": "application/octet-stream"],
                                                  body: { .bytes(all) }, scopes: pushScopes, what: what,
                                                  expect: [201], retry: .never)
            options.progress.advance(id, by: d.size)
            try checkDigestHeader(done, d: d)
            return .uploaded
        }

        // The bytes the registry has acknowledged.
        var offset: Int64 = 0
        var resumes = 0
        while offset < d.size {
            let n = min(Int64(options.chunkSize), d.size - offset)
            generation = try await source.rewind(to: offset)
            let range = "\(offset)-\(offset + n - 1)"
            let body = UploadBody(source: source, count: n, generation: generation)
            do {
                let (r, _) = try await sendCollect(.PATCH, location, absoluteURL: true,
                                                   headers: ["Content-Type": "application/octet-stream",
                                                             "Content-Range": range],
                                                   body: { .stream(body, length: .known(n)) }, scopes: pushScopes,
                                                   what: "\(what): uploading bytes \(range)",
                                                   expect: [202], retry: .never)
                location = try uploadLocation(r, what: what)
                offset += n
                options.progress.advance(id, by: n)
            } catch let e as RegistryError where e.isRetryable && resumes + 1 < options.maxAttempts {
                // Cut off part way: ask the session how far it got (spec.md "Get upload status")
                // and go on from there rather than from the start.
                resumes += 1
                try await backoff(attempt: resumes, retryAfter: nil)
                let status = try await uploadStatus(location, acknowledged: offset, what: what, scopes: pushScopes)
                guard status.offset <= offset + n else {
                    throw RegistryError.protocolViolation("\(what): the upload status says \(status.offset) bytes arrived, after \(offset) acknowledged and \(n) sent")
                }
                location = status.location
                offset = status.offset
                options.progress.rewind(id, to: offset)
            }
        }
        _ = try await source.rewind(to: d.size)
        try await source.check(d)
        let (done, _) = try await sendCollect(.PUT, Self.appendQuery(location, "digest=\(d.digest)"), absoluteURL: true,
                                              body: { .bytes(ByteBuffer()) },
                                              scopes: pushScopes, what: "\(what): closing the upload", expect: [201], retry: .never)
        try checkDigestHeader(done, d: d)
        return .uploaded
    }

    /// Where an interrupted upload session stands: `GET` on its location answers 204
    /// with `Range: 0-<last byte received>` (spec.md "Get upload status"; distribution's
    /// "Resuming an upload"). A session the registry no longer knows (404,
    /// `BLOB_UPLOAD_UNKNOWN`) — or, as docker-registry 2.x answers when a cut request
    /// left part of its bytes behind, `BLOB_UPLOAD_INVALID` — cannot be resumed: the
    /// error it throws makes `pushBlob` start the upload again.
    func uploadStatus(_ location: String, acknowledged: Int64, what: String,
                      scopes: [String]) async throws -> (offset: Int64, location: String) {
        let r = try await send(.GET, location, absoluteURL: true, scopes: scopes, what: "\(what): upload status")
        let body = try await collect(r, limit: 1 << 20, what: what)
        let status = Int(r.status.code)
        guard status == 204 || status == 200 else {
            let e = Self.httpError(status: status, body: body, what: "\(what): upload status")
            if status == 404 || e.codes.contains(.blobUploadUnknown) || e.codes.contains(.blobUploadInvalid) {
                throw RegistryError.uploadLost("\(what): the registry dropped the interrupted upload (\(e))")
            }
            throw e
        }
        let next = Self.resumeOffset(r.headers.first(name: "Range"), acknowledged: acknowledged)
        guard let next, next >= 0 else {
            throw RegistryError.protocolViolation("\(what): the upload status has no usable Range header")
        }
        let loc = r.headers.first(name: "Location").map { _ in (try? uploadLocation(r, what: what)) ?? location } ?? location
        return (next, loc)
    }

    /// The offset to go on from, given an upload status `Range: 0-N` (N is the last byte
    /// received, so N + 1). A session with nothing in it is reported as `0-0` by
    /// distribution, which cannot be told from one byte received: when nothing was
    /// acknowledged before, `0-0` means 0 (had one byte arrived, the registry's digest
    /// check would fail the close and the upload start again).
    static func resumeOffset(_ header: String?, acknowledged: Int64) -> Int64? {
        guard var h = header?.trimmingCharacters(in: .whitespaces) else { return nil }
        if h.hasPrefix("bytes=") { h.removeFirst("bytes=".count) }
        let parts = h.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let first = Int64(parts[0]), first == 0, let last = Int64(parts[1]) else { return nil }
        if last == 0 && acknowledged == 0 { return 0 }
        return last + 1
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
