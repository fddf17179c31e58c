#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnOCI

/// A `swift:` content item's product: what `swift build --product` builds.
public struct SwiftProductSpec: Sendable, Hashable {
    /// The SwiftPM executable product, as `swift build --product` names it (and as its
    /// executable is named in the bin directory).
    public var product: String
    /// `static: true`: link the Swift runtime and Foundation into the executable
    /// (`--static-swift-stdlib`), so the closure is only the C libraries.
    public var staticStdlib: Bool

    public init(product: String, staticStdlib: Bool = false) {
        self.product = product
        self.staticStdlib = staticStdlib
    }

    /// Where the executable goes when the item names no `target`.
    public var defaultTarget: String { "/usr/local/bin/\(product)" }

    /// The environment variable the SwiftPM plugin (Plugins/BuildImage) sets to its
    /// package's directory: while `swift package` runs a command plugin it holds the lock
    /// of the package's `.build`, and a `swift build` there would wait for it forever. The
    /// outer process does nothing with `.build` until the plugin ends, so an item of that
    /// package builds with `--ignore-lock`, in the same `.build` as the developer's own
    /// release builds (incremental, its dependencies already checked out).
    public static let lockedPackageVariable = "KILN_SWIFT_LOCKED_PACKAGE"
}

/// `swift:` items. The product is built with `swift build -c release --product PRODUCT
/// --package-path DIR` (incremental: SwiftPM decides what is out of date), then added as a
/// `closure:` item is — the executable at `target`, every shared library it needs at its
/// host path (the toolchain's `usr/lib/swift/linux` is on the executable's RUNPATH, so
/// the libraries go where the RUNPATH looks) — and with the SwiftPM resource bundles its
/// targets use beside it.
///
/// Resource bundles: SwiftPM generates, for a target with resources, a `Bundle.module`
/// accessor that looks for `PACKAGE_TARGET.resources` in `Bundle.main.bundleURL` — on
/// Linux the directory of the executable — and then at the bundle's absolute path in
/// the build directory (which does not exist in the image). Both names are string
/// literals in the executable, so a bundle of the bin directory belongs to the product
/// exactly when its absolute build path appears in the executable's bytes: that covers
/// the product's own targets and those of its dependencies, and leaves out bundles of
/// other products (no `swift package describe` needed).
///
/// The executable's bytes are swift's; its mtime and the build directory's do not reach
/// the image (Kiln writes every file with the spec's mtime and a normalised mode).
extension ImageBuilder {
    func addSwiftProduct(_ item: ContentItem, to tree: inout FileTree) throws {
        guard let swift = item.swift else { throw BuildError("internal: a swift item without its product") }
        try Self.checkHostPlatform(spec)
        let package = item.path
        guard access(package + "/Package.swift", F_OK) == 0 else {
            throw BuildError("\(package) has no Package.swift (`package:` names the SwiftPM package directory)")
        }
        // A release build can take minutes (or wait for another SwiftPM process's lock).
        notice("swift: building \(swift.product) (swift build -c release\(swift.staticStdlib ? " --static-swift-stdlib" : "") in \(package))")
        let built = try Self.buildSwiftProduct(swift, package: package, staging: staging)
        let target = item.target ?? swift.defaultTarget
        try tree.addClosure(of: built.executable, target: target, xattrs: spec.xattrs)
        let dir = target.split(separator: "/").dropLast().map { "/" + $0 }.joined()
        for bundle in built.resourceBundles {
            try tree.addHost(built.binPath + "/" + bundle, at: dir + "/" + bundle, xattrs: spec.xattrs)
        }
        if built.resourceBundles.isEmpty == false {
            notice("swift: \(swift.product): resource bundle\(built.resourceBundles.count == 1 ? "" : "s") \(built.resourceBundles.joined(separator: ", ")) beside \(target)")
        }
    }

    /// `swift:` items run the host's `swift build`: a product for another platform would
    /// need a Swift SDK (`--swift-sdk`), which Kiln does not drive.
    static func checkHostPlatform(_ spec: Spec) throws {
        // Each platform of `platforms` is built from a spec of its own with `architecture`
        // and `os` set (Spec.forPlatform), so these two say which platform this build is.
        let host = Platform.host
        let arch = spec.architecture ?? host.architecture
        guard arch == host.architecture, spec.os == host.os else {
            throw BuildError("swift: items build for the host platform only (\(host.os)/\(host.architecture)), not \(spec.os)/\(arch)")
        }
    }

    struct BuiltSwiftProduct {
        var binPath: String
        var executable: String
        /// Names of the `*.resources` directories of `binPath` the executable refers to, sorted.
        var resourceBundles: [String]
    }

