import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// How long the soak runs, from `KILN_SOAK_SECONDS` (scripts/soak sets it); unset, the
/// soak is skipped: it is minutes long and not part of the default run.
let soakSeconds: Double? = ProcessInfo.processInfo.environment["KILN_SOAK_SECONDS"].flatMap(Double.init)

/// Several pushes, pulls and cached builds at once, for minutes, through a proxy that
/// breaks a random share of the requests (resets mid-body, 5xx, 429, slow answers,
/// flipped bytes). Every run must end either with an image that checks out (digests
/// verified by skopeo or against the registry) or with exit status 1 and exactly one
/// `kiln: error:` line; layouts and the layer cache hold only blobs whose bytes match
/// their digests; nothing is left in TMPDIR and no kiln process outlives its run.
@Suite(.serialized) struct SoakTests {
    @Test(.enabled(if: soakSeconds != nil, "soak: set KILN_SOAK_SECONDS (scripts/soak) to run it"),
          .timeLimit(.minutes(60)))
    func concurrentPushesAndPullsThroughRandomFaults() throws {
        let seconds = soakSeconds ?? 0
        let workers = Int(ProcessInfo.processInfo.environment["KILN_SOAK_WORKERS"] ?? "") ?? 4
        let reg = try TestRegistry()
        defer { reg.stop() }
        let work = try TempDir()
        let setupEnv = try KilnEnv()

        // Two source images of ~1 MiB random layers, in the registry and as local archives.
        var sources: [(repo: String, tag: String, archive: String, digest: String)] = []
        for k in 0..<2 {
            let dir = try TempDir()
            let spec = try writeFilesSpec(in: dir, name: "soak/src\(k)", bigBytes: 1_000_000 + k * 300_000, marker: "base\(k)")
            try setupEnv.kiln(["build", spec, "--no-cache", "--push", "docker://\(reg.host)/soak/base\(k):v\(k)"])
            let archive = work.path + "/base\(k).tar"
            try setupEnv.kiln(["pull", "docker://\(reg.host)/soak/base\(k):v\(k)", "-o", archive])
            let digest = try inspectedDigest("docker://\(reg.host)/soak/base\(k):v\(k)")
            sources.append(("soak/base\(k)", "v\(k)", archive, digest))
        }
        let bases = sources
        let registry = reg.host
        let specDir = try TempDir()
        let buildSpec = try writeFilesSpec(in: specDir, name: "soak/built", bigBytes: 800_000, marker: "built")
        let cache = work.path + "/cache"

        let proxy = try RandomFaultProxy(upstream: reg.port, probability: 0.2)
        defer { proxy.stop() }
        let tally = SoakTally()
        let deadline = Date().addingTimeInterval(seconds)
        let start = Date()

        DispatchQueue.concurrentPerform(iterations: workers) { w in
            var rng = SystemRandomNumberGenerator()
            guard let env = try? KilnEnv(), let mine = try? TempDir() else {
                tally.problem("worker \(w): cannot make its directories"); return
            }
            let layout = mine.path + "/layout"
            var n = 0
            while Date() < deadline {
                n += 1
                let base = bases.randomElement(using: &rng)!
                let op = ["pull", "push", "build"].randomElement(using: &rng)!
                let what = "worker \(w) run \(n) (\(op))"
                do {
                    let r: RunResult
                    switch op {
                    case "pull":
                        r = try env.kiln(["pull", "docker://\(proxy.host)/\(base.repo):\(base.tag)", "-o", layout, "--format", "oci"], check: false)
                        if r.status == 0 {
                            let got = try inspectedDigest("oci:\(layout):\(base.tag)")
                            if got != base.digest { tally.problem("\(what): pulled \(got), the registry has \(base.digest)") }
                        }
                        for p in try corruptBlobs(in: layout) { tally.problem("\(what): corrupt blob in the layout: \(p)") }
                    case "push":
                        let target = "soak/pushed\(w):\(n)"
                        r = try env.kiln(["push", "docker-archive:\(base.archive)", "docker://\(proxy.host)/\(target)", "--json"], check: false)
                        if r.status == 0 { try verifyInRegistry(registry, target, reported: r.stdout, what: what, tally: tally) }
                    default:
                        let target = "soak/built\(w):\(n)"
                        r = try env.kiln(["build", buildSpec, "--cache-dir", cache, "--push", "docker://\(proxy.host)/\(target)", "--json"], check: false)
                        if r.status == 0 { try verifyInRegistry(registry, target, reported: r.stdout, what: what, tally: tally) }
                        for p in try corruptBlobs(in: cache) { tally.problem("\(what): corrupt blob in the cache: \(p)") }
                    }
                    let errors = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }
                    if r.status == 0 {
                        tally.outcome(op, ok: true)
                    } else {
                        tally.outcome(op, ok: false, error: errors.first.map(String.init))
                        if r.status != 1 || errors.count != 1 {
                            tally.problem("\(what): exit \(r.status) with \(errors.count) error lines: \(r.stderr.suffix(2000))")
                        }
                    }
                    let left = env.leftovers
                    if !left.isEmpty { tally.problem("\(what): left in TMPDIR: \(left)") }
                } catch {
                    tally.problem("\(what): \(error)")
                }
            }
            let strays = kilnProcesses(mentioning: mine.path) + kilnProcesses(mentioning: env.dir.path)
            if !strays.isEmpty { tally.problem("worker \(w): kiln processes still running: \(strays)") }
        }
        let elapsed = Date().timeIntervalSince(start)

