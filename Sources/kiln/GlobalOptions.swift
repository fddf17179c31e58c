import ArgumentParser
import KilnArchive
import Logging
import Synchronization

/// Options every command takes, declared on the root command: ArgumentParser parses a
/// parent command's options wherever they stand on the line, so `kiln build x.yaml
/// --quiet` and `kiln --log-level debug push …` both work. Each subcommand declares them
/// too, last (`@OptionGroup var global: GlobalOptions`), only so that its --help lists
/// them: the root has parsed them by then, and ArgumentParser hands an option group of a
/// type a parent command already decoded that parent's value (`OptionGroup.init(from:)`),
/// so both declarations are one storage.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print no progress and no notices (warnings, errors and results still).")
    var quiet = false

    @Option(name: .customLong("log-level"),
            help: "What to print on stderr: trace, debug (HTTP requests, cache decisions, timings), info, notice (the default), warning, error.")
    var logLevel: Logger.Level?

    /// The level messages are printed from: `--log-level`, else notice (warning with `--quiet`).
    var effectiveLevel: Logger.Level { logLevel ?? (quiet ? .warning : .notice) }

    /// The progress mode: nothing with `--quiet`, a live display on a terminal, plain
    /// lines otherwise.
    var progressMode: ProgressBoard.Mode {
        quiet ? .quiet : TerminalScreen.stderrIsTerminal ? .live : .lines
    }

    /// Sets up logging and progress for the process, once (before any logger exists).
    func apply() {
        guard !Self.applied.exchange(true, ordering: .relaxed) else { return }
        ProgressBoard.shared.mode = progressMode
        let level = effectiveLevel
        LoggingSystem.bootstrap { label in KilnLogHandler(label: label, logLevel: level) }
    }

    private static let applied = Atomic<Bool>(false)
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
