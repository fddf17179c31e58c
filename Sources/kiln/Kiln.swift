import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI

@main
struct Kiln: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Build, inspect and convert container images without a daemon.",
        discussion: """
            Images are named in skopeo's transport syntax: docker-archive:PATH, oci:DIR[:TAG], \
            oci-archive:PATH[:TAG], and docker://HOST/REPO[:TAG] (or @sha256:DIGEST) for a registry.
            Exit status: 0 on success, 1 when the operation failed, 64 for a usage error.
            """,
        subcommands: [Build.self, Lock.self, Copy.self, Attach.self, Referrers.self, Inspect.self, Diff.self, Report.self, Pull.self, Push.self, Login.self, Logout.self, Export.self, Merge.self, CacheCommand.self, TarsumCommand.self])

    /// `--quiet` and `--log-level`, for every command (see `GlobalOptions`).
    @OptionGroup var global: GlobalOptions

    /// The root's options are parsed before the subcommand's: logging and the progress
    /// mode are set up here, before any command runs.
    func validate() throws {
        global.apply()
    }

    /// ArgumentParser's `main`, with the live display of `kiln build` around the command.
    static func main() async {
        var progress: BuildProgress?
        var parsed: ParsableCommand.Type?
        do {
            var command = try parseAsRoot()
            parsed = type(of: command)
            if let build = command as? Build { progress = BuildProgress.start(json: build.json) }
            if command is Lock { progress = BuildProgress.start(json: false) }
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
            ProgressBoard.shared.phase("done")  // logs the last phase's time
            // Normally stopped before the result was printed (`stopCurrent`); erasing
            // now could erase the result below the line on a terminal.
            progress?.stop(erase: isatty(1) == 0)
        } catch {
            // The error is the last word: the line goes.
            progress?.stop()
            // A usage error found while running (--platform against the spec's
            // platforms): the subcommand's usage, as for one found while parsing, not
            // the root's "kiln [--quiet] … <subcommand>".
            if let e = error as? ValidationError, let parsed, parsed != Kiln.self {
                var stderr = StandardError()
                print("Error: \(e.message)\nUsage: \(usageString(for: parsed))", to: &stderr)
                let path = commandPath(to: parsed)?.joined(separator: " ") ?? "kiln \(parsed._commandName)"
                print("  See '\(path) --help' for more information.", to: &stderr)
                exit(withError: ExitCode(64))
            }
            exit(withError: error)
        }
    }
}

/// The command names from `root` down to `command` (`kiln cache prune`), nil when it is
/// not below `root`.
func commandPath(to command: ParsableCommand.Type, from root: ParsableCommand.Type = Kiln.self) -> [String]? {
    if command == root { return [root._commandName] }
    for sub in root.configuration.subcommands {
        if let below = commandPath(to: command, from: sub) { return [root._commandName] + below }
    }
    return nil
}

/// Runs `body`, printing any error as one line on stderr and exiting 1. A
/// `ValidationError` (a usage error found after parsing: flags that do not go
/// together) is passed on to ArgumentParser, which prints it with the usage and exits
/// 64 (EX_USAGE), as it does for errors found while parsing.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw reported(error)
    }
}

/// `reportingErrors` for async commands (those that talk to registries or apt
/// repositories: they await the network and run their byte pipelines on threads of
/// their own, see `OwnThread`).
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch {
        throw reported(error)
    }
}

/// What a command throws for `error`: ArgumentParser's own errors as they are (a
/// `ValidationError` prints the usage and exits 64), anything else printed as one
/// line and exit 1.
private func reported(_ error: any Error) -> any Error {
    switch error {
    case is ExitCode, is CleanExit, is ValidationError:
        return error
    default:
        var stderr = StandardError()
        print("kiln: error: \(error)", to: &stderr)
        return ExitCode.failure
    }
}

/// Parses image arguments while ArgumentParser validates the command line, so a
/// malformed one is a usage error (exit 64) like a bad flag, named as the parser names it.
@discardableResult
func usageChecked<T>(_ parse: () throws -> T) throws -> T {
    do {
        return try parse()
    } catch {
        throw ValidationError("\(error)")
    }
}

/// stderr for `print(…, to:)`: whole lines go out above any live progress
/// (`TerminalScreen`), so they never cut a redraw. `print` hands over its pieces one by
/// one; they are gathered until a newline ends them (or the empty terminator of
/// `print(…, terminator: "")`).
struct StandardError: TextOutputStream {
    private var pending = ""

    mutating func write(_ s: String) {
        pending += s
        guard pending.hasSuffix("\n") || (s.isEmpty && !pending.isEmpty) else { return }
        TerminalScreen.shared.write(pending)
        pending = ""
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case dockerArchive = "docker-archive"
    case oci
    case ociArchive = "oci-archive"
}
