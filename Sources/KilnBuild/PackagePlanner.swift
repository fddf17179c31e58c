#if canImport(Glibc)
import Glibc
#endif
import KilnDebian

/// A package ready to unpack: what the lock says of it and its verified `.deb`.
public struct FetchedPackage: Sendable {
    public var package: LockedPackage
    /// The `.deb`, verified against `package.sha256`, in the download cache.
    public var debPath: String
    /// The repository URI it came from (for the SBOM).
    public var repositoryURI: String
}

/// The packages of one image, fetched: what `ImageBuilder` turns into layers.
public struct PackageSelection: Sendable {
    public var architecture: String
    /// Sorted by name.
    public var packages: [FetchedPackage]
    /// Names the base image's dpkg status already satisfied (nothing added for them).
    public var satisfiedByInstalled: [String]
}

/// Resolves a spec's `packages` against its `repositories` (or takes them from the lock)
/// and downloads them. All network work is here and async; unpacking is the builder's.
public struct PackagePlanner: Sendable {
    public var spec: Spec
    public var architecture: String
    /// What the base image has installed (its `/var/lib/dpkg/status`).
    public var installed: [InstalledPackage] = []
    /// Where `.deb` files and indexes are kept, by digest.
    public var store: PackageCacheStore
    /// The host root whose apt sources `repositories: [host]` means (tests use another).
    public var hostRoot: String = "/"
    /// Notices for the user (one line each).
    public var notice: @Sendable (String) -> Void = { _ in }
    /// Download progress (bytes done, bytes total).
    public var progress: (@Sendable (Int64, Int64) -> Void)? = nil

    public init(spec: Spec, architecture: String, store: PackageCacheStore) {
        self.spec = spec
        self.architecture = architecture
        self.store = store
    }

    var location: String { spec.keyLocations["packages"].map { "\($0): packages" } ?? "packages" }

    /// The spec's repositories as apt sources, in order (`host` expanded to the host's).
    public func sources() throws -> [AptSource] {
        var out: [AptSource] = []
        for r in spec.repositories {
            switch r {
            case .host(let loc):
                let host: [AptSource]
                do { host = try AptSources.host(root: hostRoot) } catch { throw BuildError("\(loc): repositories: host: \(error)") }
                let fitting = host.filter { $0.architectures == nil || $0.architectures!.contains(architecture) }
                if fitting.isEmpty {
                    throw BuildError("\(loc): repositories: host: the host's apt sources (\(hostRoot == "/" ? "" : hostRoot)/etc/apt/sources.list*) list no repository for \(architecture)")
                }
                out += fitting
            case .explicit(let url, let suite, let components, let keyring, let loc):
                var s = url
                while s.hasSuffix("/") { s.removeLast() }
                out.append(AptSource(uri: s, suite: suite, components: components, signedBy: [keyring],
                                     architectures: nil, origin: "\(loc): repositories"))
            }
        }
        return out
    }

    /// Resolves afresh from the repositories' signed indexes: what `kiln lock` writes.
    public func resolve(fetcher: AptFetcher) async throws -> (lock: [LockedPackage], repositories: [PackageLock.Repository], satisfied: [String]) {
        let sources = try sources()
        var repos: [VerifiedRepository] = []
        for (i, s) in sources.enumerated() {
            repos.append(try await fetcher.release(of: s, index: i))
        }
        var available: [PackageRecord] = []
        var seen = Set<String>()
        for repo in repos {
            let components = repo.source.components.isEmpty ? [""] : repo.source.components
            for component in components {
                // Debian lists `Architecture: all` packages in every binary-ARCH index and
                // says so with `No-Support-for-Architecture-all: Packages`; apt then skips
                // binary-all, and so does Kiln.
                // binary-all is read only when the Release lists `all` among its
                // Architectures, as apt does (debian-security's Release does not).
                let archs = (repo.release.fields["Architectures"] ?? "").split(separator: " ").map(String.init)
                let allSeparate = repo.release.fields["No-Support-for-Architecture-all"] != "Packages" && archs.contains("all")
                for arch in allSeparate ? [architecture, "all"] : [architecture] {
                    let text = try await fetcher.packagesIndex(repo, component: component, architecture: arch)
                    if text.isEmpty { continue }
                    let paragraphs: [ControlParagraph]
                    do { paragraphs = try ControlParagraph.parseAll(text) } catch {
                        throw BuildError("\(repo.source.uri) \(repo.source.suite) \(component)/binary-\(arch)/Packages: \(error)")
                    }
                    for p in paragraphs {
                        let r: PackageRecord
                        do { r = try PackageRecord(paragraph: p, repositoryIndex: repo.index) } catch {
                            throw BuildError("\(repo.source.uri) \(repo.source.suite) \(component)/binary-\(arch)/Packages: \(error)")
                        }
                        // binary-all entries repeat in binary-ARCH indexes: keep one.
                        let id = "\(repo.index) \(r.name) \(r.version) \(r.architecture)"
                        if seen.insert(id).inserted { available.append(r) }
                    }
                }
            }
        }
        let requests = spec.packages.enumerated().map { i, p in
            PackageRequest(name: p.name, version: p.version, origin: "\(p.location): packages[\(i)]")
        }
        let resolution: Resolution
        do {
            resolution = try Resolver(available: available, installed: installed, architecture: architecture)
                .resolve(requests, recommends: spec.recommends)
        } catch {
            throw BuildError("\(error)")
        }
        let locked = resolution.packages.map { r in
            LockedPackage(name: r.name, version: r.version.description, architecture: r.architecture,
                          source: r.source, sourceVersion: r.sourceVersion, repository: r.repositoryIndex,
                          filename: r.filename, size: r.size, sha256: r.sha256,
                          requiredBy: resolution.dependents[r.name] ?? [])
        }
        let lockRepos = repos.map { r in
            PackageLock.Repository(uri: r.source.uri, suite: r.source.suite, components: r.source.components,
                                   release: r.release.digest, date: r.release.date)
        }
        return (locked, lockRepos, resolution.satisfiedByInstalled)
    }

