#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// What the base-safety checks need to know of a base's files: type, mode, owner and,
/// for a regular file, the sha256 of its bytes. Both the flattened `Rootfs` and the
/// cached `BaseListing` answer it.
protocol BaseFiles: AnyObject {
    func item(at path: String) -> Rootfs.Item?
    func metadata(at path: String) -> (mode: UInt32, uid: Int, gid: Int)?
    /// The sha256 of the regular file at `path` (nil when it is none).
    func fileDigest(at path: String) throws -> Digest?
}

/// `Rootfs.fileDigest(at:)` streams the spooled body (never the whole file in memory).
extension Rootfs: BaseFiles {}

/// A base image's files as the base-safety checks need them, without their bytes: each
/// base layer is listed once (paths, types, modes, owners, sizes, link targets, the
/// sha256 of every regular file, whiteouts) and the listing kept in the cache by the
/// layer's diffID, so a base whose layers are all listed is never read again for these
/// checks. The listings are then applied in order as OCI's "Applying Changesets" says
/// (`.wh.NAME` deletes from lower layers, `.wh..wh..opq` hides every lower child).
final class BaseListing: BaseFiles {
    final class Node {
        var kind: Character  // d f l c p (hard links share the target's node)
        var mode: UInt32, uid: Int, gid: Int
        var size: Int64
        var digest: String
        var link: String
        var children: [String: (node: Node, layer: Int)] = [:]
        init(kind: Character, mode: UInt32, uid: Int, gid: Int, size: Int64, digest: String, link: String) {
            (self.kind, self.mode, self.uid, self.gid, self.size, self.digest, self.link) = (kind, mode, uid, gid, size, digest, link)
        }
    }

    let root = Node(kind: "d", mode: 0o755, uid: 0, gid: 0, size: 0, digest: "", link: "")

    /// The listing of `layers`, from `cacheRoot/base-listings/<diffID hex>` where it is
    /// kept, else read from the layer (its diffID checked) and kept there.
    static func load(_ layers: [any StoredLayer], cacheRoot: String?, what: String,
                     maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize) throws -> BaseListing {
        let listing = BaseListing()
        for (i, layer) in layers.enumerated() {
            let entries = try LayerListing.entries(of: layer, cacheRoot: cacheRoot, maxLayerSize: maxLayerSize,
                                                   what: "\(what): layer \(i + 1) of \(layers.count) (\(layer.descriptor.digest))")
            listing.apply(entries, layer: i + 1)
        }
        return listing
    }

    /// True when every layer's listing is in the cache: the checks read no layer byte.
    static func isCached(_ layers: [any StoredLayer], cacheRoot: String) -> Bool {
        layers.allSatisfy { access(LayerListing.path($0.diffID, cacheRoot: cacheRoot), R_OK) == 0 }
    }

    private func apply(_ entries: [LayerListing.Entry], layer: Int) {
        for e in entries {
            let comps = e.path.split(separator: "/").map(String.init)
            if e.kind == "o" {
                let dir = directory(comps[...], layer: layer)
                for (n, c) in dir.children where prune(c, layer: layer) { dir.children[n] = nil }
                continue
            }
            guard let name = comps.last else { continue }
            let dir = directory(comps.dropLast(), layer: layer)
            switch e.kind {
            case "w":
                if let c = dir.children[name], prune(c, layer: layer) { dir.children[name] = nil }
            case "h":
                if let target = lookup(e.link.split(separator: "/").map(String.init)), target.kind != "d" {
                    dir.children[name] = (target, layer)
                }
            case "d":
                if let c = dir.children[name], c.node.kind == "d" {
                    (c.node.mode, c.node.uid, c.node.gid) = (e.mode, e.uid, e.gid)
                    dir.children[name] = (c.node, layer)
                } else {
                    dir.children[name] = (Node(kind: "d", mode: e.mode, uid: e.uid, gid: e.gid, size: 0, digest: "", link: ""), layer)
                }
            default:
                dir.children[name] = (Node(kind: e.kind, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, digest: e.digest, link: e.link), layer)
            }
        }
    }

