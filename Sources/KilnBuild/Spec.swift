import Foundation
import KilnOCI

/// A build spec: what `kiln build` reads from a YAML (or JSON) file. The keys follow
/// Nix's `dockerTools.buildImage`; see `SpecParser.swift` for the syntax and the checks.
///
/// Every value here is already validated and normalised; defaults are filled in except
/// where the builder has to decide (`tag`, `architecture`, `mtime`).
public struct Spec: Sendable, Equatable {
    /// The spec file as named by the caller (used in messages).
    public var path: String
    /// The spec file, absolute.
    public var fileURL: URL
    /// The absolute directory of the spec file; relative content paths are resolved against it.
    public var directory: String

    /// Repository name, e.g. `example/hello` (validated with `ReferenceGrammar.validateName`).
    public var name: String
    /// Image tag; nil when the spec has none (the builder derives one).
    public var tag: String?
    /// GOARCH name (`amd64`, `arm64`, …); nil when the spec has none (the builder picks the host's).
    public var architecture: String?
    /// GOOS name, `linux` by default.
    public var os: String
    /// Platform variant (`v7`, `v8`, …), free-form.
    public var variant: String?
    /// The image's creation time. Defaults to `SOURCE_DATE_EPOCH` from the environment,
    /// else 1970-01-01T00:00:01Z.
    public var created: CreatedTime
    /// The modification time of the layer's files. nil means "the same as `created`":
    /// when `created` is `.now` the builder must use the very same instant for both
    /// (see `effectiveMtime`).
    public var mtime: CreatedTime?
    /// Layer contents, in order (later items overwrite earlier ones).
    public var contents: [ContentItem]
    public var users: [User]
    public var groups: [Group]
    public var perms: [Permission]
    /// A shell script run in the staged root (dockerTools' `extraCommands`).
    public var extraCommands: String?
    /// Whether to record extended attributes of host files (default false).
    public var xattrs: Bool
    /// Layer compression (default gzip).
    public var compressor: Compressor
    /// The OCI image config's `config` object.
    public var config: ContainerConfig
    /// Where each top-level key of the spec is, by key name (for the builder's messages).
    public var keyLocations: [String: SourceLocation]
    /// `fromImage`: the base image, in transport syntax (local paths made absolute).
    public var fromImage: String? = nil
    /// `fromImageName` / `fromImageTag`: which image of a multi-image archive to use.
    public var fromImageName: String? = nil
    public var fromImageTag: String? = nil
    /// `runAsRoot`: a script run as root in a sandbox over the image; its changes are a layer.
    public var runAsRoot: String? = nil
    /// `maxLayers`: the most layers the image may have, base layers included (default 100).
    public var maxLayers: Int = 100
    /// `layering` or `layers`: how the new files are split into layers (default single).
    public var layering: LayeringStrategy = .single
    /// Runtimes stack at most this many layers (the overlay mount's limit).
    public static let layerLimit = 125
    /// `runAsRootNetwork`: let the script use the host's network (default false).
    public var runAsRootNetwork: Bool = false
    /// `repositories`: the signed apt repositories `packages` come from, in order.
    public var repositories: [RepositorySpec] = []
    /// `packages`: Debian packages installed into the image with their dependencies, in order.
    public var packages: [PackageSpec] = []
    /// `recommends`: also install the packages' Recommends (default false, as with
    /// `apt-get --no-install-recommends`).
    public var recommends: Bool = false
    /// `configure`: run `dpkg --configure -a` through the runAsRoot sandbox when the image
    /// has dpkg, so maintainer scripts run (default false: packages are only unpacked).
    public var configure: Bool = false
    /// `runAsRootCache`: reuse the runAsRoot layer of an earlier build when everything the
    /// script sees is unchanged (default true; `false` always runs the script).
    public var runAsRootCache: Bool = true
    /// `scrub`: remove the volatile files package managers leave (apt's binary caches, logs,
    /// `-old` files, ldconfig's aux-cache…) from the runAsRoot layer (default true).
    public var scrub: Bool = true
    /// `onConflict`: what a content item may do to a base file it would replace with other
    /// bytes, unless the item says otherwise (default `.error`).
    public var onConflict: ConflictPolicy = .error
    /// `platforms`: one image per platform, in this order, under one image index (see
    /// SpecParser+Platform.swift); empty when the spec names none (one image, for
    /// `architecture`/`os`/`variant` or the host). Written into the index as listed.
    public var platforms: [Platform] = []
    /// `sysroots`: for a platform of `platforms`, the absolute host directory holding a
    /// root file system of that platform, where its `closure:` and `source:` items are
    /// looked up (existence is checked at build time).
    public var sysroots: [Platform: String] = [:]

