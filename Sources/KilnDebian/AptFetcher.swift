#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Foundation
import KilnArchive
import KilnOCI
import NIOCore
import NIOHTTP1
import Synchronization

/// One (source, suite) whose Release was verified.
public struct VerifiedRepository: Sendable {
    public var source: AptSource
    public var release: ReleaseFile
    /// Position in the spec's repository order (0-based), for apt's tie-break.
    public var index: Int

    public init(source: AptSource, release: ReleaseFile, index: Int) {
        self.source = source
        self.release = release
        self.index = index
    }

    /// The directory the Release's paths are relative to, ending in `/`:
    /// `URI/dists/SUITE/`, or `URI/SUITE` for a flat repository (`URI/` for `./`).
    public var base: String { AptFetcher.suiteBase(source) }
}

/// Fetches from apt repositories the way apt's acquire system does, minus apt:
/// signed Release files first (apt-secure(8)), then indexes and packages checked against
/// the hashes they give.
///
/// Transport: `file:` (and `copy:`) URLs are read directly; `http(s)://` goes through
/// AsyncHTTPClient with TLS verification, redirects followed, a 30 s connect and 120 s
/// read timeout. The HTTP client is created on first use; call `shutdown()` when done if
/// anything was fetched over HTTP.
///
/// Downloads stream to a temporary file in the store while being hashed; the file is
/// renamed into place only when size and SHA256 match, so nothing half-written is ever
/// visible. The chunks are written and hashed in the downloading task (on Swift's
/// cooperative pool, never on a NIO event-loop thread); AsyncHTTPClient's body sequence
/// applies backpressure, so a .deb is never held in memory.
///
/// A Sendable class without mutable state besides the lazily made client, so concurrent
/// downloads do not queue behind one another as they would on an actor.
public final class AptFetcher: Sendable {
    public let store: PackageCacheStore
    public let maxConcurrentDownloads: Int
    /// Further attempts after the first, for connection errors, cut-off bodies and 5xx.
    public let retries: Int
    let now: @Sendable () -> Int64
    /// First backoff delay in seconds; doubled per attempt, capped at 10 s.
    let retryDelay: Double
    private let client = Mutex<HTTPClient?>(nil)

