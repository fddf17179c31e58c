import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build an image from a YAML (or JSON) spec.",
        discussion: """
            The output is reproducible: it depends only on the spec and the bytes of the \
            contents, not on mtimes, umask, user, locale, TZ or the clock (unless `created: now`).

            Examples:
              kiln build image.yaml -o hello.tar                 # docker-archive, for docker/podman load
              kiln build image.yaml -o hello.tar.gz              # the same, gzip-compressed (also .tgz)
              kiln build image.yaml --format oci -o hello-oci    # OCI layout directory
              kiln build image.yaml --format oci-archive -o hello.oci.tar --tag example/hello:1.0
              kiln build image.yaml --push docker://127.0.0.1:5000/hello:1.0   # straight to a registry
              kiln build image.yaml --locked --sbom image.spdx.json   # packages exactly as `kiln lock` pinned them
            """)

    @Argument(help: "The spec file.")
    var spec: String

    @Option(name: .shortAndLong, help: "Where to write the image (default: NAME.tar, or NAME for --format oci; a docker-archive named .tar.gz or .tgz is gzip-compressed).")
    var output: String?

    @Option(help: "Output format: docker-archive, oci or oci-archive.")
    var format: OutputFormat = .dockerArchive

    @Option(help: "Override the spec's name and tag: NAME[:TAG].")
    var tag: String?

    @Flag(help: "Print the result as JSON (reference, digests, layers) on stdout.")
    var json = false

    @Option(help: "Push to this registry reference (docker://HOST/REPO[:TAG]) instead of writing a local image.")
    var push: String?

    @Flag(help: "Write a docker-archive to stdout while producing it, with no temporary files (kiln build spec.yaml --stream | podman load).")
    var stream = false

    @Flag(help: "Fail when the spec's packages are not pinned by a current lock file (for CI).")
    var locked = false

    @Option(help: "Write an SPDX 2.3 JSON SBOM of the image to this file.")
    var sbom: String?

    @OptionGroup var packageOptions: PackageOptions

    @OptionGroup var cacheOptions: CacheOptions

    @OptionGroup var registry: RegistryFlags

    mutating func run() throws {
        try reportingErrors {
            var spec = try Spec.load(path: self.spec)
            if let t = tag {
                let (name, tg) = try splitNameTag(t)
                spec.name = name
                spec.tag = tg ?? spec.tag
            }
            let staging = try Staging()
            var builder = ImageBuilder(spec: spec, staging: staging)
            builder.cache = try cacheOptions.open()
            builder.notice = notice
            // Opened once here, whatever needs it: a registry base is resolved once per build.
            let (base, registrySource) = try loadBase(spec: spec, staging: staging, registry: registry, json: json)
            defer { registrySource?.removeSpool() }
            builder.base = base
            if !spec.packages.isEmpty {
                let planner = try packagePlanner(spec: spec, base: base, cache: builder.cache, staging: staging)
                let lockPath = packageOptions.lockPath(spec: spec)
                let lock = try PackageLock.read(lockPath)
                let p = planner, locked = self.locked
                builder.packages = try runBlocking { try await p.fetch(lock: lock, lockPath: lockPath, locked: locked) }
            } else if locked {
                throw ValidationError("--locked: the spec has no packages")
            }
            // A docker-archive stores plain tars: cache and hand over those.
            if push == nil && (stream || format == .dockerArchive) { builder.layerCompression = Compression.none }
            let report = try builder.planReport()
            let image = report.image
            func writeSBOM(_ written: WrittenImage) throws {
                guard let sbom else { return }
                let bytes = try SBOM(report: report, manifestDigest: written.manifestDigest, reference: written.reference).encode()
                try FileSystem.writeAtomically(bytes, to: sbom)
            }
            if let push {
                let ref = try RegistryReference(parsing: push)
                let written = try RegistrySink(reference: ref, options: try registry.options(json: json)).write(image)
                try writeSBOM(written)
                if json { print(String(decoding: try CanonicalJSON.encode(written), as: UTF8.self)) } else { try reportPush(written, json: false) }
                return
            }
            if stream {
                guard output == nil, format == .dockerArchive else {
                    throw ValidationError("--stream writes a docker-archive to stdout; it takes no -o or --format")
                }
                let written = try DockerArchiveSink(streamingTo: StreamStore(FileWriter(fd: 1, path: "<stdout>"))).write(image)
                try writeSBOM(written)
                return
            }
            let stem = spec.name.split(separator: "/").last.map(String.init) ?? "image"
            let out = output ?? (format == .oci ? stem : stem + ".tar")
            let written: WrittenImage
            switch format {
            case .dockerArchive:
                written = try DockerArchiveSink(path: out).write(image)
            case .oci:
                written = try OCISink(store: try DirectoryStore(path: out)).write(image)
            case .ociArchive:
                written = try OCISink(store: try TarStore(path: out)).write(image)
            }
            try writeSBOM(written)
            if json {
                print(String(decoding: try CanonicalJSON.encode(written), as: UTF8.self))
            } else {
                print("\(format.rawValue):\(out) \(written.reference) \(written.manifestDigest)")
            }
        }
    }
}

/// `name[:tag]`, validated against the reference grammar.
func splitNameTag(_ s: String) throws -> (String, String?) {
    var name = s
    var tag: String?
    if let colon = s.lastIndex(of: ":"), !s[s.index(after: colon)...].contains("/") {
        name = String(s[..<colon])
        tag = String(s[s.index(after: colon)...])
    }
    try ReferenceGrammar.validateName(name)
    if let tag { try ReferenceGrammar.validateTag(tag) }
    return (name, tag)
}