    /// Removes what lower layers put below a child; true when the child itself goes (a
    /// whiteout applies to lower layers only, as in `Rootfs`).
    private func prune(_ child: (node: Node, layer: Int), layer: Int) -> Bool {
        if child.layer < layer { return true }
        if child.node.kind == "d" {
            for (n, c) in child.node.children where prune(c, layer: layer) { child.node.children[n] = nil }
        }
        return false
    }

    private func directory(_ comps: ArraySlice<String>, layer: Int) -> Node {
        var cur = root
        for c in comps {
            if let next = cur.children[c], next.node.kind == "d" {
                cur = next.node
            } else {
                // Layers are checked when listed; a missing parent is created as tar does.
                let d = Node(kind: "d", mode: 0o755, uid: 0, gid: 0, size: 0, digest: "", link: "")
                cur.children[c] = (d, layer)
                cur = d
            }
        }
        return cur
    }

    private func lookup(_ comps: [String]) -> Node? {
        var cur = root
        for c in comps where c != "." {
            guard cur.kind == "d", let next = cur.children[c] else { return nil }
            cur = next.node
        }
        return cur
    }

    private func node(_ path: String) -> Node? { lookup(path.split(separator: "/").map(String.init)) }

    func item(at path: String) -> Rootfs.Item? {
        guard let n = node(path) else { return nil }
        switch n.kind {
        case "d": return .directory
        case "f": return .regular(size: n.size)
        case "l": return .symlink(n.link)
        case "p": return .fifo
        default: return .device
        }
    }

    func metadata(at path: String) -> (mode: UInt32, uid: Int, gid: Int)? {
        node(path).map { ($0.mode, $0.uid, $0.gid) }
    }

    func fileDigest(at path: String) throws -> Digest? {
        guard let n = node(path), n.kind == "f" else { return nil }
        return Digest(hex: n.digest)
    }
}

/// One layer's listing: made by reading the layer once, kept as a small text file.
enum LayerListing {
    struct Entry {
        /// d f l h c p, or w (whiteout of `path`) and o (opaque directory `path`).
        var kind: Character
        var path: String
        var mode: UInt32 = 0, uid: Int = 0, gid: Int = 0
        var size: Int64 = 0
        var digest: String = ""
        var link: String = ""
    }

    static func path(_ diffID: Digest, cacheRoot: String) -> String {
        "\(cacheRoot)/base-listings/\(diffID.hex)"
    }

    static func entries(of layer: any StoredLayer, cacheRoot: String?, maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize,
                        what: String) throws -> [Entry] {
        if let cacheRoot, let bytes = try? FileReader(path: path(layer.diffID, cacheRoot: cacheRoot)).readAll(limit: 1 << 30),
           let parsed = parse(bytes) {
            // Touched, so `cache prune` keeps what is in use.
            utimes(path(layer.diffID, cacheRoot: cacheRoot), nil)
            return parsed
        }
        let entries = try read(layer, what: what, maxLayerSize: maxLayerSize)
        if let cacheRoot {
            try FileSystem.makeDirectories(cacheRoot + "/base-listings")
            try FileSystem.writeAtomically(format(entries), to: path(layer.diffID, cacheRoot: cacheRoot))
        }
        return entries
    }

