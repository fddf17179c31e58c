import ArgumentParser
import KilnOCI
import KilnRegistry

/// `--platform OS/ARCH[/VARIANT]` for commands that read one image (`export`, `merge`,
/// `push`): which image of an index — a multi-platform image in an OCI layout, archive or
/// registry — they read. This machine's by default, as `pull` and `copy` choose; an index
/// without it is an error that lists what the index has (`PlatformSelection.select`). A
/// malformed value is a usage error (exit 64), found while the line is parsed.
struct PlatformOption: ParsableArguments {
    @Option(help: ArgumentHelp("The platform to pick from an index (a multi-platform image): OS/ARCH[/VARIANT] (default: this machine's).",
                               valueName: "os/arch[/variant]"))
    var platform: String?

    func validate() throws {
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    /// The platform asked for, else the host's.
    func selected() throws -> Platform {
        try platform.map(PlatformSelection.parse) ?? .host
    }
}

/// Says which image of an index a command that reads one image took when no
/// `--platform` was given: otherwise `kiln push oci:app docker://…` after a
/// multi-platform build pushes this machine's platform and leaves the others behind
/// without a word. A notice (`--quiet` hides it); nothing for a single image.
func noticeIndexChoice(_ location: ImageLocation, took platform: Platform, options: RegistryOptions) async {
    guard let top = try? await location.subjectDescriptor(platform: nil, options: options),
          MediaType.isIndex(top.mediaType) else { return }
    notice("\(location) is an index of several platforms: took \(platform) (--platform picks another; kiln copy --all copies them all)")
}
