#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// Turns a spec into an image ready for a sink: contents merged in order into one file
/// tree, users, `extraCommands`, `perms`, then the config. Nothing is read from the
/// contents' files here beyond their metadata; bytes flow only when the sink writes.
public struct ImageBuilder {
    public let spec: Spec
    public let staging: Staging
    /// The clock, consulted only for `created: now`.
    public var now: () -> Int64 = { Int64(time(nil)) }
    /// Where built layers are kept between builds (nil: no cache).
    public var cache: LayerCache?
    /// The compression of the layers handed to the sink, when the sink wants another
    /// than the spec's (a docker-archive stores plain tars).
    public var layerCompression: Compression?
    /// Hold layers the local cache lacks back instead of building them, for a cache
    /// repo to be asked first (see ImageBuilder+RemoteCache.swift).
    public var deferLayerMisses = false
    /// With `deferLayerMisses`, hold the local cache's hits back too (`DeferredLayer.localHit`),
    /// so a cache repo that takes pushes is given the ones it lacks.
    public var shareLocalHits = false

    public init(spec: Spec, staging: Staging) {
        self.spec = spec
        self.staging = staging
    }

    /// The Debian packages to install, fetched (see `PackagePlanner`); nil when the spec
    /// has none.
    public var packages: PackageSelection?
    /// Notices for the user, one line each (packages whose maintainer scripts were not run…).
    public var notice: @Sendable (String) -> Void = { _ in }
    /// The base image, when the caller loaded it already (to read its dpkg status).
    public var base: BaseImage?

    public func plan() throws -> PendingImage { try planReport().image }

