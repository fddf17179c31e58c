import ArgumentParser
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

/// `kiln build --provenance PATH` and `--attach-provenance`: the provenance document
/// (`Provenance`, application/vnd.kiln.provenance.v1+json) of each built image.
///
/// Attaching is asked for, not done by default: a layout holding a second manifest is
/// refused by tools that open `oci:DIR` without a tag (skopeo, umoci), an OCI archive's
/// bytes would change with it, and a registry without the referrers API gets a
/// `sha256-<hex>` tag — the same terms as `--attach-sbom`.
struct ProvenanceOptions: ParsableArguments {
    @Option(name: .customLong("provenance"), help: ArgumentHelp("Write the image's provenance document (which spec items, packages or base layers each layer holds, with file counts and bytes) to this file; with several platforms, one file each (the platform before the extension).", valueName: "path"))
    var path: String?

    @Flag(help: "Attach each image's provenance document beside it as an OCI artifact referring to its manifest (application/vnd.kiln.provenance.v1+json); with --push or --format oci/oci-archive. `kiln inspect --files` and `kiln report` read it from there.")
    var attachProvenance = false

    func validate() throws {
        if let path {
            do { try checkOutputPath(path, what: "--provenance") } catch {
                var stderr = StandardError()
                print("kiln: error: \(error)", to: &stderr)
                throw ExitCode.failure
            }
        }
    }

    /// A document is attached where the image is kept with its referrers.
    func check(push: String?, format: OutputFormat, stream: Bool) throws {
        guard attachProvenance, push == nil else { return }
        if stream || format == .dockerArchive {
            throw ValidationError("--attach-provenance attaches the document beside the image: it needs --push or --format oci/oci-archive (a docker-archive holds no artifacts; --provenance PATH writes a file)")
        }
    }
}

extension Build {
    /// Writes `--provenance PATH` and, with `--attach-provenance`, stores each image's
    /// document beside it (one artifact per platform, whose subject is that platform's
    /// manifest, all in one step). The images themselves are not touched.
    func writeProvenance(_ built: [BuiltImage], destination: ImageLocation?) async throws {
        guard provenance.path != nil || provenance.attachProvenance else { return }
        let docs = built.compactMap { b in b.report.provenance(written: b.written).map { (b, $0) } }
        if docs.count < built.count {
            notice("provenance: the build could not describe every layer; no document for \(built.count - docs.count) image\(built.count - docs.count == 1 ? "" : "s")")
        }
        if let path = provenance.path {
            let items = HandOff(try docs.map { b, doc in
                (path: built.count > 1 ? Self.sbomPath(path, for: b.platform) : path, bytes: try doc.encode())
            })
            try await OwnThread.run("kiln-provenance") {
                for (path, bytes) in items.value { try FileSystem.writeAtomically(bytes, to: path) }
            }
        }
        guard provenance.attachProvenance, let destination else { return }
        let options = try registry.options(json: true)
        let stored = try await attachProvenance(docs.map { ($0.1, $0.0.written) }, at: destination, options: options)
        for ((b, _), d) in zip(docs, stored) {
            notice("attached provenance \(d.digest) to \(b.written.manifestDigest) (\(b.platform))")
        }
    }
}
