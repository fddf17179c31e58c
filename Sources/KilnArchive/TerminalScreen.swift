#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Kiln's one writer of stderr: messages (notices, log lines, a script's output) and
/// the live progress lines below them. On a terminal, the progress lines are redrawn
/// in place (ECMA-48: `ESC [ n A` moves the cursor up, `ESC [ J` erases below it), and
/// a message is written by erasing them, writing the message and drawing them again,
/// all in one write(2), so messages and redraws never cut each other. Without live
/// lines, messages are written as they are.
public final class TerminalScreen: Sendable {
    public static let shared = TerminalScreen()

    private struct State {
        /// Named groups of live lines (the build's board, the blob transfers), drawn in
        /// the order they were first set.
        var sections: [(name: String, lines: [String])] = []
        /// How many lines are on the screen now, below the messages.
        var drawn = 0
        /// When they were last drawn (`DispatchTime`-like monotonic nanoseconds).
        var lastDraw: UInt64 = 0
    }

    private let state = Mutex(State())
    private let fd: Int32

    public init(fd: Int32 = 2) { self.fd = fd }

    /// Whether stderr is a terminal that understands cursor movement (not TERM=dumb).
    public static var stderrIsTerminal: Bool {
        guard isatty(2) != 0 else { return false }
        guard let term = getenv("TERM") else { return true }
        return String(cString: term) != "dumb"
    }

    /// Replaces the live lines of `section` and redraws, unless the last redraw was less
    /// than `minInterval` seconds ago and `force` is false.
    public func set(_ section: String, lines: [String], force: Bool = true, minInterval: Double = 0.1) {
        state.withLock { s in
            if let i = s.sections.firstIndex(where: { $0.name == section }) { s.sections[i].lines = lines }
            else { s.sections.append((section, lines)) }
            let now = Self.monotonic()
            guard force || Double(now &- s.lastDraw) / 1e9 >= minInterval else { return }
            s.lastDraw = now
            emit(erase(&s) + draw(&s))
        }
    }

    /// Removes `section`'s lines from the screen.
    public func remove(_ section: String) {
        state.withLock { s in
            guard let i = s.sections.firstIndex(where: { $0.name == section }) else { return }
            s.sections.remove(at: i)
            emit(erase(&s) + draw(&s))
        }
    }

    /// Leaves the live lines on the screen as they are, as ordinary output, and forgets
    /// `section`: nothing is written, as the cursor may no longer be below the lines
    /// (a result printed on stdout, the same terminal, since the last redraw).
    /// Other sections are drawn afresh below at their next update.
    public func keep(_ section: String) {
        state.withLock { s in
            s.sections.removeAll { $0.name == section }
            s.drawn = 0
        }
    }

    /// Writes `text` above the live lines (as it is when there are none).
    public func write(_ text: String) {
        state.withLock { s in
            if s.drawn == 0 && s.sections.allSatisfy({ $0.lines.isEmpty }) { emit(text); return }
            var out = erase(&s) + text
            if !text.isEmpty, !text.hasSuffix("\n") { out += "\n" }
            emit(out + draw(&s))
        }
    }

    private func erase(_ s: inout State) -> String {
        defer { s.drawn = 0 }
        return s.drawn > 0 ? "\r\u{1B}[\(s.drawn)A\u{1B}[J" : ""
    }

    private func draw(_ s: inout State) -> String {
        let width = Self.columns()
        var out = ""
        for section in s.sections {
            for line in section.lines {
                // A line wider than the terminal would wrap and break the cursor-up count.
                out += "\r\u{1B}[2K" + (line.count >= width ? String(line.prefix(max(1, width - 1))) : line) + "\n"
                s.drawn += 1
            }
        }
        return out
    }

    private func emit(_ s: String) {
        guard !s.isEmpty else { return }
        var bytes = Array(s.utf8)
        bytes.withUnsafeMutableBytes { b in
            var off = 0
            while off < b.count {
                let n = Glibc.write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
    }

    static func columns() -> Int {
        var ws = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 0 { return Int(ws.ws_col) }
        return 80
    }

    static func monotonic() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }
}
