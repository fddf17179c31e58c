#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import Synchronization

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
public final class LineProgress: TransferProgress, Sendable {
    private let totals = Mutex<[String: (verb: String, total: Int64)]>([:])
    public init() {}
    public func start(_ id: String, verb: String, total: Int64) {
        ProgressBoard.shared.phase(verb)
        totals.withLock { $0[id] = (verb, total) }
    }
    public func advance(_ id: String, by count: Int64) {}
    public func rewind(_ id: String, to offset: Int64) {
        writeStderr("blob \(id): retrying from byte \(offset)\n")
    }
    public func finish(_ id: String, outcome: String) {
        let t = totals.withLock { $0[id] }
        switch outcome {
        case "done": writeStderr("\(t?.verb ?? "copied") blob \(id) (\(formatBytes(t?.total ?? 0))): done\n")
        case "exists": writeStderr("blob \(id): already in the registry\n")
        default: writeStderr("blob \(id): \(outcome)\n")
        }
    }
    public func close() {}
}

/// A live display on a terminal: one line per active blob, redrawn at most ten times a
/// second, below the messages and beside the build's progress (`TerminalScreen`).
public final class TerminalProgress: TransferProgress, Sendable {
    private struct Row { var verb: String; var total: Int64; var done: Int64; var outcome: String? }
    private let rows = Mutex<[(String, Row)]>([])
    private let screen: TerminalScreen

    private let section: String

    public init(screen: TerminalScreen = .shared) {
        self.screen = screen
        section = "transfers-\(Self.serial.wrappingAdd(1, ordering: .relaxed).newValue)"
    }
    private static let serial = Atomic<Int>(0)

    public func start(_ id: String, verb: String, total: Int64) {
        ProgressBoard.shared.phase(verb)
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
    /// The last frame stays on the screen (what was transferred), as lines of output;
    /// the rows are forgotten, so a display used for several pushes (one per platform
    /// of an index) does not print the earlier ones' blobs again.
    public func close() {
        let lines = rows.withLock { rows in
            defer { rows.removeAll() }
            return Self.lines(rows)
        }
        screen.remove(section)
        if !lines.isEmpty { screen.write(lines.joined(separator: "\n") + "\n") }
    }

    private func update(force: Bool, _ f: (inout [(String, Row)]) -> Void) {
        let lines = rows.withLock { rows in
            f(&rows)
            return Self.lines(rows)
        }
        screen.set(section, lines: lines, force: force)
    }

    private static func lines(_ rows: [(String, Row)]) -> [String] {
        rows.map { id, r in
            let state: String
            if let o = r.outcome { state = o == "done" ? "done (\(formatBytes(r.total)))" : o }
            else {
                let pct = r.total > 0 ? Int(Double(r.done) * 100 / Double(r.total)) : 0
                let width = 24, filled = r.total > 0 ? Int(Double(width) * Double(r.done) / Double(r.total)) : 0
                state = "[" + String(repeating: "=", count: min(width, filled)) + String(repeating: " ", count: max(0, width - filled)) + "] "
                    + "\(pct)% \(formatBytes(r.done))/\(formatBytes(r.total))"
            }
            return "\(r.verb.isEmpty ? "blob" : r.verb) \(id) \(state)"
        }
    }
}

func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"]
    var v = Double(n), u = 0
    while v >= 1024, u < units.count - 1 { v /= 1024; u += 1 }
    return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
}

/// A message on stderr, above any live progress lines.
func writeStderr(_ s: String) {
    TerminalScreen.shared.write(s)
}

/// The progress display for a command, as the command line chose it
/// (`ProgressBoard.shared.mode`): live on a terminal, lines otherwise, none with
/// `--quiet` (or when `quiet`: `--json`, whose stdout is the result alone).
public func makeProgress(quiet: Bool) -> any TransferProgress {
    if quiet { return SilentProgress() }
    switch ProgressBoard.shared.mode {
    case .quiet: return SilentProgress()
    case .lines: return LineProgress()
    case .live: return TerminalProgress()
    case .unset: return TerminalScreen.stderrIsTerminal ? TerminalProgress() : LineProgress()
    }
}

/// `sha256:0123456789ab…` shortened for display.
func shortDigest(_ d: String) -> String {
    guard let c = d.firstIndex(of: ":") else { return d }
    return String(d[d.index(after: c)...].prefix(12))
}