    /// Runs `swift build` for the product (its output kept aside, summarised in the error
    /// when it fails), then asks SwiftPM for the bin directory.
    static func buildSwiftProduct(_ swift: SwiftProductSpec, package: String, staging: Staging) throws -> BuiltSwiftProduct {
        guard let tool = findOnPath("swift") else { throw BuildError("swift: no `swift` on PATH") }
        var common = ["-c", "release", "--package-path", package]
        if let locked = ProcessInfo.processInfo.environment[SwiftProductSpec.lockedPackageVariable], !locked.isEmpty,
           realPath(locked) == realPath(package) {
            common.append("--ignore-lock")
        }
        var build = ["build"] + common + ["--product", swift.product]
        if swift.staticStdlib { build.append("--static-swift-stdlib") }
        let log = staging.newPath("swift-build.log")
        let status = try run(tool, build, outputTo: log)
        guard status.ok else {
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            // The compiler's diagnostics (`FILE:LINE:COL: error: …`) say more than the
            // source excerpts printed under them; without any, the last lines.
            var errors: [String] = []
            for l in lines where (l.hasPrefix("error: ") || l.contains(": error: ")) && !errors.contains(l) { errors.append(l) }
            let shown = (errors.isEmpty ? Array(lines.suffix(4)) : Array(errors.prefix(3)))
                .map { $0.count > 300 ? String($0.prefix(300)) + "…" : $0 }
            throw BuildError("`swift build --product \(swift.product)` failed with \(status.how)"
                             + (shown.isEmpty ? "" : (errors.isEmpty ? "; last output: " : "; its errors: ") + shown.joined(separator: " | ")))
        }
        let binLog = staging.newPath("swift-bin-path.log")
        let binStatus = try run(tool, ["build"] + common + ["--show-bin-path"], outputTo: binLog, discardErrors: true)
        let binOutput = (try? String(contentsOfFile: binLog, encoding: .utf8)) ?? ""
        guard binStatus.ok, let binPath = binOutput.split(separator: "\n").last.map(String.init), binPath.hasPrefix("/") else {
            throw BuildError("`swift build --show-bin-path` failed with \(binStatus.how)")
        }
        let executable = binPath + "/" + swift.product
        var st = stat()
        guard stat(executable, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_mode & 0o111 != 0 else {
            throw BuildError("`swift build` made no executable \(executable) (is `\(swift.product)` an executable product?)")
        }
        let bundles = try FileSystem.listDirectory(binPath).filter { name in
            var s = stat()
            return name.hasSuffix(".resources") && stat(binPath + "/" + name, &s) == 0 && s.st_mode & S_IFMT == S_IFDIR
        }
        // The accessor names the bundle under the bin directory as SwiftPM spelled it then;
        // `--show-bin-path` may answer through the `.build/release` symlink instead.
        let spellings = Array(Set([binPath, realPath(binPath)]))
        let used = try mentioned(bundles.flatMap { b in spellings.map { $0 + "/" + b } }, in: executable)
        return BuiltSwiftProduct(binPath: binPath, executable: executable,
                                 resourceBundles: bundles.filter { b in spellings.contains { used.contains($0 + "/" + b) } }.sorted())
    }

    /// Which of `needles` occur in the file's bytes (read in chunks that overlap by the
    /// longest needle, so none is missed at a chunk boundary).
    static func mentioned(_ needles: [String], in path: String) throws -> Set<String> {
        guard !needles.isEmpty else { return [] }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BuildError("\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let patterns = needles.map { Array($0.utf8) }
        let overlap = patterns.map(\.count).max()! - 1
        let chunk = 4 << 20
        var buffer = [UInt8](repeating: 0, count: chunk + overlap)
        var kept = 0
        var found = Set<String>()
        while found.count < needles.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + kept, chunk) }
            guard n >= 0 else { throw BuildError("\(path): \(String(cString: strerror(errno)))") }
            guard n > 0 else { break }
            let valid = kept + n
            buffer.withUnsafeBytes { raw in
                for (i, p) in patterns.enumerated() where !found.contains(needles[i]) {
                    if Self.contains(UnsafeRawBufferPointer(rebasing: raw[0..<valid]), p) { found.insert(needles[i]) }
                }
            }
            kept = min(overlap, valid)
            buffer.withUnsafeMutableBytes { raw in
                _ = memmove(raw.baseAddress!, raw.baseAddress! + (valid - kept), kept)
            }
        }
        return found
    }

    /// Whether `needle` (not empty) occurs in `haystack`: memchr for its first byte, then memcmp.
    static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard let base = haystack.baseAddress, needle.count <= haystack.count else { return false }
        let last = haystack.count - needle.count
        var i = 0
        return needle.withUnsafeBytes { n in
            while i <= last {
                guard let hit = memchr(base + i, Int32(needle[0]), last - i + 1) else { return false }
                let at = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + at, n.baseAddress!, needle.count) == 0 { return true }
                i = at + 1
            }
            return false
        }
    }

    static func realPath(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    /// The first executable `name` in `$PATH`.
    static func findOnPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where dir.hasPrefix("/") {
            let candidate = dir + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs a tool with stdin closed and its output in `log` (never on Kiln's stdout);
    /// its stderr too, unless `discardErrors`.
    static func run(_ tool: String, _ arguments: [String], outputTo log: String,
                    discardErrors: Bool = false) throws -> (ok: Bool, how: String) {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let out = FileHandle(forWritingAtPath: log) else { throw BuildError("cannot create \(log)") }
        defer { try? out.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = out
        p.standardError = discardErrors ? FileHandle.nullDevice : out
        do { try p.run() } catch { throw BuildError("cannot start \(tool): \(error)") }
        p.waitUntilExit()
        let ok = p.terminationReason == .exit && p.terminationStatus == 0
        return (ok, p.terminationReason == .exit ? "exit status \(p.terminationStatus)" : "signal \(p.terminationStatus)")
    }

    /// The image's config (the spec's, or the spec's merged into a base's) with the
    /// `Entrypoint` a `swift:` item implies: when the spec sets neither `Entrypoint` nor
    /// `Cmd`, the first `swift:` item's executable, and no `Cmd` — a base's is dropped, as
    /// a Dockerfile's `ENTRYPOINT` resets the `CMD` it inherits (else it would become the
    /// product's arguments).
    static func swiftEntrypoint(_ config: ContainerConfig, spec: Spec) -> ContainerConfig {
        guard spec.config.Entrypoint == nil, spec.config.Cmd == nil,
              let item = spec.contents.first(where: { $0.kind == .swift }), let swift = item.swift else { return config }
        var c = config
        c.Entrypoint = [item.target ?? swift.defaultTarget]
        c.Cmd = nil
        return c
    }
}
