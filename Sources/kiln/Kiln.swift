import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI

@main
struct Kiln: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Build, inspect and convert container images without a daemon.",
        discussion: """
            Images are named in skopeo's transport syntax: docker-archive:PATH, oci:DIR[:TAG], \
            oci-archive:PATH[:TAG], and docker://HOST/REPO[:TAG] (or @sha256:DIGEST) for a registry.
            Exit status: 0 on success, 1 when the operation failed, 64 for a usage error.
            """,
        subcommands: [Build.self, Lock.self, Copy.self, Inspect.self, Pull.self, Push.self, Login.self, Logout.self, Export.self, Merge.self, CacheCommand.self, TarsumCommand.self])
}

/// Runs `body`, printing any error as one line on stderr and exiting 1. A
/// `ValidationError` (a usage error found after parsing: flags that do not go
/// together) is passed on to ArgumentParser, which prints it with the usage and exits
/// 64 (EX_USAGE), as it does for errors found while parsing.
func reportingErrors<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let e as ExitCode {
        throw e
    } catch let e as CleanExit {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        var stderr = StandardError()
        print("kiln: error: \(error)", to: &stderr)
        throw ExitCode.failure
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
