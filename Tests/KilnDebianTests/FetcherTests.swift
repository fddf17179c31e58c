import Foundation
import Testing
@testable import KilnDebian

@Suite struct FetcherTests {
    static let tools = TestAptRepo.canBuild
    static let toolsAndPython = TestAptRepo.canBuild && TestAptRepo.hasPython

    func newStore() throws -> PackageCacheStore {
        try PackageCacheStore(root: try TestAptRepo.makeTempDirectory("kiln-apt-store"))
    }

    func source(_ repo: TestAptRepo, uri: String? = nil) -> AptSource {
        AptSource(uri: uri ?? repo.fileURI, suite: TestAptRepo.suite, components: [TestAptRepo.component],
                  signedBy: [repo.keyring], origin: "test")
    }

    /// A copy of the repository that a test may change.
    func copyOfRepo(_ repo: TestAptRepo) throws -> String {
        let dir = try TestAptRepo.makeTempDirectory("kiln-apt-copy") + "/debian"
        try FileManager.default.copyItem(atPath: repo.root, toPath: dir)
        return dir
    }

    /// (Filename, SHA256, Size) of a package in a Packages text.
    func entry(_ packages: String, _ name: String, version: String? = nil) throws -> (file: String, sha256: String, size: Int64) {
        for para in packages.components(separatedBy: "\n\n") {
            var f: [String: String] = [:]
            for line in para.split(separator: "\n") where !line.hasPrefix(" ") {
                if let c = line.firstIndex(of: ":") {
                    f[String(line[..<c])] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
                }
            }
            if f["Package"] == name, version == nil || f["Version"] == version,
               let file = f["Filename"], let sha = f["SHA256"], let size = f["Size"].flatMap({ Int64($0) }) {
                return (file, sha, size)
            }
        }
        throw TestToolError("\(name) not in the index")
    }

