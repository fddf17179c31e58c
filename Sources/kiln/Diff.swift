import ArgumentParser
import Foundation
import KilnArchive
import KilnDebian
import KilnImage
import KilnOCI
import KilnRegistry

struct Diff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what differs between two images: config, layers, files and Debian packages.",
        discussion: """
            A and B are images in any transport (docker://, docker-archive:, oci:, oci-archive:). \
            Files are compared on the flattened root file systems: added, removed, or changed in \
            type, size, mode, owner, link target or content (sha256, computed where sizes are equal). \
            Packages are compared from each image's dpkg status (/var/lib/dpkg/status and \
            the per-package paragraphs of /var/lib/dpkg/status.d/ that Kiln writes).

            Exit status, as diff(1) and cmp(1): 0 when the images are identical, 1 when they differ, \
            2 when they cannot be compared (an image that cannot be read, or images of two \
            platforms without --platform) — the one exception to Kiln's exit codes. Usage errors are 64 as everywhere.

            Example: kiln diff oci:app:1.0 docker://127.0.0.1:5000/app:1.1
            """)

    @Argument(help: "The first image.")
    var a: String

    @Argument(help: "The second image.")
    var b: String

    @Flag(help: "Print the differences as JSON on stdout.")
    var json = false

    @Option(help: "The platform to pick from an index: OS/ARCH[/VARIANT]. Two images of different platforms are compared only when it is given.")
    var platform: String?

    @OptionGroup var registry: RegistryFlags

    @OptionGroup var limits: LayerLimitOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try usageChecked { (try ImageLocation(parsing: a), try ImageLocation(parsing: b)) }
        if let platform { try usageChecked { try PlatformSelection.parse(platform) } }
    }

    func run() async throws {
        do {
            let (diff, packagesKnown) = try await compare()
            if json {
                print(String(decoding: try CanonicalJSON.encode(diff), as: UTF8.self))
            } else {
                print(Self.render(diff, packagesKnown: packagesKnown), terminator: "")
            }
            if !diff.identical { throw ExitCode(1) }
        } catch let e as ExitCode {
            throw e
        } catch {
            var stderr = StandardError()
            print("kiln: error: \(error)", to: &stderr)
            throw ExitCode(2)
        }
    }

    func compare() async throws -> (ImageDiff, Bool) {
        let options = try registry.options(json: true)
        let platform = try self.platform.map(PlatformSelection.parse) ?? .host
        let maxLayerSize = limits.maxLayerSize.bytes
        let (la, lb) = (try ImageLocation(parsing: a), try ImageLocation(parsing: b))
        let left = try await openingImage(la, options: options) {
            try await la.open(options: options, platform: platform, fetchLayers: true, maxLayerSize: maxLayerSize)
        }
        defer { left.removeSpool() }
        let right = try await openingImage(lb, options: options) {
            try await lb.open(options: options, platform: platform, fetchLayers: true, maxLayerSize: maxLayerSize)
        }
        defer { right.removeSpool() }
        let (ia, ib) = (left.image, right.image)
        // Images of two platforms differ in every binary: said, not listed, unless asked.
        if self.platform == nil, ia.config.platform != ib.config.platform {
            throw ImageError.invalid("\(a) is \(ia.config.platform) and \(b) is \(ib.config.platform): images of different platforms (pass --platform to compare them anyway)")
        }
        return try await OwnThread.run("kiln-diff") {
            let scratch = NSTemporaryDirectory() + "kiln-diff-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileSystem.makeDirectories(scratch)
            defer { FileSystem.removeTree(scratch) }
            var (diff, ra, rb) = try ImageDiff.compare(ia, ib, scratch: scratch, limits: RootfsLimits(maxLayerSize: maxLayerSize))
            var known = false
            if let ra, let rb {
                let pa = try Self.packages(ra), pb = try Self.packages(rb)
                known = pa != nil || pb != nil
                let before = pa ?? [:], after = pb ?? [:]
                diff.packages = Set(before.keys).union(after.keys).sorted().compactMap { name in
                    before[name] == after[name] ? nil : ImageDiff.PackageChange(name: name, before: before[name], after: after[name])
                }
            }
            return (diff, known)
        }
    }

    /// Installed packages and versions from the dpkg status and from
    /// `/var/lib/dpkg/status.d/NAME` (one control paragraph per package, without a
    /// `Status` field: what Kiln's `packages` and distroless write, and syft reads); nil
    /// when the image has neither.
    static func packages(_ fs: Rootfs) throws -> [String: String]? {
        var out: [String: String]?
        if let bytes = try fs.contents(of: "var/lib/dpkg/status", limit: 64 << 20) {
            out = [:]
            for p in try InstalledPackage.parseStatus(String(decoding: bytes, as: UTF8.self)) {
                out![p.name] = p.version.description
            }
        }
        let dir = "var/lib/dpkg/status.d/"
        for (path, entry) in fs.entries() where entry.kind == .file && path.hasPrefix(dir) {
            let name = path.dropFirst(dir.count)
            guard !name.contains("/"), !name.hasSuffix(".md5sums"),
                  let bytes = try fs.contents(of: path, limit: 16 << 20) else { continue }
            if out == nil { out = [:] }
            for paragraph in try ControlParagraph.parseAll(String(decoding: bytes, as: UTF8.self)) {
                let r = try PackageRecord(paragraph: paragraph, repositoryIndex: -1)
                out![r.name] = r.version.description
            }
        }
        return out
    }

    static func render(_ d: ImageDiff, packagesKnown: Bool) -> String {
        var lines: [String] = []
        if d.identical {
            return "identical: \(d.before)" + (d.before == d.after ? "" : " and \(d.after)") + "\n"
        }
        lines.append("--- \(d.before)")
        lines.append("+++ \(d.after)")
        for c in d.config {
            lines.append("config \(c.field): \(c.before ?? "(none)") → \(c.after ?? "(none)")")
        }
        lines.append("layers: \(d.layers.shared.count) shared, \(d.layers.removed.count) removed, \(d.layers.added.count) added")
        for l in d.layers.removed { lines.append("- layer \(l)") }
        for l in d.layers.added { lines.append("+ layer \(l)") }
        func describe(_ s: ImageDiff.FileState) -> String {
            let e = s.entry
            var t = "\(e.kind.rawValue) \(String(e.mode, radix: 8)) \(e.uid):\(e.gid)"
            if e.kind == .file { t += " \(e.size) bytes" }
            if let target = e.target { t += " → \(target)" }
            if let digest = s.digest { t += " \(digest.description.prefix(19))" }
            return t
        }
        for f in d.files {
            switch f.change {
            case .added: lines.append("A /\(f.path)  \(describe(f.after!))")
            case .removed: lines.append("D /\(f.path)  \(describe(f.before!))")
            case .changed: lines.append("M /\(f.path)  \(describe(f.before!)) ⇒ \(describe(f.after!))")
            }
        }
        for p in d.packages {
            lines.append("package \(p.name): \(p.before ?? "(none)") → \(p.after ?? "(none)")")
        }
        if !packagesKnown, !d.files.isEmpty { lines.append("packages: neither image has a dpkg status (/var/lib/dpkg/status or status.d/)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
