#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// Limits applied while reading layers, which come from untrusted places.
public struct RootfsLimits: Sendable {
    /// The most uncompressed bytes one layer may produce (decompression bombs).
    public var maxLayerSize: Int64
    /// The most entries all layers together may hold (the model is in memory).
    public var maxEntries: Int

    public static let defaultMaxLayerSize: Int64 = 64 << 30
    public static let defaultMaxEntries = 4_000_000

    public init(maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize, maxEntries: Int = RootfsLimits.defaultMaxEntries) {
        self.maxLayerSize = maxLayerSize
        self.maxEntries = maxEntries
    }
}

/// The root file system of an image, built by applying layers in order (OCI image-spec
/// layer.md "Applying Changesets"): whiteouts `.wh.NAME` delete from lower layers,
/// `DIR/.wh..wh..opq` hides every lower child of DIR wherever it appears in the tar.
///
/// Paths are data: the tree is an in-memory model, and file bodies are spooled to
/// content-free names in a private directory, so no entry name ever reaches the file
/// system. An entry below a symlink goes where the symlink leads *inside the root*, as
/// umoci (through go-securejoin) unpacks it: each parent component is looked up in the
/// model, a symlink's target is read with the root as `/`, `..` stops at the root, and
/// more than `maxSymlinks` symlinks on one path is an error (so loops end). The model
/// therefore never holds a directory below a symlink, and writing it out
/// (`Rootfs+Write.swift`) follows no symlink at all. Hostile input fails with an
/// `ImageError` naming the layer and entry: absolute names and `..` in entry names,
/// entries below a file, symlink loops, duplicates in one layer, hard links to nothing
/// or to directories, digest and diffID mismatches, and (through the hardened
/// `TarReader` and decompressors) corrupt, truncated and oversized streams. Duplicates
/// are judged by entry name: two names that reach one path through a symlink (`a/f`
/// and `etc/f` with `a -> etc`) apply in order, the later winning, as with umoci and
/// `tar -x`; images with merged /usr routinely have `lib/…` and `usr/lib/…` entries.
public final class Rootfs {
    /// A file system object. Directories hold their children; any other node may sit at
    /// several paths (hard links share the object, as they share an inode).
    final class Node {
        enum Kind {
            case directory
            case regular(body: String?, size: Int64)  // body: the spooled file (nil when empty)
            case symlink(String)
            case charDevice(UInt32, UInt32)
            case blockDevice(UInt32, UInt32)
            case fifo
        }
        var kind: Kind
        var mode: UInt32
        var uid: Int
        var gid: Int
        var mtime: Int64
        var xattrs: [String: [UInt8]]
        /// Children by name, with the layer that put each one there.
        var children: [String: (node: Node, layer: Int)] = [:]

        init(kind: Kind, mode: UInt32, uid: Int = 0, gid: Int = 0, mtime: Int64 = 0, xattrs: [String: [UInt8]] = [:]) {
            self.kind = kind
            self.mode = mode
            self.uid = uid
            self.gid = gid
            self.mtime = mtime
            self.xattrs = xattrs
        }

        var isDirectory: Bool { if case .directory = kind { return true } else { return false } }
    }

    let root = Node(kind: .directory, mode: 0o755)
    /// Where file bodies are spooled; removed with the model.
    public let spoolDirectory: String
    public let limits: RootfsLimits
    private var entryCount = 0
    private var spoolCounter = 0
    private var layerIndex = 0

    /// - Parameter spoolDirectory: a directory to create (it must not exist); put it on
    ///   the same file system as a directory export so bodies are moved, not copied.
    public init(spoolDirectory: String, limits: RootfsLimits = RootfsLimits()) throws {
        guard mkdir(spoolDirectory, 0o700) == 0 else {
            throw ImageError.io("cannot create \(spoolDirectory): \(errnoMessage())")
        }
        self.spoolDirectory = spoolDirectory
        self.limits = limits
    }

    deinit { FileSystem.removeTree(spoolDirectory) }

    // MARK: Applying layers

