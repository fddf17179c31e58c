import ArgumentParser
import Foundation
import KilnArchive
import KilnBuild
import KilnImage
import KilnOCI
import KilnRegistry

struct Build: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build an image from a YAML (or JSON) spec.",
        discussion: """
            The output is reproducible: it depends only on the spec and the bytes of the \
            contents, not on mtimes, umask, user, locale, TZ or the clock (unless `created: now`).

            Examples:
              kiln build image.yaml -o hello.tar                 # docker-archive, for docker/podman load
              kiln build image.yaml -o hello.tar.gz              # the same, gzip-compressed (also .tgz; .tar.zst for zstd)
              kiln build image.yaml --stream --stream-compress zstd > hello.tar.zst
              kiln build image.yaml --format oci -o hello-oci    # OCI layout directory
              kiln build image.yaml --format oci-archive -o hello.oci.tar --tag example/hello:1.0
              kiln build image.yaml --push docker://127.0.0.1:5000/hello:1.0   # straight to a registry
              kiln build image.yaml --locked --sbom image.spdx.json   # packages exactly as `kiln lock` pinned them
            """)

    @Argument(help: "The spec file.")
    var spec: String

    @Option(name: .shortAndLong, help: "Where to write the image (default: NAME.tar, or NAME for --format oci; a docker-archive named .tar.gz or .tgz is gzip-compressed, .tar.zst zstd-compressed).")
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

    @Option(help: "With --stream: compress the whole archive, gzip or zstd (the spec's `compressor` is the per-layer setting).")
    var streamCompress: StreamCompression?

    @Flag(help: "Fail when the spec's packages are not pinned by a current lock file (for CI).")
    var locked = false

    @Option(help: "Write an SPDX 2.3 JSON SBOM of the image to this file.")
    var sbom: String?

    @OptionGroup var packageOptions: PackageOptions

    @OptionGroup var cacheOptions: CacheOptions

    @OptionGroup var cacheRepoOptions: CacheRepoOptions

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    func validate() throws {
        if let push {
            do { _ = try RegistryReference(parsing: push) } catch { throw ValidationError("--push: \(error)") }
        }
        if stream, output != nil || format != .dockerArchive {
            throw ValidationError("--stream writes a docker-archive to stdout; it takes no -o or --format")
        }
        if streamCompress != nil, !stream {
            throw ValidationError("--stream-compress compresses the --stream output; without --stream, name the file .tar.gz or .tar.zst")
        }
        if let output, format != .dockerArchive, DockerArchiveSink.compression(forName: output) != .none {
            throw ValidationError("-o \(output): a compressed archive name is for docker-archives; --format \(format.rawValue) is compressed per layer (the spec's `compressor`)")
        }
        if let t = tag {
            do { _ = try splitNameTag(t) } catch { throw ValidationError("--tag: \(error)") }
        }
        if try cacheRepoOptions.reference() != nil, cacheOptions.noCache {
            throw ValidationError("--cache-repo takes layers into the local cache and pushes from it: it does not go with --no-cache")
        }
    }

    /// The network parts (a registry base, packages, a push) are awaited here; planning
    /// and writing the image run on a thread of their own (`OwnThread`).
    func run() async throws {
        try await reportingErrors {
            var loaded = try Spec.load(path: self.spec)
            if let t = tag {
                let (name, tg) = try splitNameTag(t)
                loaded.name = name
                loaded.tag = tg ?? loaded.tag
            }
            let spec = loaded
            if locked, spec.packages.isEmpty {
                throw ValidationError("--locked: the spec has no packages")
            }
            let staging = try Staging()
            defer { staging.remove() }
            let cache = try cacheOptions.open()
            // A registry base is resolved once per build. Pushing to the base's own
            // registry, a build that reads no base file (nor, for the checks of its
            // contents, a layer whose listing is not cached yet) needs none of its
            // layers: they are mounted there.
            let pushRef = try push.map { try RegistryReference(parsing: $0) }
            let baseRegistry = try BaseImage.registryReference(of: spec).flatMap { try? RegistryReference(parsing: $0) }?.registry
            let registrySource = try await openRegistryBase(spec: spec, registry: registry, json: json, fetchLayers: false)
            defer { registrySource?.removeSpool() }
            if let registrySource {
                let layers = try registrySource.image().layers
                let needBaseLayers = pushRef == nil || pushRef?.registry != baseRegistry || buildReadsBaseFiles(spec)
                    || ImageBuilder.contentChecksReadBaseLayers(spec, layers: layers, cacheRoot: cache?.root)
                if needBaseLayers { try await fetchBaseLayers(registrySource, spec: spec) }
            }
            // The base is opened on a pipeline thread (a local one may be decompressed, its
            // dpkg status read), with the package planner that needs it.
            let baseLimits = RootfsLimits(maxLayerSize: limits.maxLayerSize.bytes)
            let (base, planner) = try await OwnThread.run("kiln-base") {
                let base = try openBase(spec: spec, staging: staging, registrySource: registrySource, limits: baseLimits)
                let planner = spec.packages.isEmpty ? nil : try packagePlanner(spec: spec, base: base, cache: cache, staging: staging)
                return (base, planner)
            }
            var builder = ImageBuilder(spec: spec, staging: staging)
            builder.cache = cache
            builder.notice = notice
            builder.base = base
            if let planner {
                let lockPath = packageOptions.lockPath(spec: spec)
                let lock = try PackageLock.read(lockPath)
                builder.packages = try await planner.fetch(lock: lock, lockPath: lockPath, locked: locked)
            }
            // A docker-archive stores plain tars: cache and hand over those.
            if push == nil && (stream || format == .dockerArchive) { builder.layerCompression = Compression.none }
            let cacheRepo = try cacheRepoOptions.reference().map { try CacheRepo(reference: $0, options: try registry.options(json: json)) }
            defer { cacheRepo?.remove() }
            if let cacheRepo {
                if builder.canDeferLayers {
                    builder.deferLayerMisses = true
                } else {
                    notice("cache repo \(cacheRepo.name): not used by a build with runAsRoot (its layers are built here)")
                }
            }
            let sbomPath = sbom
            let plan = builder
            let (report, builtForRepo) = try await planImage(plan, cacheRepo: cacheRepo, pushTo: pushRef)
            let pushCache = { (mountFrom: String?) async in
                if let cacheRepo, !cacheRepoOptions.cacheRepoReadonly {
                    await pushToCacheRepo(cacheRepo, builtForRepo, mountFrom: mountFrom)
                }
            }
            if let pushRef {
                let sink = try RegistrySink(reference: pushRef, options: try registry.options(json: json))
                let (prepared, sbomBytes) = try await OwnThread.run("kiln-build") {
                    let report = report.value
                    let prepared = try sink.prepare(report.image)
                    let written = prepared.written
                    let sbom = try sbomPath.map { _ in
                        try SBOM(report: report, manifestDigest: written.manifestDigest, reference: written.reference).encode()
                    }
                    return (prepared, sbom)
                }
                defer { prepared.remove() }
                let written = try await sink.upload(prepared).image
                // The SBOM describes the pushed image: written once the push succeeded.
                if let sbomPath, let sbomBytes { try FileSystem.writeAtomically(sbomBytes, to: sbomPath) }
                // The new layers are in the pushed repository now: the cache repo mounts them from there.
                await pushCache(cacheRepo?.registry == pushRef.registry ? pushRef.repository : nil)
                if json { print(String(decoding: try CanonicalJSON.encode(written), as: UTF8.self)) } else { try reportPush(written, json: false) }
                return
            }
            let stem = spec.name.split(separator: "/").last.map(String.init) ?? "image"
            let out = output ?? (format == .oci ? stem : stem + ".tar")
            let (stream, format, maxLayerSize) = (self.stream, self.format, limits.maxLayerSize.bytes)
            let streamCompression = streamCompress?.compression ?? Compression.none
            let written = try await OwnThread.run("kiln-build") {
                let report = report.value
                let image = report.image
                let written: WrittenImage
                if stream {
                    let stdout = FileWriter(fd: 1, path: "<stdout>")
                    var sink = DockerArchiveSink(streamingTo: StreamStore(streamCompression.writer(stdout)))
                    sink.maxLayerSize = maxLayerSize
                    written = try sink.write(image)
                } else {
                    switch format {
                    case .dockerArchive:
                        var sink = try DockerArchiveSink(path: out)
                        sink.maxLayerSize = maxLayerSize
                        written = try sink.write(image)
                    case .oci:
                        written = try OCISink(store: try DirectoryStore(path: out)).write(image)
                    case .ociArchive:
                        written = try OCISink(store: try TarStore(path: out)).write(image)
                    }
                }
                if let sbomPath {
                    let bytes = try SBOM(report: report, manifestDigest: written.manifestDigest, reference: written.reference).encode()
                    try FileSystem.writeAtomically(bytes, to: sbomPath)
                }
                return written
            }
            await pushCache(nil)
            if stream { return }
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

/// `--stream-compress`: whole-archive compression of a streamed docker-archive.
enum StreamCompression: String, ExpressibleByArgument, CaseIterable {
    case gzip, zstd

    var compression: Compression { self == .gzip ? .gzip : .zstd }
}
