import Foundation
import KilnArchive
import Synchronization

/// The live display of `kiln build` on a terminal: a thread that draws the
/// process's `ProgressBoard` on one line eight times a second, below the messages
/// (`TerminalScreen`): the phase (resolving, resolving packages, downloading packages,
/// planning, layer N, writing), its figures, the cache hits and the time so far.
final class BuildProgress: Sendable {
    /// Whether it still draws; the last redraw and the removal happen under this lock,
    /// so no frame is drawn after `stop()`.
    private let running = Mutex(true)
    private let board: ProgressBoard
    private let screen: TerminalScreen
    static let section = "build"

    private init(board: ProgressBoard, screen: TerminalScreen) {
        self.board = board
        self.screen = screen
    }

    /// Starts drawing when the board is live (stderr is a terminal, no `--quiet`) and
    /// `json` is false; nil otherwise.
    static func start(json: Bool, board: ProgressBoard = .shared, screen: TerminalScreen = .shared) -> BuildProgress? {
        guard board.mode == .live, !json else { return nil }
        board.phase("resolving")
        let p = BuildProgress(board: board, screen: screen)
        let thread = Thread { p.loop() }
        thread.name = "kiln-progress"
        thread.start()
        current.withLock { $0 = p }
        return p
    }

    /// Stops drawing; `erase` takes the line off the screen, else the last frame stays.
    /// Erasing is only right before anything else went to stdout: when stdout is the
    /// same terminal, a result printed below the line would be erased with it.
    func stop(erase: Bool = true) {
        running.withLock { r in
            guard r else { return }
            r = false
            if erase { screen.remove(Self.section) } else { screen.keep(Self.section) }
        }
    }

    /// The display running in this process, if any.
    static let current = Mutex<BuildProgress?>(nil)

    /// Stops the display before the command prints its result on stdout (a no-op
    /// without one).
    static func stopCurrent() {
        current.withLock { $0 }?.stop()
    }

    private func loop() {
        while true {
            let drew = running.withLock { r -> Bool in
                guard r else { return false }
                screen.set(Self.section, lines: [Self.line(board.snapshot(), now: DispatchTime.now().uptimeNanoseconds)])
                return true
            }
            if !drew { return }
            usleep(125_000)
        }
    }

    /// `kiln 3.2 s: layer 2: read 120.5/300.0 MiB (40%) -> 44.1 MiB (37%), 95.3 MiB/s; 1 built, 1 cached`:
    /// the time first, so a narrow terminal cuts the least useful end.
    static func line(_ s: ProgressBoard.Snapshot, now: UInt64) -> String {
        var line = String(format: "kiln %.1f s: ", Double(now &- s.started) / 1e9)
        switch s.phase {
        case "planning":
            line += "planning: \(s.entriesPlanned) entries"
        case "downloading packages":
            line += "downloading packages: \(mib(s.downloadDone))/\(mib(s.downloadTotal)) MiB"
        case "layer":
            line += "layer \(s.layer): read \(mib(s.layerRead))"
            // The size is the tar's, headers and padding included: a finished layer is 100%.
            let percent = s.layerFinished != 0 ? 100 : min(100, Int(Double(s.layerRead) * 100 / Double(max(1, s.layerSize))))
            if s.layerSize > 0 { line += "/\(mib(s.layerSize)) MiB (\(percent)%)" } else { line += " MiB" }
            // Out of the compressor (or the plain tar), and that over what was read: the compression rate.
            if s.layerWritten > 0 {
                line += " -> \(mib(s.layerWritten)) MiB"
                if s.layerRead > 0 { line += " (\(Int((Double(s.layerWritten) * 100 / Double(s.layerRead)).rounded()))%)" }
            }
            let secs = Double((s.layerFinished == 0 ? now : s.layerFinished) &- s.layerStarted) / 1e9
            if secs > 0.2 { line += String(format: ", %.0f MiB/s", Double(s.layerRead) / 1_048_576 / secs) }
        case "writing":
            line += "writing the image"
        case "pushing", "pulling":
            line += "\(s.phase) blobs"
        case "starting":
            line += "resolving"
        default:
            line += s.phase
        }
        if s.layersDone > 0 || s.cacheHits > 0 {
            line += "; \(s.layersDone) built, \(s.cacheHits) cached"
        }
        return line
    }

    static func mib(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }
}