    public init(path: String, fileURL: URL, directory: String, name: String, tag: String? = nil,
                architecture: String? = nil, os: String = "linux", variant: String? = nil,
                created: CreatedTime = .fixed(epochSeconds: 1, rfc3339: "1970-01-01T00:00:01Z"),
                mtime: CreatedTime? = nil, contents: [ContentItem] = [], users: [User] = [],
                groups: [Group] = [], perms: [Permission] = [], extraCommands: String? = nil,
                xattrs: Bool = false, compressor: Compressor = .gzip, config: ContainerConfig = ContainerConfig(),
                keyLocations: [String: SourceLocation] = [:]) {
        self.path = path
        self.fileURL = fileURL
        self.directory = directory
        self.name = name
        self.tag = tag
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.created = created
        self.mtime = mtime
        self.contents = contents
        self.users = users
        self.groups = groups
        self.perms = perms
        self.extraCommands = extraCommands
        self.xattrs = xattrs
        self.compressor = compressor
        self.config = config
        self.keyLocations = keyLocations
    }

    /// `mtime`, or `created` when the spec has no `mtime`.
    public var effectiveMtime: CreatedTime { mtime ?? created }

    /// A user written to `/etc/passwd` (and `/etc/shadow`).
    public struct User: Sendable, Hashable {
        public var name: String
        public var uid: Int
        /// Defaults to `uid`.
        public var gid: Int
        /// Defaults to `/home/NAME`, or `/root` for `root`.
        public var home: String
        /// Defaults to `/bin/sh`.
        public var shell: String
        public var location: SourceLocation

        public init(name: String, uid: Int, gid: Int, home: String, shell: String, location: SourceLocation) {
            self.name = name
            self.uid = uid
            self.gid = gid
            self.home = home
            self.shell = shell
            self.location = location
        }
    }

    /// A group written to `/etc/group`.
    public struct Group: Sendable, Hashable {
        public var name: String
        public var gid: Int
        /// User names, as written (not checked against `users`: they may come from `contents`).
        public var members: [String]
        public var location: SourceLocation

        public init(name: String, gid: Int, members: [String] = [], location: SourceLocation) {
            self.name = name
            self.gid = gid
            self.members = members
            self.location = location
        }
    }

    /// An ownership/mode override applied to the paths matching `path`.
    public struct Permission: Sendable, Hashable {
        /// An absolute path inside the image; may contain glob characters (`*`, `?`, `[…]`).
        public var path: String
        /// Permission bits, at most 0o7777.
        public var mode: UInt32?
        public var uid: Int?
        public var gid: Int?
        public var location: SourceLocation

        public init(path: String, mode: UInt32? = nil, uid: Int? = nil, gid: Int? = nil, location: SourceLocation) {
            self.path = path
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.location = location
        }
    }

    /// How layers are compressed.
    public enum Compressor: String, Sendable, Hashable, CaseIterable {
        case gzip, zstd, none
    }
}

/// One item of `repositories`.
public enum RepositorySpec: Sendable, Hashable {
    /// `host`: the host's apt sources (`/etc/apt/sources.list`, `/etc/apt/sources.list.d`)
    /// with their `Signed-By` keyrings.
    case host(location: SourceLocation)
    /// An explicit repository with deb822 semantics (sources.list(5)): `url` is
    /// `http://…`, `https://…` or `file:/…`; a `suite` ending in `/` names a flat
    /// repository and then `components` is empty; `keyring` is an absolute host path
    /// (relative paths are resolved against the spec's directory; existence is checked
    /// when the repository is used).
    case explicit(url: String, suite: String, components: [String], keyring: String, location: SourceLocation)
}

/// One item of `packages`: `name` or `name=version`.
public struct PackageSpec: Sendable, Hashable {
    /// A Debian package name (Debian Policy §5.6.1).
    public var name: String
    /// An exact version to install; only its characters are checked here (Policy §5.6.12).
    public var version: String?
    public var location: SourceLocation

    public init(name: String, version: String? = nil, location: SourceLocation) {
        self.name = name
        self.version = version
        self.location = location
    }
}

/// A point in a spec file.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// The spec file as named by the caller.
    public var file: String
    /// 1-based.
    public var line: Int
    /// 1-based, in Unicode scalars.
    public var column: Int

    public init(file: String, line: Int, column: Int = 1) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `FILE:LINE`, the prefix of spec error messages.
    public var description: String { "\(file):\(line)" }
}

/// The `created` (or `mtime`) time of an image.
public enum CreatedTime: Sendable, Hashable {
    /// A fixed time: whole seconds since the epoch (rounded down) and the canonical UTC
    /// RFC 3339 form `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (a fraction only when non-zero).
    case fixed(epochSeconds: Int64, rfc3339: String)
    /// The time of the build (not reproducible); resolved by the builder.
    case now

