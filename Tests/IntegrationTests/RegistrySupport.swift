import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A port nobody listens on right now, from the kernel.
func freePort() throws -> Int {
    let (fd, port) = bindLoopback(reuseAddress: false)
    close(fd)
    return port
}

/// A TCP socket bound to 127.0.0.1 on a port the kernel picks.
func bindLoopback(reuseAddress: Bool) -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    if reuseAddress {
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
    }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

func waitForPort(_ port: Int, timeout: Double = 15) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        close(fd)
        if r == 0 { return }
        usleep(50_000)
    }
    throw CommandFailed(command: "wait for 127.0.0.1:\(port)", result: RunResult(status: 1, stdout: "", stderr: "timed out"))
}

/// The CNCF distribution registry (Debian's docker-registry) on 127.0.0.1 and a free
/// port, with a generated config; stopped when the value goes away.
final class TestRegistry {
    let dir: TempDir
    let port: Int
    let process: Process
    var host: String { "127.0.0.1:\(port)" }

    /// `auth` and `tls` are YAML fragments for the config's `auth:` and `http.tls:`.
    init(auth: String? = nil, tls: (cert: String, key: String)? = nil) throws {
        dir = try TempDir()
        port = try freePort()
        var config = """
            version: 0.1
            log: {level: error}
            storage:
              filesystem: {rootdirectory: \(dir.path)/data}
              delete: {enabled: true}
            http:
              addr: 127.0.0.1:\(port)

            """
        if let tls { config += "  tls: {certificate: \(tls.cert), key: \(tls.key)}\n" }
        if let auth { config += "auth:\n" + auth + "\n" }
        try dir.write("config.yml", config)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/docker-registry")
        process.arguments = ["serve", dir.path + "/config.yml"]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        FileManager.default.createFile(atPath: dir.path + "/log", contents: nil)
        process.standardError = FileHandle(forWritingAtPath: dir.path + "/log")
        try process.run()
        do { try waitForPort(port) } catch { stop(); throw error }
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    deinit { stop() }
}

/// A raw HTTP/1.1 request as a tiny server reads it.
struct RawRequest {
    var method: String
    var target: String
    var headers: [(String, String)]
    var body: [UInt8]
    var head: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }
    var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }
    var queryItems: [URLQueryItem] { URLComponents(string: "http://x" + target)?.queryItems ?? [] }
}

/// A minimal threaded HTTP server on 127.0.0.1 (one connection at a time per thread,
/// `Connection: close`): the token server and the fault-injecting proxy of the tests.
final class MiniServer: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private var running = true
    private let handler: @Sendable (RawRequest, Int32) -> Void

    init(handler: @escaping @Sendable (RawRequest, Int32) -> Void) throws {
        self.handler = handler
        (fd, port) = bindLoopback(reuseAddress: true)
        listen(fd, 64)
        let t = Thread { [unowned self] in self.acceptLoop() }
        t.start()
    }

    private func acceptLoop() {
        while running {
            let c = accept(fd, nil, nil)
            if c < 0 { if running { continue } else { return } }
            let handler = self.handler
            Thread {
                if let req = MiniServer.readRequest(c) { handler(req, c) }
                close(c)
            }.start()
        }
    }

    func stop() {
        running = false
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    deinit { if running { stop() } }

    static func readRequest(_ c: Int32) -> RawRequest? {
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        while headEnd == nil {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return nil }
            buf += chunk[..<n]
            if buf.first == 0x16 { return nil }  // a TLS ClientHello: not for this plain server
            if let r = find(buf, Array("\r\n\r\n".utf8)) { headEnd = r }
        }
        let head = Array(buf[..<headEnd!])
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ")
        guard first.count >= 2 else { return nil }
        var headers: [(String, String)] = []
        for l in lines.dropFirst() {
            guard let c = l.firstIndex(of: ":") else { continue }
            headers.append((String(l[..<c]), l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)))
        }
        var body = Array(buf[(headEnd! + 4)...])
        let length = headers.first { $0.0.lowercased() == "content-length" }.flatMap { Int($0.1) } ?? 0
        while body.count < length {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            body += chunk[..<n]
        }
        return RawRequest(method: String(first[0]), target: String(first[1]), headers: headers, body: body, head: head)
    }

    static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    static func send(_ c: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            off += n
        }
    }

    static func respond(_ c: Int32, status: Int, reason: String = "", headers: [String: String] = [:], body: [UInt8] = []) {
        var head = "HTTP/1.1 \(status) \(reason.isEmpty ? "X" : reason)\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        send(c, Array(head.utf8) + body)
    }

    /// Closes with a TCP reset rather than a clean FIN.
    static func reset(_ c: Int32) {
        var l = linger(l_onoff: 1, l_linger: 0)
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
    }
}