    public convenience init(store: PackageCacheStore, maxConcurrentDownloads: Int = 4, retries: Int = 3,
                now: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }) {
        self.init(store: store, maxConcurrentDownloads: maxConcurrentDownloads, retries: retries, now: now, retryDelay: 0.5)
    }

    init(store: PackageCacheStore, maxConcurrentDownloads: Int, retries: Int,
         now: @escaping @Sendable () -> Int64, retryDelay: Double) {
        self.store = store
        self.maxConcurrentDownloads = max(1, maxConcurrentDownloads)
        self.retries = max(0, retries)
        self.now = now
        self.retryDelay = retryDelay
    }

    /// Closes the HTTP client, if one was made.
    public func shutdown() async throws {
        let c = client.withLock { c -> HTTPClient? in
            defer { c = nil }
            return c
        }
        try await c?.shutdown()
    }

    // MARK: Release

    /// Fetches `InRelease` (else `Release` and `Release.gpg`) of the source's suite,
    /// verifies its signature against the source's Signed-By keyrings (apt's trusted
    /// keyrings when it has none) and its `Valid-Until` against `now`. Unsigned
    /// repositories are refused. The Release `Date` is not checked against the clock.
    public func release(of source: AptSource, index: Int) async throws -> VerifiedRepository {
        ProgressBoard.shared.phase("resolving packages")
        let base = Self.suiteBase(source)
        let keyrings = source.signedBy.isEmpty ? AptSources.trustedKeyrings() : source.signedBy
        let fetchedBytes: [UInt8]
        let text: String
        let url: String
        if let inRelease = try await fetchSmall(base + "InRelease") {
            url = base + "InRelease"
            fetchedBytes = inRelease
            text = try await OwnThread.run("kiln-apt") { try GPGVerifier.verifyInRelease(inRelease, keyrings: keyrings, origin: url) }
        } else if let release = try await fetchSmall(base + "Release") {
            url = base + "Release"
            guard let signature = try await fetchSmall(base + "Release.gpg") else { throw RepositoryError.unsigned(url) }
            fetchedBytes = release
            text = try await OwnThread.run("kiln-apt") {
                try GPGVerifier.verifyDetached(release: release, signature: signature, keyrings: keyrings, origin: url)
            }
        } else {
            throw RepositoryError.notFound(base + "InRelease")
        }
        var release = try ReleaseFile.parse(text, origin: url)
        release.digest = Digest.sha256(fetchedBytes).description
        if let until = release.validUntil {
            guard let t = ReleaseFile.parseDate(until) else {
                throw RepositoryError.malformed(url, line: 0, reason: "cannot read Valid-Until '\(until)'")
            }
            if now() > t { throw RepositoryError.expired(url, validUntil: until) }
        }
        return VerifiedRepository(source: source, release: release, index: index)
    }

    // MARK: Packages indexes

    /// The text of `COMPONENT/binary-ARCH/Packages` (flat repositories: `Packages` next to
    /// the Release), from the first compressed form the Release lists and the server has:
    /// `.gz`, `.xz` (when KilnArchive can read xz), then plain. The compressed file is
    /// checked against the Release and kept content-addressed, so the same index is not
    /// downloaded twice; the decompressed text is checked too when the Release lists it.
    /// Returns "" when the Release lists no such index (binary-all is often absent).
    public func packagesIndex(_ repo: VerifiedRepository, component: String, architecture: String) async throws -> String {
        let base = repo.base
        let dir = repo.source.isFlat ? "" : "\(component)/binary-\(architecture)/"
        let listed = ["Packages.gz", "Packages.xz", "Packages"].compactMap { name -> (String, ReleaseFile.Entry)? in
            repo.release.sha256[dir + name].map { (dir + name, $0) }
        }
        if listed.isEmpty { return "" }
        var lastError: Error = RepositoryError.notFound(base + dir + "Packages")
        for (path, entry) in listed {
            var urls = [base + path]
            if repo.release.acquireByHash && !repo.source.isFlat {
                // apt's Acquire-By-Hash: the hashed name cannot change under us mid-update.
                urls.insert(base + dir + "by-hash/SHA256/" + entry.sha256, at: 0)
            }
            let file: String
            do {
                file = try await download(urls: urls, sha256: entry.sha256, size: entry.size, what: base + path, progress: nil)
            } catch let e as RepositoryError {
                if case .notFound = e { lastError = e; continue }
                throw e
            }
            let bytes: [UInt8]
            do {
                bytes = try await OwnThread.run("kiln-apt") {
                    try Compression.decompressing(FileReader(path: file), limit: 4 << 30).readAll(limit: Int(Int32.max))
                }
            } catch {
                throw RepositoryError.malformed(base + path, line: 0, reason: "cannot decompress: \(error)")
            }
            if bytes.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
                // Compression could not read xz (yet): try the next form the Release lists.
                lastError = RepositoryError.unsupported(base + path, reason: "cannot decompress xz")
                continue
            }
            if path != dir + "Packages", let plain = repo.release.sha256[dir + "Packages"] {
                guard Int64(bytes.count) == plain.size else {
                    throw RepositoryError.sizeMismatch(base + path + " (decompressed)", expected: plain.size, got: Int64(bytes.count))
                }
                let got = try await OwnThread.run("kiln-apt") { Digest.sha256(bytes).hex }
                guard got == plain.sha256 else {
                    throw RepositoryError.hashMismatch(base + path + " (decompressed)", expected: plain.sha256, got: got)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        throw lastError
    }

    // MARK: Downloads

    /// Downloads one file from the first URL that works (mirrors in order), checks its
    /// size and SHA256, stores it content-addressed and returns its path. Already stored:
    /// no network at all.
    public func download(urls: [String], sha256: String, size: Int64, what: String) async throws -> String {
        try await download(urls: urls, sha256: sha256, size: size, what: what, progress: nil)
    }

    /// Many downloads, at most `maxConcurrentDownloads` at once; paths in input order.
    /// `progress` gets (bytes done, bytes total) at most ten times a second, and once at
    /// the end. The first failure cancels the others and is thrown.
    public func downloadAll(_ items: [(urls: [String], sha256: String, size: Int64, what: String)],
                            progress: (@Sendable (Int64, Int64) -> Void)?) async throws -> [String] {
        let meter = ProgressMeter(total: items.reduce(0) { $0 + $1.size }, report: ProgressBoard.shared.downloadReport(progress))
        let paths = try await withThrowingTaskGroup(of: (Int, String).self) { group -> [String] in
            var results = [String?](repeating: nil, count: items.count)
            var next = 0
            var running = 0
            while true {
                while running < maxConcurrentDownloads, next < items.count {
                    let i = next
                    let item = items[i]
                    group.addTask {
                        (i, try await self.download(urls: item.urls, sha256: item.sha256, size: item.size,
                                                    what: item.what, progress: { meter.add($0) }))
                    }
                    next += 1
                    running += 1
                }
                guard let (i, path) = try await group.next() else { break }
                running -= 1
                results[i] = path
            }
            return results.map { $0! }
        }
        meter.finish()
        return paths
    }

    func download(urls: [String], sha256 rawHash: String, size: Int64, what: String,
                  progress: (@Sendable (Int64) -> Void)?) async throws -> String {
        let sha256 = PackageCacheStore.hex(rawHash)
        guard sha256.count == 64, sha256.allSatisfy({ $0.isHexDigit }) else {
            throw RepositoryError.malformed(what, line: 0, reason: "'\(rawHash)' is not a SHA256")
        }
        if store.has(sha256: sha256, size: size) {
            progress?(size)
            return store.path(sha256: sha256)
        }
        guard !urls.isEmpty else { throw RepositoryError.notFound(what) }
        var failures: [RepositoryError] = []
        for url in urls {
            do {
                return try await fetchVerified(url, sha256: sha256, size: size, progress: progress)
            } catch let e as RepositoryError {
                failures.append(e)
            }
        }
        // The most telling failure: a bad file or a dead server says more than a 404 from a mirror.
        let notFound = failures.filter { if case .notFound = $0 { return true } else { return false } }
        throw failures.last { f in !notFound.contains { $0.description == f.description } } ?? failures.last!
    }

    /// Streams `url` into a temporary file while hashing it, then adopts it.
    private func fetchVerified(_ url: String, sha256: String, size: Int64,
                               progress: (@Sendable (Int64) -> Void)?) async throws -> String {
        let tmp = store.newTempPath()
        let sink: DownloadSink
        do {
            sink = try DownloadSink(path: tmp, url: url, expectedSize: size)
        } catch {
            throw RepositoryError.io(tmp, reason: "\(error)")
        }
        var adopted = false
        defer { if !adopted { unlink(tmp) } }
        if let path = Self.localPath(url) {
            let box = SinkBox(sink)
            try await OwnThread.run("kiln-apt") { try self.copyLocal(path, url: url, into: box.sink, progress: progress) }
        } else if url.hasPrefix("http://") || url.hasPrefix("https://") {
            try await fetchHTTP(url, into: sink, progress: progress)
        } else {
            throw RepositoryError.unsupported(url, reason: "only file:, http: and https: URIs are supported")
        }
        guard sink.received == size else {
            throw RepositoryError.sizeMismatch(url, expected: size, got: sink.received)
        }
        let got = sink.hasher.finalize().hex
        guard got == sha256 else { throw RepositoryError.hashMismatch(url, expected: sha256, got: got) }
        let box = SinkBox(sink)
        do { try await OwnThread.run("kiln-apt") { try box.sink.file.sync() } } catch { throw RepositoryError.io(tmp, reason: "\(error)") }
        let path = try store.adopt(tempFile: tmp, sha256: sha256)
        adopted = true
        return path
    }

    private func copyLocal(_ path: String, url: String, into sink: DownloadSink,
                           progress: (@Sendable (Int64) -> Void)?) throws {
        let reader: FileReader
        do { reader = try FileReader(path: path) } catch {
            if errno == ENOENT || errno == ENOTDIR { throw RepositoryError.notFound(url) }
            throw RepositoryError.io(path, reason: "\(error)")
        }
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n: Int
            do { n = try reader.read(into: buf) } catch { throw RepositoryError.io(path, reason: "\(error)") }
            if n == 0 { return }
            try sink.append(UnsafeRawBufferPointer(rebasing: buf[..<n]))
            progress?(Int64(n))
        }
    }

    /// GET with retries; a body cut off part way is resumed with `Range: bytes=N-` when
    /// the server answers 206 from that offset, and read again from the start otherwise.
    private func fetchHTTP(_ url: String, into sink: DownloadSink, progress: (@Sendable (Int64) -> Void)?) async throws {
        var attempt = 0
        while true {
            var headers = HTTPHeaders()
            if sink.received > 0 { headers.add(name: "Range", value: "bytes=\(sink.received)-") }
            let r = try await send(url, headers: headers, attempt: &attempt)
            let status = Int(r.status.code)
            if status == 206, sink.received > 0, Self.rangeStart(r.headers.first(name: "Content-Range")) == sink.received {
                // Resumed where the last attempt stopped.
            } else if status == 200 {
                if sink.received > 0 {
                    progress?(-sink.received)
                    try sink.restart()
                }
            } else {
                _ = try? await r.body.collect(upTo: 1 << 20)
                if status == 404 || status == 410 { throw RepositoryError.notFound(url) }
                if status == 416 || status == 206, sink.received > 0 {
                    // The range was not honoured as asked: start over without one.
                    progress?(-sink.received)
                    try sink.restart()
                    continue
                }
                throw RepositoryError.unreachable(url, reason: "HTTP \(status)")
            }
            do {
                for try await chunk in r.body {
                    try chunk.withUnsafeReadableBytes { try sink.append($0) }
                    progress?(Int64(chunk.readableBytes))
                }
            } catch let e as RepositoryError {
                throw e
            } catch {
                if Task.isCancelled { throw CancellationError() }
                guard attempt < retries else {
                    throw RepositoryError.unreachable(url, reason: "\(Self.describe(error)) after \(sink.received) of \(sink.expectedSize) bytes")
                }
                attempt += 1
                try await backoff(attempt)
                continue
            }
            if sink.received < sink.expectedSize, attempt < retries {
                // The body ended early without an error: resume as well.
                attempt += 1
                try await backoff(attempt)
                continue
            }
            return
        }
    }

    // MARK: Transport

    /// A small document (InRelease, Release, Release.gpg) in memory; nil when the server
    /// says 404/410 or the file does not exist.
    func fetchSmall(_ url: String, limit: Int = 64 << 20) async throws -> [UInt8]? {
        if let path = Self.localPath(url) {
            do {
                return try FileReader(path: path).readAll(limit: limit)
            } catch ArchiveError.io(_, path: _, errno: let e) where e == ENOENT || e == ENOTDIR {
                return nil
            } catch {
                throw RepositoryError.io(path, reason: "\(error)")
            }
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw RepositoryError.unsupported(url, reason: "only file:, http: and https: URIs are supported")
        }
        var attempt = 0
        while true {
            let r = try await send(url, headers: [:], attempt: &attempt)
            let status = Int(r.status.code)
            do {
                var body = try await r.body.collect(upTo: limit)
                switch status {
                case 200: return body.readBytes(length: body.readableBytes) ?? []
                case 404, 410: return nil
                default: throw RepositoryError.unreachable(url, reason: "HTTP \(status)")
                }
            } catch let e as RepositoryError {
                throw e
            } catch is NIOTooManyBytesError {
                throw RepositoryError.unreachable(url, reason: "larger than \(limit) bytes")
            } catch {
                if Task.isCancelled { throw CancellationError() }
                guard attempt < retries else { throw RepositoryError.unreachable(url, reason: Self.describe(error)) }
                attempt += 1
                try await backoff(attempt)
            }
        }
    }

    /// Sends a GET, retrying connection errors, 5xx, 408 and 429; any other answer is
    /// returned with its body unread.
    private func send(_ url: String, headers: HTTPHeaders, attempt: inout Int) async throws -> HTTPClientResponse {
        let http = httpClient()
        while true {
            var req = HTTPClientRequest(url: url)
            req.method = .GET
            req.headers = headers
            req.headers.replaceOrAdd(name: "User-Agent", value: "kiln")
            let started = HTTPLog.now()
            do {
                let r = try await http.execute(req, timeout: .hours(12))
                HTTPLog.response("GET", url, status: Int(r.status.code), responseBytes: r.headers.first(name: "Content-Length").flatMap { Int64($0) }, started: started)
                let status = Int(r.status.code)
                if (status >= 500 || status == 408 || status == 429) && attempt < retries {
                    _ = try? await r.body.collect(upTo: 1 << 20)
                    attempt += 1
                    try await backoff(attempt)
                    continue
                }
                return r
            } catch {
                HTTPLog.failure("GET", url, error: Self.describe(error), started: started)
                if Task.isCancelled { throw CancellationError() }
                // AsyncHTTPClient already keeps trying to connect until the connect timeout:
                // a host that refused for that long is tried once more, not `retries` times
                // (which made an unreachable repository cost minutes).
                let limit = Self.isConnectFailure(error) ? min(retries, 1) : retries
                guard attempt < limit else { throw RepositoryError.unreachable(url, reason: Self.describe(error)) }
                attempt += 1
                try await backoff(attempt)
            }
        }
    }

    static func isConnectFailure(_ e: any Error) -> Bool {
        if let h = e as? HTTPClientError, h == .connectTimeout { return true }
        let text = String(describing: e)
        return text.contains("connectTimeout") || text.contains("Connection refused") || text.contains("connectionRefused") || text.contains("errno: 111")
    }

    private func httpClient() -> HTTPClient {
        client.withLock { c in
            if let c { return c }
            let config = HTTPClient.Configuration(
                redirectConfiguration: .follow(max: 10, allowCycles: false),
                timeout: .init(connect: .seconds(10), read: .seconds(120)))
            let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
            c = made
            return made
        }
    }

    private func backoff(_ attempt: Int) async throws {
        let delay = min(retryDelay * pow(2, Double(attempt - 1)), 10) * Double.random(in: 0.8...1.2)
        if delay > 0 { try await Task.sleep(nanoseconds: UInt64(delay * 1e9)) }
    }

    static func describe(_ e: any Error) -> String {
        if let h = e as? HTTPClientError {
            switch h {
            case .connectTimeout: return "connection timed out"
            case .readTimeout: return "no data for 120 s (read timeout)"
            case .remoteConnectionClosed: return "the server closed the connection"
            case .deadlineExceeded: return "no answer in time"
            default: return "\(h)"
            }
        }
        return "\(e)"
    }

    // MARK: URLs

    /// See `VerifiedRepository.base`.
    static func suiteBase(_ s: AptSource) -> String {
        if s.isFlat {
            var sub = Substring(s.suite)
            while sub.hasPrefix("./") { sub = sub.dropFirst(2) }
            while sub.hasPrefix("/") { sub = sub.dropFirst() }
            return s.uri + "/" + sub
        }
        return s.uri + "/dists/" + s.suite + "/"
    }

    /// The path of a `file:` or `copy:` URL (`file:/srv/repo`, `file:///srv/repo`,
    /// `file://localhost/srv/repo`), percent-decoded; nil for other schemes.
    static func localPath(_ url: String) -> String? {
        var rest: Substring
        if url.hasPrefix("file:") { rest = url.dropFirst(5) } else if url.hasPrefix("copy:") { rest = url.dropFirst(5) } else { return nil }
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let host = rest.prefix { $0 != "/" }
            guard host.isEmpty || host == "localhost" else { return nil }
            rest = rest.dropFirst(host.count)
        }
        return String(rest).removingPercentEncoding ?? String(rest)
    }

    /// The first byte of `Content-Range: bytes START-END/TOTAL` (RFC 9110 §14.4).
    static func rangeStart(_ header: String?) -> Int64? {
        guard let h = header, h.hasPrefix("bytes ") else { return nil }
        let spec = h.dropFirst("bytes ".count)
        guard let dash = spec.firstIndex(of: "-") else { return nil }
        return Int64(spec[..<dash])
    }
}

