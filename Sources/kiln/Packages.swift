import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnBuild
import KilnDebian
import KilnImage
import KilnOCI
import KilnRegistry

/// Options shared by `kiln build` and `kiln lock` for specs with `packages`.
struct PackageOptions: ParsableArguments {
    @Option(help: "The lock file (default: the spec's name with its extension replaced by .lock.json).")
    var lockfile: String?

    func lockPath(spec: Spec) -> String {
        lockfile ?? PackageLock.defaultPath(forSpec: spec.path)
    }
}

/// The planner for a spec's packages, as `kiln build` and `kiln lock` both use it: the
/// spec's architecture, the base's installed packages, notices and progress on stderr.
func packagePlanner(spec: Spec, base: BaseImage?, cache: LayerCache?, staging: Staging) throws -> PackagePlanner {
    var planner = PackagePlanner(spec: spec, architecture: packageArchitecture(spec),
                                 store: try packageStore(cache: cache, staging: staging))
    planner.installed = try installedPackages(base)
    planner.notice = notice
    return planner
}

/// Where downloaded `.deb` files and indexes are kept: beside the layer cache, or in
/// the build's staging area with `--no-cache`.
func packageStore(cache: LayerCache?, staging: Staging) throws -> PackageCacheStore {
    try PackageCacheStore(root: cache.map { $0.root + "/debian" } ?? staging.newPath("debian"))
}

/// The Debian architecture packages are resolved for: that of the platform being built
/// (`platforms` entry, else `architecture`/`variant`, else the host's): amd64, arm64,
/// armhf for arm/v7, armel for arm/v6, i386 for 386, ppc64el for ppc64le…
func packageArchitecture(_ spec: Spec) -> String {
    BaseImage.wantedPlatform(spec).debianArchitecture
}

/// The spec's base image (`fromImage`) when it is in a registry, opened once per build
/// with the command's registry flags, for the spec's platform (KilnBuild does not talk
/// to registries): its manifest and config now, and its layers too unless `fetchLayers`
/// is false (a build that pushes to the base's own registry and never reads the base's
/// files: the layers are mounted there, not downloaded). A tag is resolved once and its
/// digest printed, so the spec can pin it. nil for a local base or none; the caller
/// removes the source's spool when done. `pinned`: the digest the tag was resolved to
/// for another platform of the same build, used instead of the tag (and not printed).
func openRegistryBase(spec: Spec, registry: RegistryFlags, json: Bool,
                      fetchLayers: Bool = true, pinned: Digest? = nil) async throws -> RegistrySource? {
    guard let from = try BaseImage.registryReference(of: spec) else { return nil }
    let location = spec.keyLocations["fromImage"].map { "\($0): " } ?? ""
    var name = from
    do {
        var ref = try RegistryReference(parsing: from)
        name = ref.name
        let byTag = ref.digest == nil
        if let pinned, byTag { ref.digest = pinned }
        let platform = BaseImage.wantedPlatform(spec)
        let source = try await RegistrySource.open(reference: ref, options: try registry.options(json: json), platform: platform)
        if byTag, pinned == nil {
            // What the tag named: the index when it is one, so the pin keeps every platform.
            let digest = try source.index?.digest ?? source.image().manifestDigest
            notice("fromImage \(from) is \(digest); pin it with @\(digest)")
        }
        if fetchLayers {
            do {
                try await source.fetchLayers()
            } catch {
                source.removeSpool()
                throw error
            }
        }
        return source
    } catch {
        // Most registry errors name the image already (`manifest HOST/REPO:TAG: …`).
        let message = oneLine("\(error)")
        throw BuildError("\(location)fromImage: " + (message.contains(name) ? message : "\(from): \(message)"))
    }
}

/// Downloads the layers of a registry base (`openRegistryBase(…, fetchLayers: false)`),
/// with errors named as `openRegistryBase` names them.
func fetchBaseLayers(_ source: RegistrySource, spec: Spec) async throws {
    do {
        try await source.fetchLayers()
    } catch {
        let location = spec.keyLocations["fromImage"].map { "\($0): " } ?? ""
        let from = spec.fromImage ?? "\(source.reference)"
        let message = oneLine("\(error)")
        throw BuildError("\(location)fromImage: " + (message.contains(source.reference.name) ? message : "\(from): \(message)"))
    }
}

