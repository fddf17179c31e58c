#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import KilnOCI
import Yams

// Spec syntax (YAML, or JSON since JSON is YAML):
//
//   name: example/hello            # required
//   tag: "1.0"                     # optional
//   architecture: amd64            # GOARCH name, optional
//   os: linux                      # default linux
//   variant: v8                    # optional
//   created: 2024-01-01T00:00:00Z  # RFC 3339 or `now`; default $SOURCE_DATE_EPOCH, else epoch 1
//   mtime: now                     # same syntax; default: the created time
//   contents:
//     - ./rootfs                   # a directory merged into /
//     - source: ./app              # or archive: / closure:, exactly one
//       target: /opt/app
//   users:  [{name: app, uid: 1000, gid: 1000, home: /home/app, shell: /bin/sh}]
//   groups: [{name: app, gid: 1000, members: [app]}]
//   perms:  [{path: "/opt/app/*", mode: "0755", uid: 1000, gid: 1000}]
//   extraCommands: |
//     mkdir -p tmp
//   xattrs: false
//   compressor: gzip               # gzip, zstd or none
//   config: {Entrypoint: [...], Cmd: [...], Env: [K=V], ...}   # Docker names
//   fromImage: oci-archive:base.tar:v1  # a base image, any transport; its layers are reused
//   fromImageName: example/base         # choose among the images of one archive
//   fromImageTag: v1
//   runAsRoot: |                        # run as root in namespaces over an overlayfs of the image
//     useradd -m app
//   runAsRootNetwork: false             # default false: no network for runAsRoot
//   maxLayers: 100                      # base layers included
//   layering: auto                      # single (default), auto, popularity or packages; or
//   layers: [[/usr/lib/*], /opt/app]    #   explicit groups of globs
//   repositories:                       # signed apt repositories (see SpecParser+Packages.swift)
//     - host                            # the host's apt sources and their Signed-By keyrings
//     - url: https://deb.example/debian
//       suite: bookworm                 # a suite ending in `/` is a flat repository
//       components: [main]
//       keyring: keys/archive.gpg
//   packages: [python3, tzdata=2025b-0+deb12u1]   # `layering` then defaults to packages
//   recommends: false                   # default false
//   configure: false                    # default false: `dpkg --configure -a` in the sandbox
//   runAsRootCache: true                # default true: reuse an unchanged runAsRoot layer
//   scrub: true                         # default true: drop apt/dpkg logs and caches from it
//   onConflict: error                   # error (default), replace or keep: contents vs base files
//                                       # (also per item, with `isolate: true` for closures)
//
// Every error reads `FILE:LINE: KEY: what is wrong`, KEY being a path such as
// `config.Env[2]` (list indices count from 0).

extension Spec {
    /// Reads and parses the spec file at `path`.
    public static func load(path: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Spec {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw BuildError("\(path): cannot read the spec file: \(String(cString: strerror(errno)))")
        }
        close(fd)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw BuildError("\(path): cannot read the spec file: \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BuildError("\(path): the spec file is not valid UTF-8")
        }
        return try parse(text: text, path: path, environment: environment)
    }

    /// Parses spec text. `path` names the file in messages and, made absolute, gives the
    /// directory that relative content paths are resolved against.
    /// `environment` supplies `SOURCE_DATE_EPOCH`.
    public static func parse(text: String, path: String, environment: [String: String] = [:]) throws -> Spec {
        try SpecParser(text: text, path: path, environment: environment).parse()
    }
}

// MARK: - Parser

struct SpecParser {
    let file: String
    let text: String
    let environment: [String: String]
    let absolutePath: String
    let directory: String

    init(text: String, path: String, environment: [String: String]) {
        self.file = path
        self.text = text
        self.environment = environment
        var abs = path
        if !abs.hasPrefix("/") {
            abs = FileManager.default.currentDirectoryPath + "/" + abs
        }
        abs = SpecPaths.clean(abs)
        self.absolutePath = abs
        if let slash = abs.lastIndex(of: "/"), slash != abs.startIndex {
            self.directory = String(abs[..<slash])
        } else {
            self.directory = "/"
        }
    }

    // MARK: Top level

    static let topKeys = ["name", "tag", "architecture", "os", "variant", "created", "mtime", "contents",
                          "users", "groups", "perms", "extraCommands", "xattrs", "compressor", "config",
                          "fromImage", "fromImageName", "fromImageTag", "runAsRoot", "runAsRootNetwork",
                          "maxLayers", "layering", "layers", "repositories", "packages", "recommends", "configure",
                          "runAsRootCache", "scrub", "onConflict", "platforms", "sysroots"]

