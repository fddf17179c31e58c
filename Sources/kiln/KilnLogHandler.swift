import KilnArchive
import Logging

/// Kiln's log lines on stderr, one per message, written above any live progress
/// (`TerminalScreen`), so a message never cuts a redraw: `kiln: MESSAGE` for a notice
/// (as Kiln's notices always looked), `kiln: warning: MESSAGE`, `kiln: error: MESSAGE`,
/// and `kiln: debug: SUBSYSTEM: MESSAGE` (info, debug, trace) with the logger's last
/// label component (`http`, `cache`, `progress`). Metadata follows as `key=value`.
struct KilnLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        TerminalScreen.shared.write(Self.line(event, label: label, metadata: metadata) + "\n")
    }

    static func line(_ event: LogEvent, label: String, metadata: Logger.Metadata) -> String {
        var line = "kiln: "
        switch event.level {
        case .notice: break
        case .warning: line += "warning: "
        case .error, .critical: line += "error: "
        case .trace, .debug, .info:
            line += "\(event.level.rawValue): "
            if let sub = label.split(separator: ".").last, label != "kiln" { line += "\(sub): " }
        }
        // Several lines would break the one-line rule of Kiln's stderr.
        line += event.message.description.split(whereSeparator: \.isNewline).joined(separator: " ")
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        if !all.isEmpty { line += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        return line
    }
}

/// The command line's own logger: notices (`--quiet` hides them) and warnings.
let cliLog = Logger(label: "kiln")