/// The base image: the registry one `openRegistryBase` opened, else the local one the
/// spec names (read by KilnBuild), else none. Synchronous: run it on a pipeline thread.
func openBase(spec: Spec, staging: Staging, registrySource: RegistrySource?,
              limits: RootfsLimits = RootfsLimits()) throws -> BaseImage? {
    guard let registrySource, let from = spec.fromImage else { return try BaseImage.load(spec: spec, staging: staging, limits: limits) }
    return BaseImage(reference: from, image: try registrySource.image(), staging: staging, limits: limits)
}

/// Whether a build reads its base's files: merging accounts, installing packages
/// (the dpkg status), running a script over it. New contents alone do not.
func buildReadsBaseFiles(_ spec: Spec) -> Bool {
    !spec.users.isEmpty || !spec.groups.isEmpty || !spec.packages.isEmpty || spec.runAsRoot != nil
}

/// `s` on one line, for error messages that quote a server's words.
private func oneLine(_ s: String) -> String {
    s.split(whereSeparator: \.isNewline).joined(separator: " ")
}

/// What the base image has installed, from its dpkg database.
func installedPackages(_ base: BaseImage?) throws -> [InstalledPackage] {
    guard let base, let bytes = try base.rootfs().contents(of: "var/lib/dpkg/status", limit: 64 << 20) else { return [] }
    do {
        return try InstalledPackage.parseStatus(String(decoding: bytes, as: UTF8.self))
    } catch {
        throw BuildError("\(base.reference): /var/lib/dpkg/status: \(error)")
    }
}

/// A one-line notice on stderr, through the log (`--quiet` hides notices, not warnings).
@Sendable func notice(_ line: String) {
    if line.hasPrefix("warning: ") { cliLog.warning("\(line.dropFirst(9))") } else { cliLog.notice("\(line)") }
}

struct Lock: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Resolve a spec's packages and pin them in a lock file.",
        discussion: """
            Reads the spec's `repositories` (their signed Release files and Packages indexes), \
            resolves `packages` with their dependencies for the spec's architecture, and writes \
            the result to SPEC.lock.json (or --lockfile): every package's name, version, \
            architecture, source package, repository, file name, size and sha256, and each \
            repository's Release digest and date. `kiln build` then installs exactly those files.

            Examples:
              kiln lock image.yaml              # create image.lock.json (kept as it is when it exists)
              kiln lock image.yaml --update     # resolve afresh and rewrite it
            """)

    @Argument(help: "The spec file.")
    var spec: String

    @Flag(help: "Resolve afresh even when the lock is current (new versions in the repositories).")
    var update = false

    @OptionGroup var packageOptions: PackageOptions
    @OptionGroup var cacheOptions: CacheOptions
    /// For a `docker://` fromImage (its dpkg database).
    @OptionGroup var registry: RegistryFlags

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let spec = try Spec.load(path: self.spec)
            guard !spec.packages.isEmpty else {
                throw BuildError("\(spec.path): the spec has no packages to lock")
            }
            let path = packageOptions.lockPath(spec: spec)
            // Every platform's packages, in one lock keyed by Debian architecture.
            var specs: [Spec] = []
            for s in spec.platforms.isEmpty ? [spec] : spec.platforms.map({ spec.forPlatform($0) })
            where !specs.contains(where: { packageArchitecture($0) == packageArchitecture(s) }) {
                specs.append(s)
            }
            let archs = specs.map(packageArchitecture)
            func summary(_ lock: PackageLock) -> String {
                archs.map { a in
                    let n = lock.packages[a]?.count ?? 0
                    return "\(n) package\(n == 1 ? "" : "s") for \(a)"
                }.joined(separator: ", ")
            }
            let existing = try PackageLock.read(path)
            if let existing, !update, archs.allSatisfy({ existing.differences(from: spec, architecture: $0).isEmpty }) {
                print("\(path) is current (\(summary(existing))); --update resolves afresh")
                return
            }
            let staging = try Staging()
            defer { staging.remove() }
            let cache = try cacheOptions.open()
            var lock = existing
            var basePin: Digest?
            for s in specs {
                let registrySource = try await openRegistryBase(spec: s, registry: registry, json: false, pinned: basePin)
                defer { registrySource?.removeSpool() }
                if let registrySource, basePin == nil { basePin = try registrySource.index?.digest ?? registrySource.image().manifestDigest }
                let planner = try await OwnThread.run("kiln-base") {
                    try packagePlanner(spec: s, base: try openBase(spec: s, staging: staging, registrySource: registrySource),
                                       cache: cache, staging: staging)
                }
                lock = try await planner.lock(existing: lock)
            }
            guard let lock else { return }
            try lock.write(to: path)
            print("\(path): \(summary(lock))")
        }
    }
}