        // The cache must still serve a build, and hold nothing half-written.
        try setupEnv.kiln(["build", buildSpec, "--cache-dir", cache, "--push", "docker://\(reg.host)/soak/final:1"])
        let cacheTmp = (try? FileManager.default.contentsOfDirectory(atPath: cache + "/tmp")) ?? []
        if !cacheTmp.isEmpty { tally.problem("cache tmp/ not empty: \(cacheTmp)") }

        let report = tally.report(elapsed: elapsed, workers: workers, faults: proxy.counts, requests: proxy.requestCount)
        print(report)
        let problems = tally.problems
        #expect(problems.isEmpty, "\(problems.count) problems, the first: \(problems.prefix(10).joined(separator: "\n"))")
        #expect(tally.total > 0)
    }
}

/// The manifest digest skopeo reports for `ref` (plain HTTP allowed for 127.0.0.1).
private func inspectedDigest(_ ref: String) throws -> String {
    let json = try parseJSON(try skopeoInspect(ref)) as! [String: Any]
    return json["Digest"] as! String
}

/// A pushed image, read back from the registry itself (not through the proxy): the
/// manifest digest is the one kiln reported, and skopeo copies it, checking every blob.
private func verifyInRegistry(_ registry: String, _ target: String, reported: String, what: String, tally: SoakTally) throws {
    let json = try parseJSON(reported) as? [String: Any]
    let digest = try inspectedDigest("docker://\(registry)/\(target)")
    if let d = json?["digest"] as? String, d != digest {
        tally.problem("\(what): kiln reported \(d), the registry has \(digest)")
    }
    let copy = try TempDir()
    let r = try run("skopeo", ["copy", "--src-tls-verify=false", "--quiet", "docker://\(registry)/\(target)", "oci:\(copy.path)/x:1"], check: false)
    if r.status != 0 { tally.problem("\(what): skopeo cannot copy the pushed image: \(r.stderr)") }
}

/// Files under `root`/blobs/sha256 (and, for the cache, its layer entries' blobs) whose
/// bytes do not hash to their names.
private func corruptBlobs(in root: String) throws -> [String] {
    let dir = root + "/blobs/sha256"
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
    var bad: [String] = []
    for name in names {
        let r = try run("sha256sum", [dir + "/" + name], check: false)
        // A blob may be removed by a concurrent prune or rename between list and read.
        if r.status != 0 { continue }
        if !r.stdout.hasPrefix(name) { bad.append(name) }
    }
    return bad
}

/// kiln processes whose command line mentions `path` (this soak's directories).
private func kilnProcesses(mentioning path: String) -> [String] {
    let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return pids.filter { Int($0) != nil }.compactMap { pid in
        guard let raw = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        let cmd = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
        return cmd.contains(kilnPath) && cmd.contains(path) ? "\(pid): \(cmd)" : nil
    }
}

/// Outcomes, error lines and problems, from every worker.
final class SoakTally: @unchecked Sendable {
    private let lock = NSLock()
    private var ok: [String: Int] = [:]
    private var failed: [String: Int] = [:]
    private var errors: [String: Int] = [:]
    private var found: [String] = []