/// Forwards a request to 127.0.0.1:`port` and returns the raw response (head and body).
func forward(_ req: RawRequest, to port: Int) -> (head: [UInt8], body: [UInt8])? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard r == 0 else { return nil }
    // Rewrite the connection header so the upstream closes after one response.
    var lines = String(decoding: req.head, as: UTF8.self).components(separatedBy: "\r\n")
    lines.removeAll { $0.lowercased().hasPrefix("connection:") }
    lines.append("Connection: close")
    MiniServer.send(fd, Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8) + req.body)
    var all: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        all += chunk[..<n]
    }
    guard let end = MiniServer.find(all, Array("\r\n\r\n".utf8)) else { return nil }
    return (Array(all[..<(end + 4)]), Array(all[(end + 4)...]))
}

/// What the fault-injecting proxy does to a matching request.
enum Fault: Sendable {
    /// Sends the head and `bytes` of the body, then resets the connection.
    case resetAfter(bytes: Int)
    case status(Int)
    /// 429 with `Retry-After: seconds`.
    case tooManyRequests(retryAfter: Int)
    /// Waits before answering.
    case delay(seconds: Double)
    /// Flips one byte in the middle of the body.
    case flipByte
    /// Reads the whole request and resets the connection without passing it on: an
    /// upload cut off before the registry saw any of its bytes.
    case resetWithoutForwarding
    /// Passes the request on without its `Range` header: a server that ignores ranges
    /// and answers 200 with the whole body.
    case stripRange
}

/// A proxy in front of a registry that applies faults to the first requests matching
/// a method and path fragment, and records every request it saw.
final class FaultProxy: @unchecked Sendable {
    struct Rule { var method: String; var pathContains: String; var fault: Fault; var remaining: Int; var skip = 0 }
    /// Every request with a body as it reached the proxy: its `Content-Range`, its body
    /// size and whether it was passed on to the registry.
    struct BodyRecord { var method: String; var contentRange: String?; var bytes: Int; var forwarded: Bool }
    private var bodyLog: [BodyRecord] = []
    private let lock = NSLock()
    private var rules: [Rule] = []
    private(set) var log: [(method: String, target: String, range: String?)] = []
    private var server: MiniServer!
    var port: Int { server.port }
    var host: String { "127.0.0.1:\(port)" }

    init(upstream: Int) throws {
        server = try MiniServer { [unowned self] req, c in self.handle(req, c, upstream: upstream) }
    }

    /// Applies `fault` to `times` matching requests, after letting the first `skip` through.
    func add(_ method: String, _ pathContains: String, _ fault: Fault, times: Int = 1, skip: Int = 0) {
        lock.lock(); rules.append(Rule(method: method, pathContains: pathContains, fault: fault, remaining: times, skip: skip)); lock.unlock()
    }

    var bodies: [BodyRecord] { lock.lock(); defer { lock.unlock() }; return bodyLog }

    var requests: [(method: String, target: String, range: String?)] { lock.lock(); defer { lock.unlock() }; return log }

