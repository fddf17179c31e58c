// Test helper: the signed apt repository of scripts/make-test-apt-repo, and loopback HTTP
// servers for it. Self-contained (Foundation only) so other test targets can copy it.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A repository made by `scripts/make-test-apt-repo`.
struct TestAptRepo: Sendable {
    /// The OUTDIR given to the script.
    let dir: String
    /// The repository's root (`dir/debian`): `dists/kiln/…`, `pool/…`.
    var root: String { dir + "/debian" }
    /// `file:` URI of the repository, as a sources entry would give it.
    var fileURI: String { "file:" + root }
    /// The signing key, binary and armored; and a key that signed nothing.
    var keyring: String { dir + "/keyring.gpg" }
    var armoredKeyring: String { dir + "/keyring.asc" }
    var otherKeyring: String { dir + "/keyring2.gpg" }
    /// The suite and component the script makes.
    static let suite = "kiln"
    static let component = "main"

    /// Whether the tools the script needs are installed (tests needing a repository
    /// are skipped visibly otherwise).
    static let canBuild: Bool = ["dpkg-deb", "dpkg-scanpackages", "gpg", "gpgv", "gcc", "xz", "gzip"]
        .allSatisfy { findExecutable($0) != nil }
    static let hasPython: Bool = findExecutable("python3") != nil

    /// The repository every test shares, made once per test run (Swift runs the
    /// initializer of a static `let` once, thread-safely).
    static func shared() throws -> TestAptRepo { try sharedResult.get() }
    private static let sharedResult: Result<TestAptRepo, any Error> = Result { try make() }

    /// A fresh repository; `environment` adds variables the script reads
    /// (`VALID_UNTIL`, `SOURCE_DATE_EPOCH`).
    static func make(environment: [String: String] = [:]) throws -> TestAptRepo {
        let dir = try makeTempDirectory("kiln-test-apt")
        let r = try run(scriptPath, [dir], environment: environment)
        guard r.status == 0 else {
            throw TestToolError("make-test-apt-repo failed (\(r.status)): \(r.stderr)")
        }
        return TestAptRepo(dir: dir)
    }

    /// `scripts/make-test-apt-repo`, found from this file's place in the checkout.
    static var scriptPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/make-test-apt-repo").path
    }

    // MARK: Small tools

    /// A directory under $TMPDIR, removed when the test process exits.
    static func makeTempDirectory(_ prefix: String) throws -> String {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array("\(tmp)/\(prefix).XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestToolError("mkdtemp in \(tmp) failed")
        }
        let dir = String(cString: p)
        TempDirectories.shared.add(dir)
        return dir
    }

    static func run(_ executable: String, _ args: [String], environment: [String: String] = [:]) throws
        -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        // Output goes to files, not pipes: a pipe's write end inherited by a process
        // spawned concurrently by another test (a server) would keep EOF from coming.
        let scratch = try makeTempDirectory("kiln-test-run")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        FileManager.default.createFile(atPath: scratch + "/out", contents: nil)
        FileManager.default.createFile(atPath: scratch + "/err", contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/out"))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: scratch + "/err"))
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        try? out.close()
        try? err.close()
        let o = (try? String(contentsOfFile: scratch + "/out", encoding: .utf8)) ?? ""
        let e = (try? String(contentsOfFile: scratch + "/err", encoding: .utf8)) ?? ""
        return (p.terminationStatus, o, e)
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}

/// A loopback HTTP server run by python3: `python3 -m http.server` over a directory, or
/// any script that prints `port N` as its first line. Stop it with `stop()`.
final class TestHTTPServer: @unchecked Sendable {  // immutable after init; Process is thread-safe to terminate
    let port: Int
    private let process: Process

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Serves `directory` (files only, no Range support) on 127.0.0.1 and a free port.
    convenience init(directory: String) throws {
        try self.init(arguments: ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "0"])
    }

    /// Runs `python3 -u -c script args…`; the script must bind 127.0.0.1 and print
    /// `port N` first.
    convenience init(pythonScript: String, arguments: [String] = []) throws {
        try self.init(arguments: ["-u", "-c", pythonScript] + arguments)
    }

    private init(arguments: [String]) throws {
        guard let python = TestAptRepo.findExecutable("python3") else { throw TestToolError("python3 not found") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = arguments
        let portFile = try TestAptRepo.makeTempDirectory("kiln-test-server") + "/port"
        FileManager.default.createFile(atPath: portFile, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: portFile))
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice  // request logs
        p.standardInput = FileHandle.nullDevice
        try p.run()
        try? out.close()
        // The first line names the port: http.server says "Serving HTTP on 127.0.0.1 port N (…)".
        var line = ""
        for _ in 0..<200 where !line.contains("\n") && p.isRunning {
            usleep(50_000)
            line = (try? String(contentsOfFile: portFile, encoding: .utf8)) ?? ""
        }
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let i = words.firstIndex(of: "port"), i + 1 < words.count, let port = Int(words[i + 1]) else {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw TestToolError("the python server did not report its port: \(line)")
        }
        self.port = port
        self.process = p
    }

    /// Kills the server. SIGKILL, not `terminate()`'s SIGTERM: a child started from the
    /// test process inherits its blocked signal mask, where SIGTERM stays pending forever.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

struct TestToolError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Temporary directories to remove at exit.
private final class TempDirectories: @unchecked Sendable {  // guarded by `lock`
    static let shared: TempDirectories = {
        let t = TempDirectories()
        atexit { TempDirectories.shared.removeAll() }
        return t
    }()
    private let lock = NSLock()
    private var dirs: [String] = []

    func add(_ d: String) { lock.lock(); dirs.append(d); lock.unlock() }

    func removeAll() {
        lock.lock(); let all = dirs; dirs = []; lock.unlock()
        for d in all { try? FileManager.default.removeItem(atPath: d) }
    }
}