    /// Reads the layer's tar, hashing every regular file, and checks its diffID.
    static func read(_ layer: any StoredLayer, what: String,
                     maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize) throws -> [Entry] {
        let hashed = HashingReader(try Compression.decompressing(try layer.openBlob(), limit: maxLayerSize))
        let tar = TarReader(hashed, maxEntrySize: maxLayerSize)
        var out: [Entry] = []
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        do {
            while let h = try tar.next() {
                let path = FileTree.normalize(h.name)
                guard !path.isEmpty else { continue }
                let base = path.split(separator: "/").last.map(String.init) ?? path
                let parent = path.split(separator: "/").dropLast().joined(separator: "/")
                if base == ".wh..wh..opq" { out.append(Entry(kind: "o", path: parent)); continue }
                if base.hasPrefix(".wh.") {
                    out.append(Entry(kind: "w", path: (parent.isEmpty ? "" : parent + "/") + base.dropFirst(4)))
                    continue
                }
                var e = Entry(kind: "f", path: path, mode: h.mode & 0o7777, uid: h.uid, gid: h.gid)
                switch h.kind {
                case .regular:
                    var sha = SHA256Hasher()
                    while true {
                        let n = try tar.readBody(into: buf)
                        if n == 0 { break }
                        sha.update(UnsafeRawBufferPointer(rebasing: buf[..<n]))
                    }
                    (e.size, e.digest) = (h.size, sha.finalize().hex)
                case .directory: e.kind = "d"
                case .symlink: (e.kind, e.link, e.mode) = ("l", h.linkName, 0o777)
                case .hardlink: (e.kind, e.link) = ("h", FileTree.normalize(h.linkName))
                case .charDevice, .blockDevice: e.kind = "c"
                case .fifo: e.kind = "p"
                }
                out.append(e)
            }
            try tar.skipTrailingData()
        } catch {
            throw BuildError("\(what): \(error)")
        }
        let diffID = hashed.digest
        guard diffID == layer.diffID else {
            throw BuildError("\(what): the layer's uncompressed digest is \(diffID), its config says \(layer.diffID)")
        }
        return out
    }

    // The file: one entry per line, `KIND MODE UID GID SIZE DIGEST PATH LINK` separated
    // by tabs, with `%`, tab and newline in names escaped as %25, %09, %0A.
    static let header = "kiln-base-listing-v1\n"

    static func format(_ entries: [Entry]) -> [UInt8] {
        var s = header
        for e in entries {
            s += "\(e.kind)\t\(String(e.mode, radix: 8))\t\(e.uid)\t\(e.gid)\t\(e.size)\t\(e.digest)\t\(escape(e.path))\t\(escape(e.link))\n"
        }
        return Array(s.utf8)
    }

    static func parse(_ bytes: [UInt8]) -> [Entry]? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix(header) else { return nil }
        var out: [Entry] = []
        for line in text.dropFirst(header.count).split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard f.count == 8, let k = f[0].first, let mode = UInt32(f[1], radix: 8), let uid = Int(f[2]),
                  let gid = Int(f[3]), let size = Int64(f[4]) else { return nil }
            out.append(Entry(kind: k, path: unescape(f[6]), mode: mode, uid: uid, gid: gid, size: size,
                             digest: String(f[5]), link: unescape(f[7])))
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingAll("%", "%25").replacingAll("\t", "%09").replacingAll("\n", "%0A")
    }

    static func unescape<S: StringProtocol>(_ s: S) -> String {
        String(s).replacingAll("%0A", "\n").replacingAll("%09", "\t").replacingAll("%25", "%")
    }
}

private extension String {
    func replacingAll(_ a: String, _ b: String) -> String { replacingOccurrences(of: a, with: b) }
}


extension ImageBuilder {
    /// Whether building `spec` on a base with `layers` reads the layers' bytes for the
    /// base checks of its contents (README "Contents on a base"): true when the spec has
    /// contents and some layer's listing is not in the cache at `cacheRoot` yet. (Accounts,
    /// packages and runAsRoot read the base's bytes in any case.) For a caller that
    /// decides whether to download a registry base's layers.
    public static func contentChecksReadBaseLayers(_ spec: Spec, layers: [any StoredLayer], cacheRoot: String?) -> Bool {
        guard !spec.contents.isEmpty else { return false }
        guard let cacheRoot else { return true }
        return !BaseListing.isCached(layers, cacheRoot: cacheRoot)
    }
}
