#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// `image.lock.json`: the resolved packages of a spec, per architecture, with everything
/// needed to fetch and verify them again without any index: Kiln's answer to
/// `flake.lock` and apko's lock file. Written by `kiln lock`, read by `kiln build`.
public struct PackageLock: Codable, Sendable, Equatable {
    public var lockVersion: Int = 1
    /// What the spec asked for when the lock was made; `kiln build --locked` compares it.
    public var inputs: Inputs
    /// The repositories packages were resolved from, in the spec's order.
    public var repositories: [Repository]
    /// Architecture (`amd64`, …) → resolved packages, sorted by name.
    public var packages: [String: [LockedPackage]]

    public struct Inputs: Codable, Sendable, Equatable {
        /// `packages` as written (`name` or `name=version`).
        public var packages: [String]
        public var recommends: Bool
        /// Each entry of `repositories`: `host`, or `URL SUITE COMPONENTS keyring=PATH`.
        public var repositories: [String]
    }

    public struct Repository: Codable, Sendable, Equatable {
        public var uri: String
        public var suite: String
        public var components: [String]
        /// sha256 of the InRelease (or Release) the packages were resolved against.
        public var release: String
        /// The Release's `Date`.
        public var date: String?
    }

    public init(inputs: Inputs, repositories: [Repository], packages: [String: [LockedPackage]]) {
        self.inputs = inputs
        self.repositories = repositories
        self.packages = packages
    }

    /// The lock file of a spec: `image.yaml` → `image.lock.json`.
    public static func defaultPath(forSpec specPath: String) -> String {
        let slash = specPath.lastIndex(of: "/").map { specPath.index(after: $0) } ?? specPath.startIndex
        var base = String(specPath[slash...])
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
        return String(specPath[..<slash]) + base + ".lock.json"
    }

    /// The lock's inputs for a spec.
    public static func inputs(of spec: Spec) -> Inputs {
        Inputs(packages: spec.packages.map { p in p.version.map { "\(p.name)=\($0)" } ?? p.name },
               recommends: spec.recommends,
               repositories: spec.repositories.map { r in
                   switch r {
                   case .host: return "host"
                   case .explicit(let url, let suite, let components, let keyring, _):
                       // Relative to the spec, so a checkout elsewhere has the same lock.
                       let dir = spec.directory.hasSuffix("/") ? spec.directory : spec.directory + "/"
                       let shown = keyring.hasPrefix(dir) ? String(keyring.dropFirst(dir.count)) : keyring
                       return ([url, suite] + components).joined(separator: " ") + " keyring=" + shown
                   }
               })
    }

    /// What differs between the lock's inputs and the spec's, one phrase per difference;
    /// empty when the lock is current.
    public func differences(from spec: Spec, architecture: String) -> [String] {
        let want = PackageLock.inputs(of: spec)
        var out: [String] = []
        let had = Set(inputs.packages), now = Set(want.packages)
        let added = now.subtracting(had).sorted(), removed = had.subtracting(now).sorted()
        if !added.isEmpty { out.append("packages added to the spec: \(added.joined(separator: ", "))") }
        if !removed.isEmpty { out.append("packages removed from the spec: \(removed.joined(separator: ", "))") }
        if inputs.recommends != want.recommends { out.append("recommends changed to \(want.recommends)") }
        if inputs.repositories != want.repositories { out.append("repositories changed") }
        if packages[architecture] == nil { out.append("no packages locked for \(architecture)") }
        return out
    }

    /// Reads a lock file; nil when there is none.
    public static func read(_ path: String) throws -> PackageLock? {
        guard access(path, F_OK) == 0 else { return nil }
        let bytes: [UInt8]
        do { bytes = try FileReader(path: path).readAll(limit: 256 << 20) } catch { throw BuildError("\(path): \(error)") }
        do {
            let lock = try CanonicalJSON.decode(PackageLock.self, from: bytes, what: path)
            guard lock.lockVersion == 1 else { throw BuildError("\(path): lock version \(lock.lockVersion) is newer than this Kiln understands") }
            return lock
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError("\(path): not a Kiln lock file: \(error)")
        }
    }

    /// Writes the lock (indented, keys sorted, one package per block) through a temp
    /// file and a rename, so a failure leaves the old lock as it was.
    public func write(to path: String) throws {
        let bytes = PackageLock.indent(try CanonicalJSON.encode(self)) + [UInt8(ascii: "\n")]
        do { try FileSystem.writeAtomically(bytes, to: path) } catch { throw BuildError("cannot write \(path): \(error)") }
    }

    /// Two-space indentation of canonical (compact, key-sorted) JSON, so lock files
    /// diff line by line in review. Pure byte rewriting: the same lock, the same bytes.
    static func indent(_ json: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(json.count * 2)
        var depth = 0
        var inString = false, escaped = false
        func newline() { out.append(10); out.append(contentsOf: [UInt8](repeating: 32, count: depth * 2)) }
        var i = 0
        while i < json.count {
            let c = json[i]
            if inString {
                out.append(c)
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inString = false }
                i += 1
                continue
            }
            switch c {
            case UInt8(ascii: "\""):
                inString = true
                out.append(c)
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let close: UInt8 = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if i + 1 < json.count, json[i + 1] == close {
                    out.append(c); out.append(close)
                    i += 2
                    continue
                }
                out.append(c)
                depth += 1
                newline()
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                newline()
                out.append(c)
            case UInt8(ascii: ","):
                out.append(c)
                newline()
            case UInt8(ascii: ":"):
                out.append(c)
                out.append(32)
            default:
                out.append(c)
            }
            i += 1
        }
        return out
    }
}

/// One resolved package: enough to fetch it by file name and check it by digest.
public struct LockedPackage: Codable, Sendable, Hashable {
    public var name: String
    public var version: String
    public var architecture: String
    public var source: String
    public var sourceVersion: String
    /// Index into the lock's `repositories`.
    public var repository: Int
    /// The path below the repository's URI (`pool/main/p/python3.11/…deb`).
    public var filename: String
    public var size: Int64
    public var sha256: String
    /// Names of the other resolved packages that depend on this one: its popularity,
    /// which orders the package layers.
    public var requiredBy: [String]

    public init(name: String, version: String, architecture: String, source: String, sourceVersion: String,
                repository: Int, filename: String, size: Int64, sha256: String, requiredBy: [String]) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.source = source
        self.sourceVersion = sourceVersion
        self.repository = repository
        self.filename = filename
        self.size = size
        self.sha256 = sha256
        self.requiredBy = requiredBy
    }
}