    /// A fixed time at whole seconds since the epoch.
    public static func at(epochSeconds: Int64) -> CreatedTime {
        .fixed(epochSeconds: epochSeconds, rfc3339: RFC3339.format(epochSeconds: epochSeconds))
    }
}

/// RFC 3339 timestamps in UTC, independent of the locale and the TZ variable.
public enum RFC3339 {
    /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` for whole seconds since 1970-01-01T00:00:00Z.
    public static func format(epochSeconds: Int64, fraction: String = "") -> String {
        let days = floorDiv(epochSeconds, 86_400)
        let secs = epochSeconds - days * 86_400
        let (y, m, d) = civil(fromDays: days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        let frac = fraction.isEmpty ? "" : "." + fraction
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secs / 3600, 2)):\(pad(secs / 60 % 60, 2)):\(pad(secs % 60, 2))\(frac)Z"
    }

    /// Parses `YYYY-MM-DD(T|t| )HH:MM:SS[.fraction](Z|z|±HH:MM)`. Returns nil when the text
    /// is not such a timestamp or names an impossible date.
    public static func parse(_ text: String) -> CreatedTime? {
        let c = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int64? {
            guard i + n <= c.count else { return nil }
            var v: Int64 = 0
            for k in i..<(i + n) {
                guard (48...57).contains(c[k]) else { return nil }
                v = v * 10 + Int64(c[k] - 48)
            }
            i += n
            return v
        }
        func expect(_ chars: String) -> Bool {
            guard i < c.count, chars.utf8.contains(c[i]) else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect("-"), let month = digits(2), expect("-"), let day = digits(2),
              expect("Tt "), let hour = digits(2), expect(":"), let minute = digits(2), expect(":"),
              let second = digits(2) else { return nil }
        var fraction = ""
        if i < c.count, c[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < c.count, (48...57).contains(c[i]) { i += 1 }
            guard i > start else { return nil }
            fraction = String(decoding: c[start..<i], as: UTF8.self)
            while fraction.hasSuffix("0") { fraction.removeLast() }
        }
        var offset: Int64 = 0
        if expect("Zz") {
        } else if i < c.count, c[i] == UInt8(ascii: "+") || c[i] == UInt8(ascii: "-") {
            let sign: Int64 = c[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(":"), let om = digits(2), oh <= 23, om <= 59 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == c.count else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
              hour <= 23, minute <= 59, second <= 59 else { return nil }
        let epoch = days(fromCivil: year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        return .fixed(epochSeconds: epoch, rfc3339: format(epochSeconds: epoch, fraction: fraction))
    }

    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func isLeap(_ y: Int64) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ y: Int64, _ m: Int64) -> Int64 {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = (m + 9) % 12
        let doy = (153 * mp + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The inverse of `days(fromCivil:)`.
    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// One item of `contents`.
public struct ContentItem: Sendable, Hashable {
    public enum Kind: Sendable, Hashable {
        /// A plain string item: a host directory whose contents are merged into `/`
        /// (or into `target`).
        case directory
        /// `source:` a host file or directory copied to `target`.
        case source
        /// `archive:` a tar archive (possibly compressed) unpacked at `target`.
        case archive
        /// `closure:` a store path whose closure is copied in.
        case closure
        /// `swift:` a SwiftPM executable product, built in release (`swift`), added with
        /// its closure and resource bundles; `path` is the package directory.
        case swift
    }

    public var kind: Kind
    /// The host path, absolute: relative paths are resolved against the spec's directory
    /// and cleaned lexically.
    public var path: String
    /// Where in the image: a cleaned absolute path (a trailing `/` as written is kept);
    /// nil when the spec names none.
    public var target: String?
    public var location: SourceLocation
    /// `onConflict` of this item; nil: the spec's.
    public var onConflict: ConflictPolicy?
    /// `isolate: true` (closure items only): the program and its closure go into a private
    /// directory, started through its own dynamic loader, so they never touch the base's libraries.
    public var isolate: Bool
    /// `swift:` items only: the product and how to build it (see SwiftProduct.swift).
    public var swift: SwiftProductSpec?

    public init(kind: Kind, path: String, target: String? = nil, location: SourceLocation,
                onConflict: ConflictPolicy? = nil, isolate: Bool = false, swift: SwiftProductSpec? = nil) {
        self.kind = kind
        self.path = path
        self.target = target
        self.location = location
        self.onConflict = onConflict
        self.isolate = isolate
        self.swift = swift
    }
}

/// What a content item does to a base file that it would replace with different bytes,
/// mode or owner (`onConflict`).
public enum ConflictPolicy: String, Sendable, Hashable, CaseIterable {
    /// Refuse to build, naming the paths (the default: a base is never broken silently).
    case error
    /// The item's file replaces the base's.
    case replace
    /// The base's file stays; the item's is left out.
    case keep
}
