import ArgumentParser
import KilnArchive

struct TarsumCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tarsum",
        abstract: "Print Docker's legacy tarsum of a tar (plain, gzip or zstd).",
        discussion: "Version 1 (default) prints tarsum.v1+sha256:…; --version 0 prints tarsum+sha256:….")

    @Argument(help: "The tar file, or - for standard input.")
    var file: String = "-"

    @Option(help: "Tarsum version: 0 or 1.")
    var version: Int = 1

    @OptionGroup var global: GlobalOptions

    mutating func run() throws {
        try reportingErrors {
            guard version == 0 || version == 1 else { throw ValidationError("--version must be 0 or 1") }
            let reader: ByteReader = file == "-" ? FileReader(fd: 0, path: "<stdin>") : try FileReader(path: file)
            print(try Tarsum.compute(reader: reader, version: version == 0 ? .v0 : .v1))
        }
    }
}