    /// Applies a stored layer, checking its blob digest, size and diffID.
    public func apply(_ layer: any StoredLayer, what: String) throws {
        let blob = HashingReader(try layer.openBlob())
        let plain: ByteReader
        do {
            plain = try Compression.decompressing(blob, limit: limits.maxLayerSize)
        } catch {
            throw ImageError.invalid("\(what): \(error)")
        }
        let uncompressed = try apply(tarStream: plain, what: what)
        try layer.verify(blob: blob, uncompressed: uncompressed, what: what)
    }

    /// Applies an uncompressed layer tar; returns its sha256 (the diffID it has).
    @discardableResult
    public func apply(tarStream: ByteReader, what: String) throws -> Digest {
        layerIndex += 1
        let layer = layerIndex
        let hashed = HashingReader(tarStream)
        let tar = TarReader(hashed, maxEntrySize: limits.maxLayerSize)
        var seen = Set<String>()
        do {
            while let h = try tar.next() {
                entryCount += 1
                guard entryCount <= limits.maxEntries else {
                    throw ImageError.invalid("\(what): more than \(limits.maxEntries) entries in the image (the limit)")
                }
                let comps = try Rootfs.components(h.name, what: what)
                let key = comps.joined(separator: "/")
                guard seen.insert(key).inserted else {
                    throw ImageError.invalid("\(what): duplicate entry \"\(h.name)\" in one layer")
                }
                try applyEntry(h, comps, layer: layer, tar: tar, what: what)
            }
            try tar.skipTrailingData()
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError.invalid("\(what): \(error)")
        }
        return hashed.digest
    }