    /// The image and what went into it (for the SBOM and `--json`).
    public func planReport() throws -> BuildReport {
        let instant = now()
        let created = resolve(spec.created, instant)
        let mtime = resolve(spec.effectiveMtime, instant)
        try checkScriptsCanRun()

        let base = try self.base ?? BaseImage.load(spec: spec, staging: staging)
        try checkBasePlatform(base)
        // Nothing changed since a plan made before: its layers, with no tree built.
        let planKey = readsSysroot ? nil : try planCacheKey(base: base, created: created, mtime: mtime)
        if let planKey, let hit = cachedPlan(planKey) {
            notice("nothing the contents name changed since the last build of this spec: \(hit.layers.count) layer\(hit.layers.count == 1 ? "" : "s") from the cache, unplanned")
            return try finishPlan(contentLayers: hit.layers, pkg: nil, hasContents: hit.hasContents, closureFiles: [:],
                                  contentProvenance: hit.provenance,
                                  base: base, created: created, mtime: mtime)
        }
        let baseRoot = try baseFiles(base)
        // Each item's files at the paths the item names; placed below, after the packages.
        var itemTrees: [FileTree] = []
        // The files of each `closure:` and `swift:` item at their host paths, for the SBOM.
        var closureFiles: [Int: [String]] = [:]
        // Isolated closures whose launchers are shell scripts.
        var shellLaunchers: [Int] = []
        for (i, item) in spec.contents.enumerated() {
            var itemTree = FileTree()
            if try add(item, index: i, to: &itemTree) { shellLaunchers.append(i) }
            if let files = hostFilesForSBOM(item, tree: itemTree) { closureFiles[i] = files }   // ImageBuilder+ClosureFiles.swift
            itemTrees.append(itemTree)
        }
        var budget = spec.maxLayers - (base?.image.layers.count ?? 0) - (runAsRootScript == nil ? 0 : 1)
        var pkg: PackageLayers?
        var below = ImageView(base: baseRoot)
        if let packages, !packages.packages.isEmpty {
            // Packages get what is left after one layer for Kiln's generated files and
            // one for the other contents.
            let hasContents = itemTrees.contains { !$0.paths.isEmpty } || !spec.users.isEmpty || !spec.groups.isEmpty
                || spec.extraCommands != nil
            let room = budget - 1 - (hasContents ? 1 : 0)
            guard room >= 1 else {
                let loc = spec.keyLocations["maxLayers"].map { "\($0): " } ?? ""
                throw BuildError("\(loc)maxLayers: \(spec.maxLayers) leaves no room for package layers on a base of \(base?.image.layers.count ?? 0)")
            }
            let mergedUsr = try base.map(Self.isMergedUsr) ?? true
            let localtime = itemTrees.contains { $0["etc/localtime"] != nil }
            let p = try packageLayers(packages, budget: room, mergedUsr: mergedUsr, base: base, baseFiles: baseRoot,
                                      contentHasLocaltime: localtime)
            if !p.withScripts.isEmpty {
                notice("maintainer scripts not run (Kiln unpacks packages without dpkg): \(p.withScripts.sorted().joined(separator: ", "))")
            }
            budget -= p.layers.count + 1
            below.trees = [p.view]
            pkg = p
        }
        // Contents in order, each placed through the symlinks of the base, the packages
        // and the items before it (FileTree.mergeResolving).
        var tree = FileTree()
        // Which content items provide each path: what layering groups by and what the
        // base checks name.
        var provenance: [String: Set<Int>] = [:]
        for (i, itemTree) in itemTrees.enumerated() {
            let placed = try tree.mergeResolving(itemTree, below: below)
            for (p, dest) in placed where !itemTree.implicitDirectories.contains(p) && !dest.isEmpty {
                provenance[dest, default: []].insert(i)
            }
        }
        try checkLaunchers(tree, below: below, shellLaunchers: shellLaunchers)
        if let baseRoot { Self.adoptBaseDirectories(&tree, base: baseRoot) }
        if !spec.users.isEmpty || !spec.groups.isEmpty {
            if let base { try addAccounts(to: &tree, base: base) } else { tree.addUsers(spec.users, groups: spec.groups) }
        }
        if let script = spec.extraCommands {
            tree = try runExtraCommands(script, on: tree)
        }
        // Patterns go through the image's symlinks as the contents did.
        var original: [Spec.Permission: Spec.Permission] = [:]
        let perms = try spec.perms.map { p in
            var placed = p
            do {
                placed.path = try FileTree.resolvePattern(p.path) { tree[$0].map(ViewKind.init) ?? below.kind(at: $0) }
            } catch let e as BuildError {
                throw BuildError("\(p.location): perms: \(e.message)")
            }
            original[placed] = p
            return placed
        }
        for p in tree.apply(perms) {
            throw BuildError("\(p.location): perms: \"\(original[p]?.path ?? p.path)\" matches nothing in the image")
        }
        if let baseRoot { try settleAgainstBase(&tree, provenance: provenance, base: baseRoot) }
        // With packages, an empty contents layer is left out (the packages were given
        // its room then).
        let packagesOnly = pkg != nil && tree.paths.isEmpty
        guard budget >= 1 || packagesOnly else {
            let loc = spec.keyLocations["maxLayers"].map { "\($0): " } ?? ""
            throw BuildError("\(loc)maxLayers: \(spec.maxLayers) leaves no room for new layers on a base of \(base?.image.layers.count ?? 0)")
        }
        var split = packagesOnly ? [] : try tree.split(provenance: provenance, strategy: spec.layering, budget: budget).layers
        if split.isEmpty, !packagesOnly { split = [FileTree()] }
        let contentLayers = try split.map { try layerInput(try TreeLayer(tree: $0, mtime: mtime.epoch)) }
        let contentProvenance = Self.contentProvenance(split, provenance: provenance, spec: spec)
        if let planKey { storePlan(planKey, layers: contentLayers, hasContents: !tree.paths.isEmpty, provenance: contentProvenance) }
        return try finishPlan(contentLayers: contentLayers, pkg: pkg, hasContents: !tree.paths.isEmpty, closureFiles: closureFiles,
                              contentProvenance: contentProvenance,
                              base: base, created: created, mtime: mtime)
    }