    func outcome(_ op: String, ok success: Bool, error: String? = nil) {
        lock.lock(); defer { lock.unlock() }
        if success { ok[op, default: 0] += 1 } else { failed[op, default: 0] += 1 }
        if let error { errors[Self.kind(of: error), default: 0] += 1 }
    }

    func problem(_ p: String) { lock.lock(); found.append(p); lock.unlock() }
    var problems: [String] { lock.lock(); defer { lock.unlock() }; return found }
    var total: Int { lock.lock(); defer { lock.unlock() }; return ok.values.reduce(0, +) + failed.values.reduce(0, +) }

    /// An error line without its digests, ports and numbers, to group alike errors.
    static func kind(of line: String) -> String {
        var s = line.replacingOccurrences(of: #"sha256:[0-9a-f]{64}"#, with: "sha256:…", options: .regularExpression)
        s = s.replacingOccurrences(of: #"[0-9]+"#, with: "N", options: .regularExpression)
        return String(s.prefix(160))
    }

    func report(elapsed: Double, workers: Int, faults: [String: Int], requests: Int) -> String {
        lock.lock(); defer { lock.unlock() }
        var out = "SOAK: \(Int(elapsed))s, \(workers) workers, \(ok.values.reduce(0, +) + failed.values.reduce(0, +)) runs, \(requests) requests, \(faults.values.reduce(0, +)) faults\n"
        for op in ["pull", "push", "build"] {
            out += "SOAK: \(op): \(ok[op] ?? 0) verified, \(failed[op] ?? 0) clean errors\n"
        }
        for (k, v) in faults.sorted(by: { $0.key < $1.key }) { out += "SOAK: fault \(k): \(v)\n" }
        for (k, v) in errors.sorted(by: { $0.value > $1.value }) { out += "SOAK: error ×\(v): \(k)\n" }
        out += "SOAK: problems: \(found.count)"
        return out
    }
}

/// A proxy in front of the registry that breaks each request with `probability`, with a
/// fault picked at random, and counts them.
final class RandomFaultProxy: @unchecked Sendable {
    private let lock = NSLock()
    private var tally: [String: Int] = [:]
    private var seen = 0
    private var server: MiniServer!
    var host: String { "127.0.0.1:\(server.port)" }

    init(upstream: Int, probability: Double) throws {
        server = try MiniServer { [unowned self] req, c in self.handle(req, c, upstream: upstream, probability: probability) }
    }

    var counts: [String: Int] { lock.lock(); defer { lock.unlock() }; return tally }
    var requestCount: Int { lock.lock(); defer { lock.unlock() }; return seen }

    private func handle(_ req: RawRequest, _ c: Int32, upstream: Int, probability: Double) {
        var rng = SystemRandomNumberGenerator()
        let fault = Double.random(in: 0..<1, using: &rng) < probability
            ? ["reset-before", "reset-mid-body", "500", "502", "503", "429", "slow", "flip-byte"].randomElement(using: &rng)!
            : nil
        lock.lock()
        seen += 1
        if let fault { tally[fault, default: 0] += 1 }
        lock.unlock()
        switch fault {
        case "reset-before"?:
            MiniServer.reset(c); return
        case "500"?, "502"?, "503"?:
            MiniServer.respond(c, status: Int(fault!)!, body: Array(#"{"errors":[{"code":"UNKNOWN","message":"injected"}]}"#.utf8))
            return
        case "429"?:
            MiniServer.respond(c, status: 429, headers: ["Retry-After": "1"]); return
        case "slow"?:
            Thread.sleep(forTimeInterval: Double.random(in: 0.5...2.5, using: &rng))
        default: break
        }
        guard let (head, body) = forward(req, to: upstream) else { MiniServer.reset(c); return }
        switch fault {
        case "reset-mid-body"?:
            MiniServer.send(c, head + Array(body.prefix(Int.random(in: 0...max(0, body.count), using: &rng))))
            Thread.sleep(forTimeInterval: 0.05)
            MiniServer.reset(c)
        case "flip-byte"?:
            var b = body
            if !b.isEmpty { b[Int.random(in: 0..<b.count, using: &rng)] ^= 0x01 }
            MiniServer.send(c, head + b)
        default:
            MiniServer.send(c, head + body)
        }
    }

    func stop() { server.stop() }
}