    /// An entry name as path components: relative, no `..`, `.` and empty parts dropped.
    static func components(_ name: String, what: String) throws -> [String] {
        guard !name.hasPrefix("/") else {
            throw ImageError.invalid("\(what): entry \"\(name)\" has an absolute name")
        }
        guard !name.utf8.contains(0) else { throw ImageError.invalid("\(what): entry \"\(name)\" contains a NUL byte") }
        var comps: [String] = []
        for c in name.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            guard c != ".." else { throw ImageError.invalid("\(what): entry \"\(name)\" contains \"..\"") }
            comps.append(String(c))
        }
        return comps
    }

    private func applyEntry(_ h: TarHeader, _ comps: [String], layer: Int, tar: TarReader, what: String) throws {
        guard let base = comps.last else {
            // The root itself ("./"): only its metadata counts.
            guard h.kind == .directory else { throw ImageError.invalid("\(what): entry \"\(h.name)\" replaces the root with a non-directory") }
            setMetadata(root, h)
            return
        }
        let parentComps = Array(comps.dropLast())
        if base == ".wh..wh..opq" {
            let dir = try directory(parentComps, create: true, layer: layer, what: what, entry: h.name)
            for (name, child) in dir.children { if prune(child, layer: layer) { dir.children[name] = nil } }
            return
        }
        if base.hasPrefix(".wh.") {
            let target = String(base.dropFirst(4))
            guard !target.isEmpty, target != ".", target != ".." else {
                throw ImageError.invalid("\(what): invalid whiteout \"\(h.name)\"")
            }
            // A whiteout of something that is not there is allowed (and does nothing).
            guard let dir = try? directory(parentComps, create: false, layer: layer, what: what, entry: h.name),
                  let child = dir.children[target] else { return }
            if prune(child, layer: layer) { dir.children[target] = nil }
            return
        }
        let dir = try directory(parentComps, create: true, layer: layer, what: what, entry: h.name)
        let existing = dir.children[base]
        let node: Node
        switch h.kind {
        case .directory:
            if let existing, existing.node.isDirectory {
                setMetadata(existing.node, h)
                dir.children[base] = (existing.node, layer)
                return
            }
            node = Node(kind: .directory, mode: 0)
        case .regular:
            var body: String?
            if h.size > 0 {
                spoolCounter += 1
                let path = "\(spoolDirectory)/\(spoolCounter)"
                let out = try FileWriter(creating: path, mode: 0o600)
                let n = try tar.copyBody(to: out)
                guard n == h.size else { throw ImageError.invalid("\(what): entry \"\(h.name)\" is truncated") }
                body = path
            }
            node = Node(kind: .regular(body: body, size: h.size), mode: 0)
        case .hardlink:
            // link(2) semantics: the target's parents are resolved inside the root, the
            // target itself is not followed (a hard link to a symlink links the symlink).
            let targetComps = try Rootfs.components(h.linkName, what: what)
            let targetDir = targetComps.isEmpty ? nil
                : try? directory(Array(targetComps.dropLast()), create: false, layer: layer, what: what, entry: h.name)
            guard let targetDir, let target = targetDir.children[targetComps.last!]?.node,
                  !(targetDir === dir && targetComps.last! == base) else {
                throw ImageError.invalid("\(what): hard link \"\(h.name)\" points to \"\(h.linkName)\", which is not in the image")
            }
            guard !target.isDirectory else {
                throw ImageError.invalid("\(what): hard link \"\(h.name)\" points to the directory \"\(h.linkName)\"")
            }
            dir.children[base] = (target, layer)
            return
        case .symlink:
            node = Node(kind: .symlink(h.linkName), mode: 0o777)
        case .charDevice:
            node = Node(kind: .charDevice(h.devMajor, h.devMinor), mode: 0)
        case .blockDevice:
            node = Node(kind: .blockDevice(h.devMajor, h.devMinor), mode: 0)
        case .fifo:
            node = Node(kind: .fifo, mode: 0)
        }
        setMetadata(node, h)
        if case .symlink = node.kind { node.mode = 0o777 }
        dir.children[base] = (node, layer)
    }

    private func setMetadata(_ n: Node, _ h: TarHeader) {
        n.mode = h.mode & 0o7777
        n.uid = h.uid
        n.gid = h.gid
        n.mtime = h.mtime
        n.xattrs = h.xattrs
    }

    /// Removes what lower layers put under a child; true when the child itself goes.
    /// What this layer added stays (a whiteout only applies to lower layers).
    private func prune(_ child: (node: Node, layer: Int), layer: Int) -> Bool {
        if child.layer < layer { return true }
        if child.node.isDirectory {
            for (name, c) in child.node.children where prune(c, layer: layer) { child.node.children[name] = nil }
        }
        return false
    }

    /// The most symlinks one path may pass through: go-securejoin's limit, so what umoci
    /// unpacks Kiln unpacks too (the kernel stops at 40 when the image runs).
    public static let maxSymlinks = 255

    /// Where `comps` lands inside the root, resolved the way go-securejoin does it (and
    /// umoci with it): one component at a time; a symlink is replaced by its target, read
    /// from the directory holding it, or from the root when absolute; `..` goes up one
    /// resolved directory and never above the root. Components that do not exist are
    /// kept as they are (they name directories to create). The last component is only
    /// followed when `followLast` is set (open(2) rather than lstat(2)).
    /// - Returns: the resolved path (no symlink in it) and the nodes along it: `nodes[0]`
    ///   is the root, `nodes[i]` the node at `path[..<i]`, as far as the path exists.
    func resolve(_ comps: [String], followLast: Bool, what: String, entry: String) throws -> (path: [String], nodes: [Node]) {
        var path: [String] = []
        var nodes: [Node] = [root]
        var pending = Array(comps.reversed())
        var links = 0
        while let c = pending.popLast() {
            if c.isEmpty || c == "." { continue }
            let exists = nodes.count == path.count + 1
            if exists, !nodes.last!.isDirectory {
                throw ImageError.invalid("\(what): entry \"\(entry)\" is below \"\(path.joined(separator: "/"))\", which is not a directory")
            }
            if c == ".." {
                if !path.isEmpty {
                    path.removeLast()
                    if nodes.count > path.count + 1 { nodes.removeLast() }
                }
                continue
            }
            guard exists, let child = nodes.last!.children[c]?.node else {
                path.append(c)
                continue
            }
            if case .symlink(let target) = child.kind,
               followLast || pending.contains(where: { !$0.isEmpty && $0 != "." }) {
                links += 1
                guard links <= Rootfs.maxSymlinks else {
                    throw ImageError.invalid("\(what): entry \"\(entry)\": too many levels of symbolic links (more than \(Rootfs.maxSymlinks)) at \"\((path + [c]).joined(separator: "/"))\"")
                }
                if target.hasPrefix("/") {
                    path = []
                    nodes = [root]
                }
                pending.append(contentsOf: target.split(separator: "/", omittingEmptySubsequences: true).reversed().map(String.init))
                continue
            }
            path.append(c)
            nodes.append(child)
        }
        return (path, nodes)
    }

    /// The directory at `comps` (symlinks on the way resolved inside the root), created
    /// with what is missing (0755, root) when `create` is set, as umoci's MkdirAll does.
    /// A file on the way is an error.
    private func directory(_ comps: [String], create: Bool, layer: Int, what: String, entry: String) throws -> Node {
        let (path, nodes) = try resolve(comps, followLast: true, what: what, entry: entry)
        var cur = nodes.last!
        guard cur.isDirectory else {
            throw ImageError.invalid("\(what): entry \"\(entry)\" is below \"\(path.joined(separator: "/"))\", which is not a directory")
        }
        guard nodes.count <= path.count else { return cur }
        guard create else { throw ImageError.notFound(entry) }
        for c in path[(nodes.count - 1)...] {
            let d = Node(kind: .directory, mode: 0o755)
            cur.children[c] = (d, layer)
            cur = d
        }
        return cur
    }

    /// The node at `path` (relative or absolute), symlinks on the way resolved inside the
    /// root; the last one too when `followLast` is set. Nil when nothing is there.
    func node(at path: String, followLast: Bool) -> Node? {
        let comps = path.split(separator: "/").map(String.init)
        guard let (resolved, nodes) = try? resolve(comps, followLast: followLast, what: "", entry: path),
              nodes.count == resolved.count + 1 else { return nil }
        return nodes.last
    }

    // MARK: Reading back

    /// What is at `path` (relative or absolute), as lstat(2) sees it: symlinks in the
    /// parents are followed inside the root, the last component is not.
    public enum Item: Equatable, Sendable {
        case directory, regular(size: Int64), symlink(String), device, fifo
    }

    public func item(at path: String) -> Item? {
        guard let n = node(at: path, followLast: false) else { return nil }
        switch n.kind {
        case .directory: return .directory
        case .regular(_, let size): return .regular(size: size)
        case .symlink(let t): return .symlink(t)
        case .charDevice, .blockDevice: return .device
        case .fifo: return .fifo
        }
    }

    /// The bytes of a regular file (for `/etc/passwd` and friends), symlinks followed
    /// inside the root as open(2) would in a chroot; nil when `path` is not a regular
    /// file. Files above `limit` are an error.
    public func contents(of path: String, limit: Int = 16 << 20) throws -> [UInt8]? {
        guard let n = node(at: path, followLast: true), case .regular(let body, let size) = n.kind else { return nil }
        guard size <= limit else { throw ImageError.invalid("\(path.hasPrefix("/") ? path : "/" + path) is larger than \(limit) bytes") }
        guard let body else { return [] }
        return try FileReader(path: body).readAll(limit: limit)
    }

    /// The owner and mode of the node at `path` (as `item(at:)` finds it).
    public func metadata(at path: String) -> (mode: UInt32, uid: Int, gid: Int)? {
        node(at: path, followLast: false).map { ($0.mode, $0.uid, $0.gid) }
    }

    /// Every path with its node, parents before children, siblings sorted bytewise
    /// (GNU tar's `--sort=name` order). The root is not included.
    func walk(_ body: (String, Node) throws -> Void) rethrows {
        func visit(_ dir: Node, _ prefix: String) throws {
            let names = dir.children.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            for name in names {
                let node = dir.children[name]!.node
                let path = prefix.isEmpty ? name : prefix + "/" + name
                try body(path, node)
                if node.isDirectory { try visit(node, path) }
            }
        }
        try visit(root, "")
    }

    /// All paths in order (for tests and listings); directories end in `/`.
    public var paths: [String] {
        var out: [String] = []
        walk { p, n in out.append(n.isDirectory ? p + "/" : p) }
        return out
    }
}

