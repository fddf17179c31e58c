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
              kiln build multi.yaml --format oci -o app-oci     # `platforms:` in the spec: an OCI image index
              kiln build multi.yaml --platform linux/arm64/v8 -o app-arm64.tar   # one platform of them

            With several platforms (the spec's `platforms:`, or several --platform), the \
            image is an OCI image index over one image per platform, in the listed order: \
            --format oci or oci-archive, or --push (every manifest, then the index under the \
            tag). A docker-archive holds one platform. --json then prints the written index: \
            {reference, tag, indexDigest, indexSize, manifests: [{platform, image, size}]}.
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

    @Option(help: ArgumentHelp("Write an SPDX 2.3 JSON SBOM of the image to this file.",
                               discussion: "With several platforms, one file per platform: image.spdx.json becomes image.linux-amd64.spdx.json, image.linux-arm64-v8.spdx.json…"))
    var sbom: String?

    @Option(name: .customLong("platform"), help: ArgumentHelp(
        "Build for this platform, OS/ARCH[/VARIANT] (repeatable): narrows the spec's `platforms` to those given, or sets them when it has none.",
        valueName: "platform"))
    var platform: [String] = []

    @OptionGroup var packageOptions: PackageOptions

    @OptionGroup var cacheOptions: CacheOptions

    @OptionGroup var cacheRepoOptions: CacheRepoOptions

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    @OptionGroup var attach: AttachOptions

    @OptionGroup var provenance: ProvenanceOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let push {
            do { _ = try RegistryReference(parsing: push) } catch { throw ValidationError("--push: \(error)") }
        }
        try attach.check(push: push, format: format, stream: stream)
        try provenance.check(push: push, format: format, stream: stream)
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
        for p in platform {
            do { _ = try Spec.parsePlatform(p) } catch let e as BuildError { throw ValidationError("--platform: \(e.message)") }
        }
        // Output paths are checked before any work: a build that fails on its SBOM
        // after writing the image would leave the image behind.
        do {
            if let sbom { try checkOutputPath(sbom, what: "--sbom") }
            // (An OCI layout is a directory, made with its parents.)
            if let output, format != .oci { try checkOutputPath(output, what: "-o") }
        } catch {
            var stderr = StandardError()
            print("kiln: error: \(error)", to: &stderr)
            throw ExitCode.failure
        }
        if try cacheRepoOptions.reference() != nil, cacheOptions.noCache {
            throw ValidationError("--cache-repo takes layers into the local cache and pushes from it: it does not go with --no-cache")
        }
    }

    /// The network parts (a registry base, packages, a push) are awaited here; planning
    /// and writing the image run on a thread of their own (`OwnThread`). A spec with
    /// several platforms is built once per platform, in order (sharing the staging area
    /// and the caches), and written as one image index.
    func run() async throws {
        try await reportingErrors {
            var loaded = try Spec.load(path: self.spec)
            if let t = tag {
                let (name, tg) = try splitNameTag(t)
                loaded.name = name
                loaded.tag = tg ?? loaded.tag
            }
            let spec: Spec
            do { spec = try loaded.selectingPlatforms(platform) } catch let e as BuildError { throw ValidationError(e.message) }
            if locked, spec.packages.isEmpty {
                throw ValidationError("--locked: the spec has no packages")
            }
            // One spec per platform; a spec without `platforms` builds as it always has.
            let specs = spec.platforms.isEmpty ? [spec] : spec.platforms.map { spec.forPlatform($0) }
            if specs.count > 1, push == nil, stream || format == .dockerArchive {
                throw ValidationError("a docker-archive holds one platform: add --platform \(spec.platforms[0]) (the spec has: \(spec.platforms.map(\.description).joined(separator: ", ")))")
            }
            let staging = try Staging()
            defer { staging.remove() }
            let cache = try cacheOptions.open()
            let pushRef = try push.map { try RegistryReference(parsing: $0) }
            let cacheRepo = try cacheRepoOptions.reference().map { try CacheRepo(reference: $0, options: try registry.options(json: json)) }
            defer { cacheRepo?.remove() }
            let lock = spec.packages.isEmpty ? nil : try PackageLock.read(packageOptions.lockPath(spec: spec))
            // Registry bases stay open until the images are written: their layers are read from the spool.
            var sources: [RegistrySource] = []
            defer { for s in sources { s.removeSpool() } }
            var plans: [PlatformPlan] = []
            // A registry base's tag is resolved once: the other platforms take the digest it named.
            var basePin: Digest?
            for s in specs {
                let (plan, source) = try await planPlatform(s, staging: staging, cache: cache, pushRef: pushRef,
                                                            cacheRepo: cacheRepo, lock: lock, basePin: basePin,
                                                            noticePrefix: specs.count > 1 ? "\(s.platforms[0]): " : "")
                if let source {
                    sources.append(source)
                    if basePin == nil { basePin = try source.index?.digest ?? source.image().manifestDigest }
                }
                plans.append(plan)
            }
            let pushCache = { (mountFrom: String?) async in
                if let cacheRepo, !cacheRepoOptions.cacheRepoReadonly {
                    await pushToCacheRepo(cacheRepo, plans.flatMap(\.builtForRepo), mountFrom: mountFrom)
                }
            }
            if let pushRef {
                let sink = try RegistrySink(reference: pushRef, options: try registry.options(json: json))
                let built: [BuiltImage]
                var index: WrittenIndex?
                var manifestSize: Int64 = 0
                if plans.count == 1, spec.platforms.count <= 1 {
                    let report = plans[0].report
                    let prepared = try await OwnThread.run("kiln-build") { try sink.prepare(report.value.image) }
                    defer { prepared.remove() }
                    let pushed = try await sink.upload(prepared)
                    manifestSize = pushed.manifestSize
                    built = [BuiltImage(platform: plans[0].platform, report: report.value, written: pushed.image)]
                } else {
                    let pending = HandOff(pendingIndex(spec, plans))
                    let written = try await sink.push(pending.value)
                    index = written
                    built = zip(plans, written.manifests).map { BuiltImage(platform: $0.platform, report: $0.report.value, written: $1.image) }
                }
                // The new layers are in the pushed repository now: the cache repo mounts them from there.
                await pushCache(cacheRepo?.registry == pushRef.registry ? pushRef.repository : nil)
                // SBOMs and the like describe the pushed images: written once the push succeeded.
                try await writeAttachments(built, index: index, destination: .registry(pushRef))
                BuildProgress.stopCurrent()  // before the result on stdout
                if let index {
                    if json { try printJSON(index) } else {
                        print("docker://\(index.reference) \(index.indexDigest)")
                        for m in index.manifests { print("  \(m.platform) \(m.image.manifestDigest)") }
                    }
                } else if json {
                    print(String(decoding: try CanonicalJSON.encode(built[0].written), as: UTF8.self))
                } else {
                    try reportPush(built[0].written, json: false, size: manifestSize)
                }
                return
            }
            let stem = spec.name.split(separator: "/").last.map(String.init) ?? "image"
            let out = output ?? (format == .oci ? stem : stem + ".tar")
            let (stream, format, maxLayerSize) = (self.stream, self.format, limits.maxLayerSize.bytes)
            let streamCompression = streamCompress?.compression ?? Compression.none
            let built: [BuiltImage]
            var index: WrittenIndex?
            if plans.count == 1, spec.platforms.count <= 1 {
                let report = plans[0].report
                let written = try await OwnThread.run("kiln-build") {
                    let image = report.value.image
                    if stream {
                        let stdout = FileWriter(fd: 1, path: "<stdout>")
                        var sink = DockerArchiveSink(streamingTo: StreamStore(streamCompression.writer(stdout)))
                        sink.maxLayerSize = maxLayerSize
                        return try sink.write(image)
                    }
                    switch format {
                    case .dockerArchive:
                        var sink = try DockerArchiveSink(path: out)
                        sink.maxLayerSize = maxLayerSize
                        return try sink.write(image)
                    case .oci:
                        return try OCISink(store: try DirectoryStore(path: out)).write(image)
                    case .ociArchive:
                        return try OCISink(store: try TarStore(path: out)).write(image)
                    }
                }
                built = [BuiltImage(platform: plans[0].platform, report: report.value, written: written)]
            } else {
                let pending = HandOff(pendingIndex(spec, plans))
                let written = try await OwnThread.run("kiln-build") {
                    let sink = OCISink(store: format == .oci ? try DirectoryStore(path: out) : try TarStore(path: out))
                    return try sink.write(pending.value)
                }
                index = written
                built = zip(plans, written.manifests).map { BuiltImage(platform: $0.platform, report: $0.report.value, written: $1.image) }
            }
            await pushCache(nil)
            // The layout and the tag the image (or index) went under.
            let writtenTag = index?.tag ?? built[0].written.tag
            let destination: ImageLocation?
            switch format {
            case _ where stream, .dockerArchive: destination = nil
            case .oci: destination = .local(.oci(path: out, tag: writtenTag))
            case .ociArchive: destination = .local(.ociArchive(path: out, tag: writtenTag))
            }
            try await writeAttachments(built, index: index, destination: destination)
            BuildProgress.stopCurrent()  // before the result on stdout
            if stream { return }
            if let index {
                if json { try printJSON(index) } else {
                    print("\(format.rawValue):\(out) \(index.reference) \(index.indexDigest)")
                    for m in index.manifests { print("  \(m.platform) \(m.image.manifestDigest)") }
                }
            } else if json {
                print(String(decoding: try CanonicalJSON.encode(built[0].written), as: UTF8.self))
            } else {
                print("\(format.rawValue):\(out) \(built[0].written.reference) \(built[0].written.manifestDigest)")
            }
        }
    }

    /// One platform's image, planned: its base opened (a registry one's layers fetched
    /// when the build needs them), its packages fetched, its layers planned. Returns the
    /// registry base, whose spool the caller removes after writing the image.
    func planPlatform(_ spec: Spec, staging: Staging, cache: LayerCache?, pushRef: RegistryReference?,
                      cacheRepo: CacheRepo?, lock: PackageLock?, basePin: Digest? = nil,
                      noticePrefix: String = "") async throws -> (PlatformPlan, RegistrySource?) {
        // A registry base is resolved once per build (per platform). Pushing to the base's
        // own registry, a build that reads no base file (nor, for the checks of its
        // contents, a layer whose listing is not cached yet) needs none of its layers:
        // they are mounted there.
        let baseRegistry = try BaseImage.registryReference(of: spec).flatMap { try? RegistryReference(parsing: $0) }?.registry
        let registrySource = try await openRegistryBase(spec: spec, registry: registry, json: json, fetchLayers: false, pinned: basePin)
        do {
            if let registrySource {
                let layers = try registrySource.image().layers
                let needBaseLayers = pushRef == nil || pushRef?.registry != baseRegistry || buildReadsBaseFiles(spec)
                    || ImageBuilder.contentChecksReadBaseLayers(spec, layers: layers, cacheRoot: cache?.root)
                if needBaseLayers { try await fetchBaseLayers(registrySource, spec: spec) }
            }
            // The base is opened on a pipeline thread (a local one may be decompressed, its
            // dpkg status read), with the package planner that needs it.
            let baseLimits = RootfsLimits(maxLayerSize: limits.maxLayerSize.bytes)
            let opened = try await OwnThread.run("kiln-base") {
                let base = try openBase(spec: spec, staging: staging, registrySource: registrySource, limits: baseLimits)
                let planner = spec.packages.isEmpty ? nil : try packagePlanner(spec: spec, base: base, cache: cache, staging: staging)
                return HandOff((base, planner))
            }
            let (base, planner) = opened.value
            var builder = ImageBuilder(spec: spec, staging: staging)
            builder.cache = cache
            // With several platforms, the builder's notices say which one they are about.
            builder.notice = { @Sendable line in notice(noticePrefix + line) }
            builder.base = base
            if let planner {
                builder.packages = try await planner.fetch(lock: lock, lockPath: packageOptions.lockPath(spec: spec), locked: locked)
            }
            // A docker-archive stores plain tars: cache and hand over those.
            if push == nil && (stream || format == .dockerArchive) { builder.layerCompression = Compression.none }
            if let cacheRepo {
                if builder.canDeferLayers {
                    builder.deferLayerMisses = true
                    builder.shareLocalHits = !cacheRepoOptions.cacheRepoReadonly
                } else {
                    notice("cache repo \(cacheRepo.name): not used by a build with runAsRoot (its layers are built here)")
                }
            }
            let (report, builtForRepo) = try await planImage(builder, cacheRepo: cacheRepo, pushTo: pushRef)
            let platform = spec.buildPlatform ?? report.value.image.config.platform
            return (PlatformPlan(platform: platform, report: report, builtForRepo: builtForRepo), registrySource)
        } catch {
            registrySource?.removeSpool()
            throw error
        }
    }

    /// The index over the planned images, in the spec's order, each entry's platform as listed.
    func pendingIndex(_ spec: Spec, _ plans: [PlatformPlan]) -> PendingIndex {
        PendingIndex(name: spec.name, tag: spec.tag, entries: plans.map {
            PendingIndex.Entry(platform: $0.platform, image: $0.report.value.image)
        })
    }
}

/// One platform's planned image (see `Build.planPlatform`).
struct PlatformPlan {
    var platform: Platform
    var report: HandOff<BuildReport>
    /// The layers built here that the cache repo lacks.
    var builtForRepo: [LayerForCacheRepo]
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
