#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnOCI

/// One apt source with deb822 semantics (sources.list(5) "DEB822-STYLE FORMAT"); one-line
/// entries are converted. Only `Types: deb` entries are kept: Kiln installs binaries.
public struct AptSource: Sendable, Hashable {
    /// Without a trailing slash: `https://deb.debian.org/debian`, `file:/srv/repo`.
    public var uri: String
    /// `bookworm`, or for a flat repository a path ending in `/` (`./`).
    public var suite: String
    /// Empty for flat repositories.
    public var components: [String]
    /// Keyring files (an inline key is written out to a file first); empty means apt's
    /// trusted keyrings (`AptSources.trustedKeyrings`).
    public var signedBy: [String]
    /// The `Architectures` option when given.
    public var architectures: [String]?
    /// Where it was defined: `/etc/apt/sources.list.d/debian.sources:3`, `image.yaml:5: repositories[1]`.
    public var origin: String

    public init(uri: String, suite: String, components: [String], signedBy: [String] = [],
                architectures: [String]? = nil, origin: String) {
        self.uri = uri
        self.suite = suite
        self.components = components
        self.signedBy = signedBy
        self.architectures = architectures
        self.origin = origin
    }

    /// A flat repository (sources.list(5): "suite … may also specify an exact path, in
    /// which case the components must be omitted and suite must end with a slash").
    public var isFlat: Bool { suite.hasSuffix("/") }
}

/// Reading apt's source lists.
public enum AptSources {
    /// The host's sources as apt reads them: `etc/apt/sources.list`, then
    /// `etc/apt/sources.list.d/*.list` (one-line) and `*.sources` (deb822) in name order.
    /// Other suffixes are ignored, and so are names with characters apt ignores
    /// (anything but letters, digits, `_`, `-`, `.`). `Enabled: no` entries are skipped.
    /// With a `root` other than `/`, absolute Signed-By paths are taken under it too, as
    /// if the root were the file system (so a test's fake root is self-contained).
    public static func host(root: String = "/") throws -> [AptSource] {
        var out: [AptSource] = []
        let main = join(root, "/etc/apt/sources.list")
        if let text = try readIfExists(main) {
            out += try parseOneLine(text, file: main)
        }
        let dir = join(root, "/etc/apt/sources.list.d")
        let names = (try? FileSystem.listDirectory(dir)) ?? []
        for name in names where name.allSatisfy(isAptFileNameCharacter) {
            let path = dir + "/" + name
            if name.hasSuffix(".list"), let text = try readIfExists(path) {
                out += try parseOneLine(text, file: path)
            } else if name.hasSuffix(".sources"), let text = try readIfExists(path) {
                out += try parseDeb822(text, file: path)
            }
        }
        if root != "/" && !root.isEmpty {
            for i in out.indices {
                out[i].signedBy = out[i].signedBy.map { $0.hasPrefix(inlineKeyDirectory) ? $0 : join(root, $0) }
            }
        }
        return out
    }

