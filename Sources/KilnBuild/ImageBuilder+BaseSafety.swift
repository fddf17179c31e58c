#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

/// Contents on a base never break it silently (README "Contents on a base").
///
/// After the contents are placed through the base's symlinks (`FileTree.mergeResolving`):
/// - a directory the base has keeps the base's mode and owner (`/tmp` stays 1777): a
///   directory's metadata is never a conflict; `perms` changes it explicitly;
/// - a file, symlink or special file with the same type, bytes (size first, then the
///   sha256 of both), mode and owner as the base's is left out of the new layer, as the
///   seed leaves out what `comm` finds in both the base and the closure;
/// - anything else that would replace a base path is a conflict, settled by the item's
///   `onConflict` (else the spec's): `error` (the default) names up to five paths and
///   the item, `replace` keeps the item's, `keep` leaves it out so the base's stays.
///
/// Only paths that content items bring are checked: what Kiln merges on purpose
/// (`/etc/passwd`, `group`, `shadow`, `gshadow` from `users`), the packages' layers and
/// Kiln's dpkg/CA files (`packageLayers`), and what `extraCommands` writes are not.
extension ImageBuilder {
    /// Directories that the base has take the base's mode and owner.
    static func adoptBaseDirectories(_ tree: inout FileTree, base: any BaseFiles) {
        for (p, node) in tree.nodes where node.isDirectory {
            guard base.item(at: p) == .directory, let m = base.metadata(at: p) else { continue }
            tree.update(p) { $0.mode = m.mode; $0.uid = m.uid; $0.gid = m.gid }
        }
    }

    /// Leaves out what the base already has and settles conflicts (see above).
    /// `provenance` maps each placed path to the content items that brought it.
    func settleAgainstBase(_ tree: inout FileTree, provenance: [String: Set<Int>], base: any BaseFiles) throws {
        var conflicts: [Int: [String]] = [:]
        var drop: [String] = []
        for p in FileTree.sortedPaths(tree.nodes.keys) {
            guard let items = provenance[p], let last = items.max(), let node = tree[p],
                  let have = base.item(at: p) else { continue }
            let haveKind = ViewKind(have)
            if node.isDirectory && haveKind == .directory { continue }
            if try sameAsBase(node, at: p, have: have, base: base) {
                drop.append(p)
                continue
            }
            switch spec.contents[last].onConflict ?? spec.onConflict {
            case .replace: continue
            case .keep: drop.append(p)
            case .error: conflicts[last, default: []].append(p)
            }
        }
        if let (i, paths) = conflicts.min(by: { $0.key < $1.key }) {
            let item = spec.contents[i]
            let shown = paths.prefix(5).map { "/" + $0 }.joined(separator: ", ")
            let more = paths.count > 5 ? " and \(paths.count - 5) more" : ""
            throw BuildError("\(item.location): contents[\(i)] would replace \(paths.count == 1 ? "a file" : "\(paths.count) files") of the base with different \(paths.count == 1 ? "one" : "ones"): \(shown)\(more); set `onConflict: replace` (on the item or for the spec) to replace them, or `onConflict: keep` to keep the base's")
        }
        for p in drop { tree.removeSubtree(p) }
        Self.pruneDirectoriesAsInBase(&tree, base: base)
    }

    /// Removes directories left with nothing below them that the base has with the same
    /// mode and owner: the layer would only repeat them.
    static func pruneDirectoriesAsInBase(_ tree: inout FileTree, base: any BaseFiles) {
        var hasChild = Set<String>()
        for p in FileTree.sortedPaths(tree.nodes.keys).reversed() {
            let node = tree[p]!
            if node.isDirectory, !hasChild.contains(p), base.item(at: p) == .directory,
               let m = base.metadata(at: p), m.mode == node.mode & 0o7777, m.uid == node.uid, m.gid == node.gid,
               node.xattrs.isEmpty {
                tree.removeSubtree(p)
                continue
            }
            if let slash = p.lastIndex(of: "/") { hasChild.insert(String(p[..<slash])) }
        }
    }

    /// True when `node` is what the base has at `path`: same type, mode and owner, and
    /// for a file the same size and then the same sha256.
    func sameAsBase(_ node: FileNode, at path: String, have: Rootfs.Item, base: any BaseFiles) throws -> Bool {
        guard let m = base.metadata(at: path), m.uid == node.uid, m.gid == node.gid else { return false }
        switch (node.content, have) {
        case (.symlink(let a), .symlink(let b)):
            return a == b
        case (.file(let src), .regular(let size)):
            guard m.mode == node.mode & 0o7777, src.size == size, node.xattrs.isEmpty else { return false }
            let mine = try contentDigest(src)
            return try mine == base.fileDigest(at: path)
        default:
            return false
        }
    }

    /// The sha256 of a file node's bytes: recorded when Kiln unpacked them, else read.
    func contentDigest(_ src: FileSource) throws -> Digest {
        switch src {
        case .inline(let bytes):
            return Digest.sha256(bytes)
        case .host(let path, _, _):
            return try staging.contentDigest(of: path) ?? IsolatedClosure.fileDigest(path)
        }
    }
}