    /// The image from its content layers (and package layers): history, config, then the
    /// base's layers in front and the runAsRoot layer after (`assemble`).
    private func finishPlan(contentLayers: [LayerInput], pkg: PackageLayers?, hasContents: Bool, closureFiles: [Int: [String]],
                            contentProvenance: [Provenance.Layer]? = nil,
                            base: BaseImage?, created: (epoch: Int64, text: String),
                            mtime: (epoch: Int64, text: String)) throws -> BuildReport {
        var contentLayers = contentLayers
        let comment = spec.path.split(separator: "/").last.map(String.init)
        var history = contentLayers.map { _ in History(created: created.text, createdBy: "kiln build", comment: comment) }
        if let pkg {
            let generated = try layerInput(try TreeLayer(tree: pkg.generated, mtime: mtime.epoch))
            contentLayers = pkg.layers.map(\.input) + [generated] + contentLayers
            history = pkg.layers.map { History(created: created.text, createdBy: "kiln package", comment: $0.comment) }
                + [History(created: created.text, createdBy: "kiln packages metadata", comment: comment)] + history
        }

        let host = Platform.host
        let arch = spec.architecture ?? host.architecture
        let variant = spec.variant ?? (spec.architecture == nil ? host.variant : nil)
        var containerConfig = Self.swiftEntrypoint(spec.config, spec: spec)   // SwiftProduct.swift
        if pkg != nil, !(containerConfig.Env ?? []).contains(where: { $0.hasPrefix("PATH=") }),
           !(base?.image.config.config?.Env ?? []).contains(where: { $0.hasPrefix("PATH=") }) {
            containerConfig.Env = (containerConfig.Env ?? []) + [debianDefaultPath]
        }
        let config = ImageConfig(
            architecture: arch, os: spec.os, variant: variant, created: created.text,
            config: containerConfig, rootfs: RootFS(diffIDs: []), history: history)
        let image = try assemble(PendingImage(name: spec.name, tag: spec.tag, config: config,
                                              layers: contentLayers),
                                 hasContents: hasContents, base: base, created: created.text,
                                 createdEpoch: created.epoch, mtime: mtime.epoch)
        var report = BuildReport(spec: spec, image: image, base: base, packages: pkg?.unpacked.map {
            BuildReport.Package(package: $0.package, files: $0.files, bytes: $0.bytes, license: $0.license)
        } ?? [], satisfiedByInstalled: packages?.satisfiedByInstalled ?? [], closureFiles: closureFiles)
        report.layerProvenance = layerProvenance(image: image, base: base, pkg: pkg, content: contentProvenance)
        return report
    }

    /// The script run as root: the spec's `runAsRoot`, after `dpkg --configure -a` when
    /// `configure: true` asks for the packages' maintainer scripts to run.
    var runAsRootScript: String? {
        guard spec.configure, let packages, !packages.packages.isEmpty else { return spec.runAsRoot }
        return "dpkg --configure -a\n" + (spec.runAsRoot ?? "")
    }

    /// What the contents are placed through and checked against, when contents or
    /// packages go on a base: the flattened root when the build reads the base's bytes
    /// anyway (packages, accounts, runAsRoot), else the base's listing, kept per layer
    /// in the cache (`BaseListing`), so a base seen before is not read again.
    func baseFiles(_ base: BaseImage?) throws -> (any BaseFiles)? {
        guard let base, !spec.contents.isEmpty || !(packages?.packages.isEmpty ?? true) else { return nil }
        if !(packages?.packages.isEmpty ?? true) || !spec.users.isEmpty || !spec.groups.isEmpty || runAsRootScript != nil {
            return try base.rootfs()
        }
        return try BaseListing.load(base.image.layers, cacheRoot: cache?.root, what: base.reference,
                                    maxLayerSize: base.limits.maxLayerSize)
    }

    /// True when the base keeps `/bin` as a symlink into `/usr` (Debian 12 and later).
    static func isMergedUsr(_ base: BaseImage) throws -> Bool {
        guard let item = try base.rootfs().item(at: "bin") else { return true }
        if case .symlink = item { return true }
        return false
    }

    /// A layer for the sink: from the cache when its inputs are unchanged, produced into
    /// the cache otherwise, or produced by the sink when there is no cache.
    func layerInput(_ layer: TreeLayer) throws -> LayerInput {
        let c = layerCompression ?? compression
        guard let cache else { return .produced(layer, c) }
        let key = try cache.key(for: layer, compression: c, staging: staging)
        if let hit = cache.lookup(key) {
            if deferLayerMisses && shareLocalHits {
                return .produced(DeferredLayer(layer: layer, compression: c, localKey: key, localHit: true), c)
            }
            return .stored(hit)
        }
        if deferLayerMisses { return .produced(DeferredLayer(layer: layer, compression: c, localKey: key), c) }
        return .stored(try cache.store(layer, compression: c, key: key))
    }

    var compression: Compression {
        switch spec.compressor {
        case .gzip: return .gzip
        case .zstd: return .zstd
        case .none: return .none
        }
    }