    /// One-line entries: `deb [ option=value … ] uri suite [component …]`; `#` starts a
    /// comment; `deb-src` lines are skipped. Options read: `arch=`, `signed-by=`;
    /// others (`trusted=`, `lang=`, `arch+=` …) are ignored: Kiln never skips
    /// verification.
    public static func parseOneLine(_ text: String, file: String) throws -> [AptSource] {
        var out: [AptSource] = []
        var lineNo = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            let origin = "\(file):\(lineNo)"
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            var rest = Substring(line.repoTrimmed())
            if rest.isEmpty { continue }
            let type = rest.prefix { !$0.isWhitespace }
            rest = Substring(rest.dropFirst(type.count).repoTrimmed())
            var options: [(String, String)] = []
            if rest.hasPrefix("[") {
                guard let close = rest.firstIndex(of: "]") else {
                    throw RepositoryError.malformed(file, line: lineNo, reason: "option list without ']'")
                }
                for opt in rest[rest.index(after: rest.startIndex)..<close].split(whereSeparator: \.isWhitespace) {
                    guard let eq = opt.firstIndex(of: "=") else {
                        throw RepositoryError.malformed(file, line: lineNo, reason: "option '\(opt)' is not key=value")
                    }
                    options.append((opt[..<eq].lowercased(), String(opt[opt.index(after: eq)...])))
                }
                rest = Substring(rest[rest.index(after: close)...].repoTrimmed())
            }
            let words = rest.split(whereSeparator: \.isWhitespace).map(String.init)
            switch type {
            case "deb": break
            case "deb-src": continue
            default: throw RepositoryError.malformed(file, line: lineNo, reason: "unknown type '\(type)'")
            }
            guard words.count >= 2 else {
                throw RepositoryError.malformed(file, line: lineNo, reason: "expected 'deb URI SUITE [COMPONENT…]'")
            }
            var signedBy: [String] = []
            var arch: [String]?
            for (key, value) in options {
                switch key {
                case "signed-by": signedBy += try keyrings(value, origin: origin, file: file, line: lineNo)
                case "arch": arch = value.split(separator: ",").map(String.init)
                default: break
                }
            }
            out.append(try make(uri: words[0], suite: words[1], components: Array(words.dropFirst(2)),
                                signedBy: signedBy, architectures: arch, origin: origin, file: file, line: lineNo))
        }
        return out
    }

    /// deb822 entries: `Types`, `URIs`, `Suites`, `Components`, `Signed-By` (paths, or an
    /// inline armored key block), `Architectures`, `Enabled`. One entry gives one source
    /// per URI and suite, in that order.
    public static func parseDeb822(_ text: String, file: String) throws -> [AptSource] {
        var out: [AptSource] = []
        for stanza in try RepositoryFields.parse(text, origin: file) {
            let origin = "\(file):\(stanza.line)"
            if let enabled = stanza.value("Enabled"), enabled.lowercased() == "no" { continue }
            let types = words(stanza.value("Types"))
            guard !types.isEmpty else {
                throw RepositoryError.malformed(file, line: stanza.line, reason: "entry without Types")
            }
            for t in types where t != "deb" && t != "deb-src" {
                throw RepositoryError.malformed(file, line: stanza.line, reason: "unknown type '\(t)'")
            }
            guard types.contains("deb") else { continue }
            let uris = words(stanza.value("URIs"))
            let suites = words(stanza.value("Suites"))
            guard !uris.isEmpty, !suites.isEmpty else {
                throw RepositoryError.malformed(file, line: stanza.line, reason: "entry needs URIs and Suites")
            }
            var signedBy: [String] = []
            if let f = stanza.field("Signed-By") {
                signedBy = try keyrings(f.value, origin: origin, file: file, line: f.line)
            }
            let arch = stanza.value("Architectures").map(words)
            for uri in uris {
                for suite in suites {
                    out.append(try make(uri: uri, suite: suite, components: words(stanza.value("Components")),
                                        signedBy: signedBy, architectures: arch, origin: origin,
                                        file: file, line: stanza.line))
                }
            }
        }
        return out
    }

    /// apt's trusted keyrings, used for sources without Signed-By: `etc/apt/trusted.gpg`
    /// and `etc/apt/trusted.gpg.d/*.gpg` and `*.asc` under `root`, in name order.
    public static func trustedKeyrings(root: String = "/") -> [String] {
        var out: [String] = []
        let legacy = join(root, "/etc/apt/trusted.gpg")
        if access(legacy, R_OK) == 0 { out.append(legacy) }
        let dir = join(root, "/etc/apt/trusted.gpg.d")
        for name in (try? FileSystem.listDirectory(dir)) ?? []
        where (name.hasSuffix(".gpg") || name.hasSuffix(".asc")) && name.allSatisfy(isAptFileNameCharacter) {
            out.append(dir + "/" + name)
        }
        return out
    }

    // MARK: Helpers

    /// Where inline Signed-By keys are written: one file per key, named by its hash, so
    /// parsing the same sources twice reuses the file.
    static var inlineKeyDirectory: String {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        return tmp + "/kiln-apt-keys-\(getuid())"
    }

    private static func make(uri rawURI: String, suite: String, components: [String], signedBy: [String],
                             architectures: [String]?, origin: String, file: String, line: Int) throws -> AptSource {
        var uri = rawURI
        while uri.hasSuffix("/") && !uri.hasSuffix(":/") && !uri.hasSuffix("://") { uri.removeLast() }
        guard uri.contains(":") else {
            throw RepositoryError.malformed(file, line: line, reason: "'\(rawURI)' is not a URI")
        }
        if suite.hasSuffix("/") {
            guard components.isEmpty else {
                throw RepositoryError.malformed(file, line: line, reason: "a flat repository (suite '\(suite)') takes no components")
            }
        } else if components.isEmpty {
            throw RepositoryError.malformed(file, line: line, reason: "suite '\(suite)' needs at least one component")
        }
        return AptSource(uri: uri, suite: suite, components: components, signedBy: signedBy,
                         architectures: architectures, origin: origin)
    }

    /// A Signed-By value: an inline key block (written to a file), or keyring paths
    /// separated by commas or spaces. Key fingerprints are refused: gpgv cannot restrict a
    /// check to one key of a keyring, and trusting the whole keyring instead would widen
    /// what the entry trusts.
    private static func keyrings(_ value: String, origin: String, file: String, line: Int) throws -> [String] {
        if value.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
            return [try writeInlineKey(value, origin: origin)]
        }
        var out: [String] = []
        for item in value.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            let s = String(item)
            if s.hasPrefix("/") {
                out.append(s)
            } else if s.allSatisfy({ $0.isHexDigit || $0 == "!" }) && s.count >= 16 {
                throw RepositoryError.unsupported(origin, reason: "Signed-By key fingerprints are not supported; give a keyring file")
            } else {
                throw RepositoryError.malformed(file, line: line, reason: "Signed-By '\(s)' is not an absolute path")
            }
        }
        return out
    }

    private static func writeInlineKey(_ armored: String, origin: String) throws -> String {
        let text = armored.hasSuffix("\n") ? armored : armored + "\n"
        let bytes = Array(text.utf8)
        let dir = inlineKeyDirectory
        let path = dir + "/" + Digest.sha256(bytes).hex + ".asc"
        do {
            try FileSystem.makeDirectories(dir, mode: 0o700)
            // The directory is under a shared /tmp: use it only if it is ours and private,
            // so nobody else can put a key of their own under the expected name.
            var st = stat()
            guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == getuid(), st.st_mode & 0o077 == 0 else {
                throw RepositoryError.io(dir, reason: "not a private directory of this user; cannot keep inline Signed-By keys there")
            }
            if let existing = try? FileReader(path: path).readAll(limit: bytes.count + 1), existing == bytes { return path }
            let tmp = path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
            let w = try FileWriter(creating: tmp, mode: 0o600)
            try w.write(bytes)
            guard rename(tmp, path) == 0 else {
                let e = errno
                unlink(tmp)
                throw ArchiveError.io("cannot rename", path: tmp, errno: e)
            }
        } catch let e as RepositoryError {
            throw e
        } catch {
            throw RepositoryError.io(origin, reason: "cannot write the inline Signed-By key: \(error)")
        }
        return path
    }

    private static func words(_ value: String?) -> [String] {
        (value ?? "").split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// apt reads only files whose names are made of these (apt.conf(5), Dir::Ignore-Files-Silently).
    private static func isAptFileNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "_" || c == "-" || c == ".")
    }

    private static func join(_ root: String, _ path: String) -> String {
        if root.isEmpty || root == "/" { return path }
        return (root.hasSuffix("/") ? String(root.dropLast()) : root) + path
    }

    private static func readIfExists(_ path: String) throws -> String? {
        guard access(path, F_OK) == 0 else { return nil }
        do {
            let bytes = try FileReader(path: path).readAll(limit: 16 << 20)
            return String(decoding: bytes, as: UTF8.self)
        } catch {
            throw RepositoryError.io(path, reason: "\(error)")
        }
    }
}