    func parse() throws -> Spec {
        let composed: Node?
        do {
            composed = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw yamlError(error)
        }
        guard let root = composed, !isNull(root) else {
            throw BuildError("\(file):1: the spec is empty (expected a map with at least a `name` key)")
        }
        guard case .mapping = root else {
            throw BuildError("\(file):\(line(root)): expected a map at the top level, got \(describe(root))")
        }
        let f = try fields(root, at: "", allowed: Self.topKeys)

        var locations: [String: SourceLocation] = [:]
        for (name, entry) in f.entries {
            locations[name] = location(entry.key)
        }

        guard let nameNode = f["name"] else { throw f.missing("name", "the image name, e.g. `example/hello`", self) }
        let name = try string(nameNode, "name")
        do {
            try ReferenceGrammar.validateName(name)
        } catch let e as OCIError {
            throw fail(nameNode, "name", e.description)
        }

        var tag: String?
        if let n = f["tag"] {
            let t = try string(n, "tag")
            do {
                try ReferenceGrammar.validateTag(t)
            } catch let e as OCIError {
                throw fail(n, "tag", e.description)
            }
            tag = t
        }

        let architecture = try f["architecture"].map { try parseArchitecture($0) }
        let os = try f["os"].map { try parseOS($0) } ?? "linux"
        var variant: String?
        if let n = f["variant"] {
            let v = try string(n, "variant")
            guard !v.isEmpty else { throw fail(n, "variant", "must not be empty") }
            variant = v
        }

        let created = try f["created"].map { try parseTime($0, "created") } ?? defaultCreated()
        let mtime = try f["mtime"].map { try parseTime($0, "mtime") }

        let contents = try f["contents"].map { try parseContents($0) } ?? []
        let users = try f["users"].map { try parseUsers($0) } ?? []
        let groups = try f["groups"].map { try parseGroups($0) } ?? []
        let perms = try f["perms"].map { try parsePerms($0) } ?? []
        let extraCommands = try f["extraCommands"].map { try string($0, "extraCommands") }
        let xattrs = try f["xattrs"].map { try bool($0, "xattrs") } ?? false

        var compressor = Spec.Compressor.gzip
        if let n = f["compressor"] {
            let s = try string(n, "compressor")
            guard let c = Spec.Compressor(rawValue: s) else {
                throw fail(n, "compressor", "unknown compressor `\(s)`"
                    + hint(s, Spec.Compressor.allCases.map(\.rawValue), expected: "gzip, zstd or none"))
            }
            compressor = c
        }

        let config = try f["config"].map { try parseConfig($0) } ?? ContainerConfig()

        var spec = Spec(path: file, fileURL: URL(fileURLWithPath: absolutePath), directory: directory,
                    name: name, tag: tag, architecture: architecture, os: os, variant: variant,
                    created: created, mtime: mtime, contents: contents, users: users, groups: groups,
                    perms: perms, extraCommands: extraCommands, xattrs: xattrs, compressor: compressor,
                    config: config, keyLocations: locations)
        // Base image and runAsRoot (see BaseImage.swift, RunAsRoot.swift).
        if let n = f["fromImage"] {
            let s = try string(n, "fromImage")
            do {
                spec.fromImage = try BaseReference.resolve(s, relativeTo: directory)
            } catch {
                throw fail(n, "fromImage", "\(error)")
            }
        }
        for key in ["fromImageName", "fromImageTag"] {
            guard let n = f[key] else { continue }
            let s = try string(n, key)
            guard spec.fromImage != nil else { throw fail(n, key, "needs `fromImage` (the archive to choose from)") }
            do {
                if key == "fromImageName" { try ReferenceGrammar.validateName(s) } else { try ReferenceGrammar.validateTag(s) }
            } catch let e as OCIError {
                throw fail(n, key, e.description)
            }
            if key == "fromImageName" { spec.fromImageName = s } else { spec.fromImageTag = s }
        }
        // Layering (see Layering.swift).
        if let n = f["maxLayers"] {
            let v = try integer(n, "maxLayers", max: Int.max)
            guard (1...Spec.layerLimit).contains(v) else {
                throw fail(n, "maxLayers", "must be 1 to \(Spec.layerLimit) (overlay mounts fail beyond that), base layers included")
            }
            spec.maxLayers = v
        }
        if let n = f["layering"] {
            let s = try string(n, "layering")
            let all = ["auto", "popularity", "single", "packages"]
            switch s {
            case "auto": spec.layering = .auto
            case "popularity": spec.layering = .popularity
            case "single": spec.layering = .single
            case "packages": spec.layering = .packages
            default: throw fail(n, "layering", "unknown strategy `\(s)`" + hint(s, all, expected: "auto, popularity, single or packages"))
            }
        }
        if let n = f["layers"] {
            guard f["layering"] == nil else { throw fail(n, "layers", "an explicit `layers` list replaces `layering`; give one of them") }
            var groups: [[String]] = []
            for (i, item) in try list(n, "layers", itemHint: "a glob or a list of globs").enumerated() {
                let globs = try (try? stringList(item, "layers[\(i)]")) ?? [string(item, "layers[\(i)]")]
                for g in globs where !g.hasPrefix("/") {
                    throw fail(item, "layers[\(i)]", "`\(g)` must be an absolute path or glob")
                }
                groups.append(globs)
            }
            spec.layering = .explicit(groups)
        }
        // Debian packages (see SpecParser+Packages.swift).
        try parsePackageKeys(f, into: &spec)
        if let n = f["runAsRoot"] { spec.runAsRoot = try string(n, "runAsRoot") }
        if let n = f["runAsRootNetwork"] {
            spec.runAsRootNetwork = try bool(n, "runAsRootNetwork")
            guard spec.runAsRoot != nil else { throw fail(n, "runAsRootNetwork", "has no effect without `runAsRoot`") }
        }
        for key in ["runAsRootCache", "scrub"] {
            guard let n = f[key] else { continue }
            let value = try bool(n, key)
            if key == "scrub" { spec.scrub = value } else { spec.runAsRootCache = value }
            guard spec.runAsRoot != nil || spec.configure else {
                throw fail(n, key, "has no effect without `runAsRoot` (or `configure: true`)")
            }
        }
        if let n = f["onConflict"] { spec.onConflict = try conflictPolicy(n, "onConflict") }
        // Platforms and their sysroots (see SpecParser+Platform.swift).
        try parsePlatformKeys(f, into: &spec)
        return spec
    }
}