    private func resolve(_ t: CreatedTime, _ instant: Int64) -> (epoch: Int64, text: String) {
        switch t {
        case .fixed(let e, let s): return (e, s)
        case .now: return (instant, RFC3339.format(epochSeconds: instant))
        }
    }

    /// Adds one content item's files; true when it is an isolated closure whose launcher
    /// is a shell script.
    private func add(_ item: ContentItem, index: Int, to tree: inout FileTree) throws -> Bool {
        let key: String
        switch item.kind {
        case .directory: key = "contents[\(index)]"
        case .source: key = "contents[\(index)].source"
        case .archive: key = "contents[\(index)].archive"
        case .closure: key = "contents[\(index)].closure"
        case .swift: key = "contents[\(index)].swift"
        }
        let prefix = "\(item.location): \(key)"
        // For a platform of `platforms`, maybe inside its sysroot (ImageBuilder+Platform.swift).
        let path = try platformHostPath(item, prefix: prefix)
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw BuildError("\(prefix): \(item.path): \(String(cString: strerror(errno)))")
        }
        guard access(path, R_OK) == 0 else {
            throw BuildError("\(prefix): \(item.path): \(String(cString: strerror(errno)))")
        }
        let isDir = (st.st_mode & S_IFMT) == S_IFDIR
        do {
            switch item.kind {
            case .directory:
                guard isDir else { throw BuildError("\(item.path) is not a directory (use `source:` for a file)") }
                try tree.addHost(resolvedTop(item.path), at: item.target ?? "/", xattrs: spec.xattrs)
            case .source:
                let base = item.path.split(separator: "/").last.map(String.init) ?? ""
                let target = item.target ?? (isDir ? "/" : "/" + base)
                try tree.addHost(resolvedTop(path), at: target, xattrs: spec.xattrs)
            case .archive:
                try tree.addArchive(item.path, at: item.target ?? "/", staging: staging, xattrs: spec.xattrs, key: key)
            case .closure where item.isolate:
                let isolated = try IsolatedClosure.make(of: item.path, target: item.target, xattrs: spec.xattrs,
                                                        resolver: try platformClosureResolver())
                tree.merge(isolated.tree)
                return isolated.needsShell
            case .closure:
                try tree.addClosure(of: item.path, target: item.target, xattrs: spec.xattrs, resolver: try platformClosureResolver())
            case .swift:
                try addSwiftProduct(item, to: &tree)   // SwiftProduct.swift
            }
        } catch let e as BuildError {
            throw e.message.hasPrefix(item.location.description) ? e : BuildError("\(prefix): \(e.message)")
        }
        return false
    }

    /// The item itself is followed when it is a symlink (as `cp -r PATH` follows its
    /// argument); symlinks inside it are kept as symlinks.
    private func resolvedTop(_ path: String) throws -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    private func runExtraCommands(_ script: String, on tree: FileTree) throws -> FileTree {
        let location = spec.keyLocations["extraCommands"].map { "\($0): " } ?? ""
        let root = staging.newPath("root")
        guard mkdir(root, 0o755) == 0 else { throw BuildError("cannot create \(root): \(String(cString: strerror(errno)))") }
        try tree.materialize(at: root)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-e", "-c", script]
        p.currentDirectoryURL = URL(fileURLWithPath: root)
        p.standardInput = FileHandle.nullDevice
        // The script's output is kept aside: shown after a success, summarised in the
        // one-line error after a failure.
        let log = staging.newPath("extraCommands.log")
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let logHandle = FileHandle(forWritingAtPath: log) else { throw BuildError("cannot create \(log)") }
        p.standardOutput = logHandle
        p.standardError = logHandle
        let old = umask(0o022)
        defer { umask(old) }
        do { try p.run() } catch { throw BuildError("\(location)extraCommands: cannot start /bin/sh: \(error)") }
        p.waitUntilExit()
        try? logHandle.close()
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard p.terminationReason == .exit, p.terminationStatus == 0 else {
            let tail = output.split(separator: "\n").suffix(3).joined(separator: " | ")
            let how = p.terminationReason == .exit ? "exit status \(p.terminationStatus)" : "signal \(p.terminationStatus)"
            throw BuildError("\(location)extraCommands failed with \(how)" + (tail.isEmpty ? "" : "; last output: \(tail)"))
        }
        if !output.isEmpty { TerminalScreen.shared.write(output) }
        return try FileTree.readBack(from: root, previous: tree)
    }
}