    func storeFiles(_ store: PackageCacheStore) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: store.root + "/blobs/sha256")
            + FileManager.default.contentsOfDirectory(atPath: store.root + "/tmp")
    }

    // MARK: Indexes

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func packagesIndexOverFile() async throws {
        let repo = try TestAptRepo.shared()
        let store = try newStore()
        let f = AptFetcher(store: store)
        let v = try await f.release(of: source(repo), index: 0)
        let native = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
        #expect(native.contains("Package: kiln-hello\n"))
        #expect(native.contains("Package: kiln-greeting\nVersion: 0.9\n") && native.contains("Package: kiln-greeting\nVersion: 1.0\n"))
        let all = try await f.packagesIndex(v, component: "main", architecture: "all")
        #expect(all.contains("Package: kiln-greeting") && !all.contains("Package: kiln-hello"))
        // An architecture the Release does not list has no index.
        #expect(try await f.packagesIndex(v, component: "main", architecture: "s390x") == "")
        #expect(try await f.packagesIndex(v, component: "contrib", architecture: "all") == "")

        // The compressed index is cached by its hash: a repository that has gone away
        // still gives the same text for the same Release.
        let gz = try #require(v.release.sha256["main/binary-\(nativeArch())/Packages.gz"])
        #expect(store.has(sha256: gz.sha256, size: gz.size))
        var gone = v
        gone.source.uri = "file:/nonexistent/kiln-repo"
        #expect(try await f.packagesIndex(gone, component: "main", architecture: nativeArch()) == native)
        try await f.shutdown()
    }

    @Test(.enabled(if: toolsAndPython, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc, python3"))
    func packagesIndexOverHTTP() async throws {
        let repo = try TestAptRepo.shared()
        let server = try TestHTTPServer(directory: repo.root)
        defer { server.stop() }
        let f = AptFetcher(store: try newStore())
        let v = try await f.release(of: source(repo, uri: server.baseURL), index: 0)
        #expect(v.release.digest == "sha256:" + (try sha256File(repo.root + "/dists/kiln/InRelease")))
        let text = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
        #expect(text.contains("Package: kiln-hello\n"))
        let missing = source(repo, uri: server.baseURL + "/nowhere")
        await #expect(throws: RepositoryError.self) { try await f.release(of: missing, index: 0) }
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func tamperedIndexIsRefusedAndNotKept() async throws {
        let repo = try TestAptRepo.shared()
        let root = try copyOfRepo(repo)
        let dir = root + "/dists/kiln/main/binary-\(nativeArch())"
        // A valid gzip of a changed index, in place of the signed one.
        let plain = try String(contentsOfFile: dir + "/Packages", encoding: .utf8)
        try plain.replacingOccurrences(of: "kiln-hello", with: "kiln-evil").write(toFile: dir + "/Packages", atomically: true, encoding: .utf8)
        let gz = try TestAptRepo.run("/bin/sh", ["-c", "gzip -9 -n -c '\(dir)/Packages' > '\(dir)/Packages.gz'"])
        #expect(gz.status == 0)

        let store = try newStore()
        let f = AptFetcher(store: store)
        let v = try await f.release(of: source(repo, uri: "file:" + root), index: 0)
        do {
            _ = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
            Issue.record("a tampered Packages.gz was accepted")
        } catch let e as RepositoryError {
            guard case .sizeMismatch = e else {
                guard case .hashMismatch = e else { Issue.record("unexpected \(e)"); return }
                return
            }
        }
        #expect(try storeFiles(store).isEmpty)
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func missingGzipFallsBackToXz() async throws {
        let repo = try TestAptRepo.shared()
        let root = try copyOfRepo(repo)
        let dir = root + "/dists/kiln/main/binary-\(nativeArch())"
        try FileManager.default.removeItem(atPath: dir + "/Packages.gz")
        let store = try newStore()
        let f = AptFetcher(store: store)
        let v = try await f.release(of: source(repo, uri: "file:" + root), index: 0)
        let text = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
        #expect(text == (try String(contentsOfFile: dir + "/Packages", encoding: .utf8)))
        let xz = try #require(v.release.sha256["main/binary-\(nativeArch())/Packages.xz"])
        #expect(store.has(sha256: xz.sha256, size: xz.size))
        try await f.shutdown()
    }

    // MARK: Downloads

    @Test(.enabled(if: toolsAndPython, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc, python3"))
    func downloadIsVerifiedAndCached() async throws {
        let repo = try TestAptRepo.shared()
        let root = try copyOfRepo(repo)
        let server = try TestHTTPServer(directory: root)
        defer { server.stop() }
        let store = try newStore()
        let f = AptFetcher(store: store, retries: 1)
        let v = try await f.release(of: source(repo, uri: server.baseURL), index: 0)
        let index = try await f.packagesIndex(v, component: "main", architecture: "all")
        let e = try entry(index, "kiln-greeting", version: "1.0")

        let url = v.base.replacingOccurrences(of: "dists/kiln/", with: "") + e.file
        let path = try await f.download(urls: [server.baseURL + "/missing.deb", url], sha256: e.sha256, size: e.size, what: "kiln-greeting")
        #expect(path == store.path(sha256: e.sha256))
        #expect(FileManager.default.contentsEqual(atPath: path, andPath: root + "/" + e.file))

        // Cached: the server no longer has it, and it still works.
        try FileManager.default.removeItem(atPath: root + "/" + e.file)
        #expect(try await f.download(urls: [url], sha256: e.sha256, size: e.size, what: "kiln-greeting") == path)

        // The wrong hash for the right size: refused, nothing kept.
        let other = try entry(index, "kiln-greeting", version: "0.9")
        let fresh = try newStore()
        let g = AptFetcher(store: fresh, retries: 0)
        let otherURL = v.base.replacingOccurrences(of: "dists/kiln/", with: "") + other.file
        let wrong = String(repeating: "ab", count: 32)
        do {
            _ = try await g.download(urls: [otherURL], sha256: wrong, size: other.size, what: "kiln-greeting 0.9")
            Issue.record("a download with the wrong hash was accepted")
        } catch let err as RepositoryError {
            guard case .hashMismatch(let u, let expected, let got) = err else { Issue.record("unexpected \(err)"); return }
            #expect(u == otherURL && expected == wrong && got == other.sha256)
        }
        // A size the server disagrees with: refused as soon as it is exceeded.
        await #expect(throws: RepositoryError.self) {
            try await g.download(urls: [otherURL], sha256: other.sha256, size: other.size - 1, what: "kiln-greeting 0.9")
        }
        await #expect(throws: RepositoryError.self) {
            try await g.download(urls: [server.baseURL + "/missing.deb"], sha256: other.sha256, size: other.size, what: "x")
        }
        #expect(try storeFiles(fresh).isEmpty)
        try await f.shutdown()
        try await g.shutdown()
    }

    /// A server that cuts the first transfer halfway and serves only ranges afterwards:
    /// the download succeeds only by resuming with Range.
    static let cuttingServer = """
    import http.server, socket, sys
    data = open(sys.argv[1], 'rb').read()
    state = {'cut': False, 'ranges': 0}
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        def log_message(self, *a): pass
        def do_GET(self):
            if self.path == '/stats':
                body = str(state['ranges']).encode()
                self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()
                self.wfile.write(body); return
            rng = self.headers.get('Range')
            if rng:
                start = int(rng.split('=')[1].split('-')[0])
                state['ranges'] += 1
                body = data[start:]
                self.send_response(206)
                self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
                self.send_header('Content-Length', str(len(body)))
                self.end_headers(); self.wfile.write(body); return
            if state['cut']:
                self.send_response(503); self.send_header('Content-Length', '0'); self.end_headers(); return
            state['cut'] = True
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2]); self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
    srv = http.server.HTTPServer(('127.0.0.1', 0), H)
    print('port', srv.server_address[1], flush=True)
    srv.serve_forever()
    """

    @Test(.enabled(if: toolsAndPython, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc, python3"))
    func cutOffDownloadIsResumed() async throws {
        let repo = try TestAptRepo.shared()
        let store = try newStore()
        let f = AptFetcher(store: store, maxConcurrentDownloads: 4, retries: 3, now: { 0 }, retryDelay: 0.05)
        let v = try await f.release(of: source(repo), index: 0)
        let index = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
        let e = try entry(index, "kiln-hello")
        let server = try TestHTTPServer(pythonScript: Self.cuttingServer, arguments: [repo.root + "/" + e.file])
        defer { server.stop() }
        let path = try await f.download(urls: [server.baseURL + "/kiln-hello.deb"], sha256: e.sha256, size: e.size, what: "kiln-hello")
        #expect(FileManager.default.contentsEqual(atPath: path, andPath: repo.root + "/" + e.file))
        let stats = try await f.fetchSmall(server.baseURL + "/stats")
        #expect(stats.map { String(decoding: $0, as: UTF8.self) } == "1")
        try await f.shutdown()
    }

    @Test(.enabled(if: tools, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc"))
    func downloadAllKeepsOrderAndReportsProgress() async throws {
        let repo = try TestAptRepo.shared()
        let store = try newStore()
        let f = AptFetcher(store: store, maxConcurrentDownloads: 2)
        let v = try await f.release(of: source(repo), index: 0)
        let index = try await f.packagesIndex(v, component: "main", architecture: nativeArch())
        let names = ["kiln-hello", "kiln-base-files", "kiln-alt-utils", "kiln-greeting", "kiln-broken"]
        let entries = try names.map { try entry(index, $0) }
        let items = entries.map { (urls: [repo.fileURI + "/" + $0.file], sha256: $0.sha256, size: $0.size, what: $0.file) }
        let seen = ProgressLog()
        let paths = try await f.downloadAll(items, progress: { done, total in seen.add(done, total) })
        #expect(paths == entries.map { store.path(sha256: $0.sha256) })
        let total = entries.reduce(0) { $0 + $1.size }
        #expect(seen.last?.0 == total && seen.last?.1 == total)

        // One bad item fails the lot, naming it.
        var bad = items
        bad[1].sha256 = String(repeating: "0", count: 64)
        do {
            _ = try await AptFetcher(store: try newStore()).downloadAll(bad, progress: nil)
            Issue.record("a bad item was accepted")
        } catch {
            #expect("\(error)".contains("kiln-base-files"))
        }
        try await f.shutdown()
    }

    func nativeArch() -> String {
        (try? TestAptRepo.run("/usr/bin/dpkg", ["--print-architecture"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? "amd64"
    }
}

private final class ProgressLog: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var values: [(Int64, Int64)] = []
    func add(_ done: Int64, _ total: Int64) { lock.lock(); values.append((done, total)); lock.unlock() }
    var last: (Int64, Int64)? { lock.lock(); defer { lock.unlock() }; return values.last }
}