/// Runs blocking work (gpgv, decompression, local copies, fsync) on a thread of its own,
/// not on Swift's cooperative pool, as the README's concurrency model asks.
/// Hands a download's sink to the thread that fills it while the task awaits: only one
/// side touches it at a time.
private final class SinkBox: @unchecked Sendable {
    let sink: DownloadSink
    init(_ s: DownloadSink) { sink = s }
}

/// The temporary file of one download and the hash of what it holds so far.
private final class DownloadSink {
    let file: FileWriter
    let url: String
    let expectedSize: Int64
    private(set) var hasher = SHA256Hasher()
    var received: Int64 { hasher.count }

    init(path: String, url: String, expectedSize: Int64) throws {
        self.file = try FileWriter(creating: path)
        self.url = url
        self.expectedSize = expectedSize
    }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard received + Int64(bytes.count) <= expectedSize else {
            throw RepositoryError.sizeMismatch(url, expected: expectedSize, got: received + Int64(bytes.count))
        }
        hasher.update(bytes)
        do { try file.write(bytes) } catch { throw RepositoryError.io(file.path, reason: "\(error)") }
    }

    func restart() throws {
        do { try file.truncate(to: 0) } catch { throw RepositoryError.io(file.path, reason: "\(error)") }
        hasher = SHA256Hasher()
    }
}

/// Sums the bytes of concurrent downloads and reports them at most ten times a second.
private final class ProgressMeter: Sendable {
    let total: Int64
    let report: (@Sendable (Int64, Int64) -> Void)?
    private let state = Mutex<(done: Int64, last: UInt64)>((0, 0))

    init(total: Int64, report: (@Sendable (Int64, Int64) -> Void)?) {
        self.total = total
        self.report = report
    }

    func add(_ n: Int64) {
        guard let report else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        let due: Int64? = state.withLock { s in
            s.done += n
            // `now` was read before the lock: another download may have stamped a later one.
            guard now >= s.last + 100_000_000 else { return nil }
            s.last = now
            return s.done
        }
        if let due { report(max(0, due), total) }
    }

    func finish() {
        report?(state.withLock { $0.done }, total)
    }
}
