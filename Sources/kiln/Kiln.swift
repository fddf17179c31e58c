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
        subcommands: [Build.self, Lock.self, Copy.self, Inspect.self, Diff.self, Pull.self, Push.self, Login.self, Logout.self, Export.self, Merge.self, CacheCommand.self, TarsumCommand.self])
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

struct StandardError: TextOutputStream {
    mutating func write(_ s: String) {
        var bytes = Array(s.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case dockerArchive = "docker-archive"
    case oci
    case ociArchive = "oci-archive"
}
