import KilnImage

/// What one path of the image is, as seen by the contents added above it.
enum ViewKind: Equatable {
    case directory
    case file
    case symlink(String)
    case other

    init(_ node: FileNode) {
        switch node.content {
        case .directory: self = .directory
        case .file, .hardlink: self = .file
        case .symlink(let t): self = .symlink(t)
        default: self = .other
        }
    }

    init(_ item: Rootfs.Item) {
        switch item {
        case .directory: self = .directory
        case .regular: self = .file
        case .symlink(let t): self = .symlink(t)
        case .device, .fifo: self = .other
        }
    }
}

/// The image below the contents being placed: the base's flattened root, then the trees
/// this build adds before them (package layers, Kiln's generated files), top wins.
/// Paths are in `FileTree.normalize` form.
struct ImageView {
    var base: (any BaseFiles)?
    /// Bottom to top.
    var trees: [FileTree] = []

    func kind(at path: String) -> ViewKind? {
        for t in trees.reversed() { if let n = t[path] { return ViewKind(n) } }
        return base?.item(at: path).map(ViewKind.init)
    }
}

extension FileTree {
    /// The most symlinks one path may cross, as Linux allows (`MAXSYMLINKS`, path_resolution(7)).
    static let maxSymlinkHops = 40

    /// Resolves `path` (normal form) through the symlinks `kind` reports, as the kernel
    /// resolves a path inside a chroot (path_resolution(7)) and as Docker's `COPY` places
    /// files on a base: an absolute target starts again at the image root, `..` never
    /// climbs above it, so the result always stays inside the image. The last component
    /// is followed only when `followFinal` is set. The result is in normal form.
    static func resolve(_ path: String, followFinal: Bool, kind: (String) -> ViewKind?) throws -> String {
        var pending: [Substring] = path.split(separator: "/").reversed()
        var current: [Substring] = []
        var hops = 0
        while let c = pending.popLast() {
            if c == "." { continue }
            if c == ".." { _ = current.popLast(); continue }
            let candidate = (current + [c]).joined(separator: "/")
            if pending.isEmpty && !followFinal {
                current.append(c)
                continue
            }
            guard case .symlink(let target)? = kind(candidate) else {
                current.append(c)
                continue
            }
            hops += 1
            guard hops <= maxSymlinkHops else {
                throw BuildError("/\(path): too many levels of symbolic links in the image (more than \(maxSymlinkHops), or a loop)")
            }
            if target.hasPrefix("/") { current = [] }
            pending.append(contentsOf: target.split(separator: "/").reversed())
        }
        return current.joined(separator: "/")
    }

    /// Merges `item` over this tree the way `merge` does (later wins, implicit
    /// directories only fill gaps), except that every path is first placed through the
    /// symlinks of this tree and of `below`, so a base's `/lib -> usr/lib` is followed
    /// rather than replaced by a directory (Docker's `COPY` does the same):
    /// - a parent directory that is a symlink is followed;
    /// - a directory placed on a symlink to a directory goes to that directory;
    /// - anything else placed on a symlink replaces the symlink itself (whether that is
    ///   allowed on a base is `onConflict`'s business, see `ImageBuilder+BaseSafety`).
    ///
    /// Returns where each path of `item` went.
    @discardableResult
    mutating func mergeResolving(_ item: FileTree, below: ImageView) throws -> [String: String] {
        if nodes.isEmpty, below.base == nil, below.trees.allSatisfy({ $0.nodes.isEmpty }) {
            // Nothing to go through: the paths stay as they are (a path holds one node,
            // so no symlink of the item has anything of the item below it).
            self = item
            return Dictionary(uniqueKeysWithValues: item.nodes.keys.map { ($0, $0) })
        }
        var placed: [String: String] = [:]
        func kind(_ p: String) -> ViewKind? {
            if let n = nodes[p] { return ViewKind(n) }
            return below.kind(at: p)
        }
        for p in FileTree.sortedPaths(item.nodes.keys) {
            let node = item.nodes[p]!
            let slash = p.lastIndex(of: "/")
            let parent = slash.map { String(p[..<$0]) } ?? ""
            let name = slash.map { String(p[p.index(after: $0)...]) } ?? p
            let rparent = parent.isEmpty ? "" : try (placed[parent] ?? FileTree.resolve(parent, followFinal: true, kind: kind))
            var dest = rparent.isEmpty ? name : rparent + "/" + name
            if case .symlink? = kind(dest), node.isDirectory {
                let followed = try FileTree.resolve(dest, followFinal: true, kind: kind)
                if !followed.isEmpty, kind(followed) == .directory { dest = followed }
            }
            placed[p] = dest
            guard !dest.isEmpty else { continue }  // a symlink to the root: the root itself
            if item.implicitDirectories.contains(p) {
                // Created only as a parent: inserting its children creates it when missing.
                continue
            }
            insert(normalized: dest, node)
        }
        return placed
    }
}

extension FileTree {
    /// A `perms` pattern placed as contents are (`mergeResolving`): its leading literal
    /// components go through the image's symlinks, so `/lib/x86_64-linux-gnu/*.so` names
    /// what lands in `usr/lib/x86_64-linux-gnu` on a merged-/usr image. A wholly literal
    /// pattern keeps its last component (it may name a symlink itself).
    static func resolvePattern(_ pattern: String, kind: (String) -> ViewKind?) throws -> String {
        let comps = pattern.split(separator: "/").map(String.init)
        let literal = comps.firstIndex { $0.contains(where: { "*?[".contains($0) }) } ?? comps.count
        guard literal > 0 else { return pattern }
        let upTo = literal == comps.count ? literal - 1 : literal
        guard upTo > 0 else { return pattern }
        let head = try resolve(comps[..<upTo].joined(separator: "/"), followFinal: true, kind: kind)
        let rest = comps[upTo...]
        return "/" + ((head.isEmpty ? [] : [head]) + rest).joined(separator: "/")
    }
}