    private func handle(_ req: RawRequest, _ c: Int32, upstream: Int) {
        lock.lock()
        log.append((req.method, req.target, req.header("Range")))
        var fault: Fault?
        if let i = rules.firstIndex(where: { $0.remaining > 0 && $0.method == req.method && req.path.contains($0.pathContains) }) {
            if rules[i].skip > 0 {
                rules[i].skip -= 1
            } else {
                rules[i].remaining -= 1
                fault = rules[i].fault
            }
        }
        if !req.body.isEmpty {
            var cut = false
            if case .resetWithoutForwarding? = fault { cut = true }
            bodyLog.append(BodyRecord(method: req.method, contentRange: req.header("Content-Range"), bytes: req.body.count, forwarded: !cut))
        }
        lock.unlock()
        switch fault {
        case .status(let s)?:
            MiniServer.respond(c, status: s, body: Array(#"{"errors":[{"code":"UNKNOWN","message":"injected"}]}"#.utf8))
            return
        case .tooManyRequests(let after)?:
            MiniServer.respond(c, status: 429, headers: ["Retry-After": "\(after)"])
            return
        case .delay(let s)?:
            Thread.sleep(forTimeInterval: s)
        case .resetWithoutForwarding?:
            MiniServer.reset(c)
            return
        default: break
        }
        var req = req
        if case .stripRange? = fault {
            let lines = String(decoding: req.head, as: UTF8.self).components(separatedBy: "\r\n")
            req.head = Array(lines.filter { !$0.lowercased().hasPrefix("range:") }.joined(separator: "\r\n").utf8)
        }
        guard let (head, body) = forward(req, to: upstream) else { MiniServer.reset(c); return }
        switch fault {
        case .resetAfter(let n)?:
            MiniServer.send(c, head + Array(body.prefix(n)))
            Thread.sleep(forTimeInterval: 0.05)
            MiniServer.reset(c)
        case .flipByte?:
            var b = body
            if !b.isEmpty { b[b.count / 2] ^= 0x01 }
            MiniServer.send(c, head + b)
        default:
            MiniServer.send(c, head + body)
        }
    }

    func stop() { server.stop() }
}

/// A spec of plain files (no closure, so it builds fast); `bigBytes` adds a file of
/// random (incompressible) bytes to make the layer blob about that size.
func writeFilesSpec(in dir: TempDir, name: String = "kiln-test/files", bigBytes: Int = 0,
                    architecture: String? = nil, marker: String = "one") throws -> String {
    try dir.write("files/etc/marker", marker + "\n")
    if bigBytes > 0 {
        var g = SystemRandomNumberGenerator()
        let data = Data((0..<bigBytes).map { _ in UInt8.random(in: 0...255, using: &g) })
        try data.write(to: URL(fileURLWithPath: dir.path + "/files/big.bin"))
    }
    try dir.write("image.yaml", """
        name: \(name)
        tag: v1
        \(architecture.map { "architecture: \($0)" } ?? "")
        contents:
          - files
        config:
          Cmd: ["/bin/true"]
        """)
    return dir.path + "/image.yaml"
}

/// `skopeo inspect` of a registry image, as JSON (plain HTTP allowed for 127.0.0.1).
func skopeoInspect(_ ref: String, raw: Bool = false, extra: [String] = []) throws -> String {
    try run("skopeo", ["inspect", "--tls-verify=false"] + extra + (raw ? ["--raw"] : []) + [ref]).stdout
}

func sha256Hex(_ data: [UInt8]) throws -> String {
    let dir = try TempDir()
    try Data(data).write(to: URL(fileURLWithPath: dir.path + "/x"))
    return String(try run("sha256sum", [dir.path + "/x"]).stdout.prefix(64))
}

/// An isolated environment for a kiln run: its own TMPDIR (checked for leftovers),
/// Docker config and auth files, and short retry delays.
final class KilnEnv {
    let dir: TempDir
    init() throws {
        dir = try TempDir()
        try FileManager.default.createDirectory(atPath: dir.path + "/tmp", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path + "/docker", withIntermediateDirectories: true)
    }
    var tmp: String { dir.path + "/tmp" }
    var vars: [String: String] {
        ["TMPDIR": tmp, "DOCKER_CONFIG": dir.path + "/docker", "REGISTRY_AUTH_FILE": "", "XDG_RUNTIME_DIR": "",
         // Push compresses uncompressed layers into the default cache: keep it here, never in ~/.cache.
         "XDG_CACHE_HOME": dir.path + "/cache",
         "KILN_REGISTRY_RETRY_DELAY": "0.05"]
    }
    @discardableResult
    func kiln(_ args: [String], extra: [String: String] = [:], stdin: String? = nil, check: Bool = true) throws -> RunResult {
        var file: String?
        if let stdin {
            file = dir.path + "/stdin"
            try stdin.write(toFile: file!, atomically: true, encoding: .utf8)
        }
        return try run(kilnPath, args, env: vars.merging(extra) { $1 }, stdinFile: file, check: check)
    }
    /// Files left in TMPDIR by kiln runs.
    var leftovers: [String] { (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? [] }
}