    /// A lock for this spec and architecture, merged into `existing` (other
    /// architectures kept when the inputs are the same).
    public func lock(existing: PackageLock?) async throws -> PackageLock {
        try await withFetcher { fetcher in
            let (packages, repos, _) = try await resolve(fetcher: fetcher)
            var all: [String: [LockedPackage]] = [:]
            let inputs = PackageLock.inputs(of: spec)
            if let existing, existing.inputs == inputs, existing.repositories == repos { all = existing.packages }
            all[architecture] = packages
            return PackageLock(inputs: inputs, repositories: repos, packages: all)
        }
    }

    /// Runs `body` with a fetcher that is shut down afterwards, whatever happens.
    private func withFetcher<T: Sendable>(_ body: (AptFetcher) async throws -> T) async throws -> T {
        let fetcher = AptFetcher(store: store)
        do {
            let result = try await body(fetcher)
            try? await fetcher.shutdown()
            return result
        } catch {
            try? await fetcher.shutdown()
            throw error
        }
    }

    /// The packages to install, downloaded and verified. With a current lock, no index
    /// is read: each `.deb` is fetched by its file name (or found in the cache by digest).
    /// - Parameter locked: fail, naming the differences, when the lock is missing or out of date.
    public func fetch(lock: PackageLock?, lockPath: String, locked: Bool) async throws -> PackageSelection {
        try await withFetcher { try await fetchWith($0, lock: lock, lockPath: lockPath, locked: locked) }
    }

    private func fetchWith(_ fetcher: AptFetcher, lock: PackageLock?, lockPath: String, locked: Bool) async throws -> PackageSelection {
        var packages: [LockedPackage]
        var uris: [String]
        var satisfied: [String] = []
        var fromLock = false
        if let lock {
            let diff = lock.differences(from: spec, architecture: architecture)
            if diff.isEmpty {
                packages = lock.packages[architecture] ?? []
                uris = lock.repositories.map(\.uri)
                fromLock = true
                // The lock was resolved against the base of its time: a package the base
                // now has at the same version is skipped, at another version it is an error.
                var keep: [LockedPackage] = []
                for p in packages {
                    guard let have = installed.first(where: { $0.name == p.name }) else { keep.append(p); continue }
                    guard have.version.description == p.version else {
                        throw BuildError("\(lockPath): \(p.name) \(p.version) is locked but the base image has \(p.name) \(have.version) installed; run `kiln lock --update`")
                    }
                    satisfied.append(p.name)
                }
                packages = keep
            } else if locked {
                throw BuildError("\(lockPath): the lock does not match the spec (\(diff.joined(separator: "; "))); run `kiln lock --update`")
            } else {
                notice("\(lockPath) is out of date (\(diff.joined(separator: "; "))): resolving afresh; `kiln lock --update` pins the new result")
                (packages, uris, satisfied) = try await fresh(fetcher)
            }
        } else if locked {
            throw BuildError("--locked: \(lockPath) does not exist; create it with `kiln lock`")
        } else {
            notice("no lock file (\(lockPath)): resolved the packages afresh; `kiln lock` pins them")
            (packages, uris, satisfied) = try await fresh(fetcher)
        }
        func uri(_ p: LockedPackage) -> String { p.repository < uris.count ? uris[p.repository] : "" }
        let items = packages.map { p -> (urls: [String], sha256: String, size: Int64, what: String) in
            ([uri(p) + "/" + p.filename], p.sha256, p.size, "\(p.name) \(p.version)")
        }
        let paths: [String]
        do {
            paths = try await fetcher.downloadAll(items, progress: progress)
        } catch let e as RepositoryError {
            if fromLock, case .notFound = e {
                throw BuildError("\(e); the locked version is no longer in its repository (mirrors drop superseded versions): run `kiln lock --update`")
            }
            throw e
        }
        let fetched = zip(packages, paths).map { p, path in
            FetchedPackage(package: p, debPath: path, repositoryURI: uri(p))
        }
        return PackageSelection(architecture: architecture, packages: fetched.sorted { $0.package.name < $1.package.name },
                                satisfiedByInstalled: satisfied)
    }

    private func fresh(_ fetcher: AptFetcher) async throws -> ([LockedPackage], [String], [String]) {
        let (packages, repos, satisfied) = try await resolve(fetcher: fetcher)
        return (packages, repos.map(\.uri), satisfied)
    }
}
