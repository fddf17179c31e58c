import Foundation
import KilnArchive
import KilnOCI

/// What differs between two images (`kiln diff`): config fields, layers by diffID, and
/// the files of their flattened root file systems — as container-diff and `dive`
/// report them, for any two images Kiln can read.
public struct ImageDiff: Sendable, Codable {
    /// One config field whose value differs, as canonical JSON (nil: absent).
    public struct ConfigChange: Sendable, Codable, Equatable {
        public var field: String
        public var before: String?
        public var after: String?
    }

    /// Layers by diffID (their uncompressed content): those of both images, and those of
    /// one only.
    public struct Layers: Sendable, Codable, Equatable {
        public var shared: [Digest]
        public var removed: [Digest]
        public var added: [Digest]
    }

    /// One path that differs: added, removed, or changed in type, size, mode, owner,
    /// link target or content digest.
    public struct FileChange: Sendable, Codable, Equatable {
        public enum Change: String, Sendable, Codable { case added, removed, changed }
        public var path: String
        public var change: Change
        public var before: FileState?
        public var after: FileState?
    }

    public struct FileState: Sendable, Codable, Equatable {
        public var entry: Rootfs.Entry
        /// A regular file's content digest, given for changed files (not for added or
        /// removed ones).
        public var digest: Digest?
    }

    public var before: Digest
    public var after: Digest
    public var config: [ConfigChange]
    public var layers: Layers
    public var files: [FileChange]
    /// Extra sections that callers add (e.g. Debian packages from the dpkg status).
    public var packages: [PackageChange]

    public struct PackageChange: Sendable, Codable, Equatable {
        public var name: String
        public var before: String?
        public var after: String?
        public init(name: String, before: String?, after: String?) {
            self.name = name
            self.before = before
            self.after = after
        }
    }

    /// True when the images are the same image or nothing a user sees differs.
    public var identical: Bool {
        before == after || (config.isEmpty && layers.added.isEmpty && layers.removed.isEmpty
                            && files.isEmpty && packages.isEmpty)
    }

    /// Compares `a` and `b`. Their layers must be readable (a registry image's fetched);
    /// both are flattened into spools under `scratch` (removed afterwards).
    public static func compare(_ a: SourceImage, _ b: SourceImage, scratch: String,
                               limits: RootfsLimits = RootfsLimits()) throws -> (diff: ImageDiff, before: Rootfs?, after: Rootfs?) {
        var diff = ImageDiff(before: a.manifestDigest, after: b.manifestDigest, config: [],
                             layers: Layers(shared: [], removed: [], added: []), files: [], packages: [])
        guard a.manifestDigest != b.manifestDigest else { return (diff, nil, nil) }
        diff.config = try configChanges(a.config, b.config)
        let ad = a.config.rootfs.diff_ids, bd = b.config.rootfs.diff_ids
        let aSet = Set(ad), bSet = Set(bd)
        diff.layers = Layers(shared: ad.filter { bSet.contains($0) }, removed: ad.filter { !bSet.contains($0) },
                             added: bd.filter { !aSet.contains($0) })
        // Same layers in the same order: the same files.
        guard ad != bd else { return (diff, nil, nil) }
        let ra = try flatten(a, spool: scratch + "/before", limits: limits)
        let rb = try flatten(b, spool: scratch + "/after", limits: limits)
        diff.files = try fileChanges(ra, rb)
        return (diff, ra, rb)
    }

    static func flatten(_ image: SourceImage, spool: String, limits: RootfsLimits) throws -> Rootfs {
        let fs = try Rootfs(spoolDirectory: spool, limits: limits)
        for (i, layer) in image.layers.enumerated() {
            try fs.apply(layer, what: "layer \(i + 1) of \(image.layers.count) (\(layer.descriptor.digest))")
        }
        return fs
    }

    /// The config fields that differ: platform, author, created, and each field of
    /// `config` (Env, Cmd, Labels…), compared as canonical JSON.
    static func configChanges(_ a: ImageConfig, _ b: ImageConfig) throws -> [ConfigChange] {
        func fields(_ c: ImageConfig) throws -> [String: String] {
            var out: [String: String] = [:]
            out["architecture"] = c.architecture
            out["os"] = c.os
            if let v = c.variant { out["variant"] = v }
            if let v = c.created { out["created"] = v }
            if let v = c.author { out["author"] = v }
            if let cc = c.config {
                let json = try CanonicalJSON.encode(cc)
                if let object = try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] {
                    for key in object.keys {
                        let value = try JSONSerialization.data(withJSONObject: object[key]!, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
                        out["config." + key] = String(decoding: try CanonicalJSON.canonical(Array(value)), as: UTF8.self)
                    }
                }
            }
            return out
        }
        let fa = try fields(a), fb = try fields(b)
        return Set(fa.keys).union(fb.keys).sorted().compactMap { k in
            fa[k] == fb[k] ? nil : ConfigChange(field: k, before: fa[k], after: fb[k])
        }
    }

    /// Paths of one root and not the other, and paths whose state differs. Content is
    /// hashed only for paths present in both: where sizes are equal it decides, where
    /// something else changed it is reported.
    static func fileChanges(_ a: Rootfs, _ b: Rootfs) throws -> [FileChange] {
        let ea = a.entries(), eb = b.entries()
        var bIndex: [String: Rootfs.Entry] = [:]
        bIndex.reserveCapacity(eb.count)
        for (p, e) in eb { bIndex[p] = e }
        var aIndex = Set<String>()
        aIndex.reserveCapacity(ea.count)
        var out: [FileChange] = []
        for (p, e) in ea {
            aIndex.insert(p)
            guard let other = bIndex[p] else {
                out.append(FileChange(path: p, change: .removed, before: FileState(entry: e, digest: nil), after: nil))
                continue
            }
            if e == other {
                guard e.kind == .file, e.size > 0 else { continue }
                let da = try a.fileDigest(at: p), db = try b.fileDigest(at: p)
                if da != db {
                    out.append(FileChange(path: p, change: .changed, before: FileState(entry: e, digest: da),
                                          after: FileState(entry: other, digest: db)))
                }
            } else {
                // Changed in type, size or metadata: the content digests of regular files
                // are given too, so a report can say whether the bytes changed as well.
                out.append(FileChange(path: p, change: .changed,
                                      before: FileState(entry: e, digest: e.kind == .file ? try a.fileDigest(at: p) : nil),
                                      after: FileState(entry: other, digest: other.kind == .file ? try b.fileDigest(at: p) : nil)))
            }
        }
        for (p, e) in eb where !aIndex.contains(p) {
            out.append(FileChange(path: p, change: .added, before: nil, after: FileState(entry: e, digest: nil)))
        }
        return out.sorted { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }
    }
}
