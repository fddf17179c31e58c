#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Reports blob transfers as they happen. Implementations are called from several
/// tasks at once and must be thread-safe. `id` is the blob's short digest.
public protocol TransferProgress: Sendable {
    /// A transfer began (`verb`: "pulling", "pushing").
    func start(_ id: String, verb: String, total: Int64)
    /// `count` more bytes went through.
    func advance(_ id: String, by count: Int64)
    /// The transfer restarts from `offset` (a resumed or retried transfer).
    func rewind(_ id: String, to offset: Int64)
    /// Done: `outcome` is "done", "exists", "mounted", "cached".
    func finish(_ id: String, outcome: String)
    /// Everything is done; a live display clears its last frame.
    func close()
}

/// Reports nothing (`--quiet`, `--json`, library use).
public struct SilentProgress: TransferProgress {
    public init() {}
    public func start(_ id: String, verb: String, total: Int64) {}
    public func advance(_ id: String, by count: Int64) {}
    public func rewind(_ id: String, to offset: Int64) {}
    public func finish(_ id: String, outcome: String) {}
    public func close() {}
}

/// One plain line on stderr per blob as it finishes: for logs and pipes.
public final class LineProgress: TransferProgress, @unchecked Sendable {
    private let lock = NSLock()
    private var totals: [String: (verb: String, total: Int64)] = [:]
    public init() {}
    public func start(_ id: String, verb: String, total: Int64) {
        lock.lock(); totals[id] = (verb, total); lock.unlock()
    }
    public func advance(_ id: String, by count: Int64) {}
    public func rewind(_ id: String, to offset: Int64) {
        writeStderr("blob \(id): retrying from byte \(offset)\n")
    }
    public func finish(_ id: String, outcome: String) {
        lock.lock(); let t = totals[id]; lock.unlock()
        switch outcome {
        case "done": writeStderr("\(t?.verb ?? "copied") blob \(id) (\(formatBytes(t?.total ?? 0))): done\n")
        case "exists": writeStderr("blob \(id): already in the registry\n")
        default: writeStderr("blob \(id): \(outcome)\n")
        }
    }
    public func close() {}
}

/// A live display on a terminal: one line per active blob, redrawn at most ten times a second.
public final class TerminalProgress: TransferProgress, @unchecked Sendable {
    private struct Row { var verb: String; var total: Int64; var done: Int64; var outcome: String? }
    private let lock = NSLock()
    private var rows: [(String, Row)] = []
    private var drawnLines = 0
    private var lastDraw = Date.distantPast

    public init() {}

    public func start(_ id: String, verb: String, total: Int64) {
        update(force: true) { rows in
            if let i = rows.firstIndex(where: { $0.0 == id }) { rows[i].1 = Row(verb: verb, total: total, done: 0) }
            else { rows.append((id, Row(verb: verb, total: total, done: 0))) }
        }
    }
    public func advance(_ id: String, by count: Int64) {
        update(force: false) { rows in if let i = rows.firstIndex(where: { $0.0 == id }) { rows[i].1.done += count } }
    }
    public func rewind(_ id: String, to offset: Int64) {
        update(force: true) { rows in if let i = rows.firstIndex(where: { $0.0 == id }) { rows[i].1.done = offset } }
    }
    public func finish(_ id: String, outcome: String) {
        update(force: true) { rows in
            if let i = rows.firstIndex(where: { $0.0 == id }) { rows[i].1.outcome = outcome; rows[i].1.done = rows[i].1.total }
            else { rows.append((id, Row(verb: "", total: 0, done: 0, outcome: outcome))) }
        }
    }
    public func close() { update(force: true) { _ in } }

    private func update(force: Bool, _ f: (inout [(String, Row)]) -> Void) {
        lock.lock(); defer { lock.unlock() }
        f(&rows)
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        var out = drawnLines > 0 ? "\u{1B}[\(drawnLines)A" : ""
        for (id, r) in rows {
            let state: String
            if let o = r.outcome { state = o == "done" ? "done (\(formatBytes(r.total)))" : o }
            else {
                let pct = r.total > 0 ? Int(Double(r.done) * 100 / Double(r.total)) : 0
                let width = 24, filled = r.total > 0 ? Int(Double(width) * Double(r.done) / Double(r.total)) : 0
                state = "[" + String(repeating: "=", count: min(width, filled)) + String(repeating: " ", count: max(0, width - filled)) + "] "
                    + "\(pct)% \(formatBytes(r.done))/\(formatBytes(r.total))"
            }
            out += "\u{1B}[2K\(r.verb.isEmpty ? "blob" : r.verb) \(id) \(state)\n"
        }
        drawnLines = rows.count
        writeStderr(out)
    }
}

func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"]
    var v = Double(n), u = 0
    while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

/// The progress display for a command: live on a terminal, lines otherwise, none when quiet.
public func makeProgress(quiet: Bool) -> any TransferProgress {
    if quiet { return SilentProgress() }
    return isatty(2) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb" ? TerminalProgress() : LineProgress()
}

/// `sha256:0123456789ab…` shortened for display.
func shortDigest(_ d: String) -> String {
    guard let c = d.firstIndex(of: ":") else { return d }
    return String(d[d.index(after: c)...].prefix(12))
}
