#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnDebian

/// A Debian package unpacked as data: its files as a tree, plus what dpkg would record
/// of it (the paths as the package names them, for `info/NAME.list`).
public struct UnpackedPackage: Sendable {
    public var tree: FileTree
    /// Every path of the data.tar as the package names it (`/usr/bin/x`, `/bin/y`),
    /// directories included, in archive order: dpkg's `.list` file.
    public var packagePaths: [String]
    /// Paths of regular files and their size, after merged-/usr placement.
    public var fileCount: Int
    public var byteCount: Int64
}

extension FileTree {
    /// The top-level directories that merged-/usr systems (Debian 12 and later) keep as
    /// symlinks into `/usr`: dpkg on such a system writes a package's `/lib/x` through
    /// the symlink to `/usr/lib/x`, so Kiln places it there directly.
    public static let mergedUsrDirectories = ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]

    /// `lib/x` → `usr/lib/x` on a merged-/usr system; other paths unchanged.
    static func mergedUsrPath(_ rel: String) -> String {
        let top = rel.split(separator: "/", maxSplits: 1).first.map(String.init) ?? rel
        return mergedUsrDirectories.contains(top) ? "usr/" + rel : rel
    }

    /// Unpacks the data.tar of `deb` as dpkg would, without dpkg: modes, owners and
    /// mtimes as in the package (so the same package gives the same layer in every
    /// image), hard links kept, bodies spooled into `staging`. Paths stay data, so a
    /// hostile member name can never write outside the build; one that climbs out of
    /// the root is an error naming the package.
    ///
    /// - Parameter mergedUsr: place `/bin`, `/sbin`, `/lib*` entries under `/usr`.
    public static func unpackDebian(_ deb: DebArchive, what: String, mergedUsr: Bool, staging: Staging) throws -> UnpackedPackage {
        let tar = TarReader(try deb.openData())
        let stager = try TarStager(staging: staging, hint: "deb", container: "package", what: "\(what): data.tar")
        var tree = FileTree()
        var listed: [String] = []
        var files = 0
        var bytes: Int64 = 0
        func place(_ name: String) throws -> (rel: String, dest: String) {
            var n = name
            while n.hasPrefix("/") { n.removeFirst() }
            if FileTree.escapesRoot(n) {
                throw BuildError("\(what): data.tar member \"\(name)\" points outside the root")
            }
            let rel = FileTree.normalize(n)
            return (rel, mergedUsr ? mergedUsrPath(rel) : rel)
        }
        do {
            while let h = try tar.next() {
                ProgressBoard.shared.planned()
                let (rel, dest) = try place(h.name)
                if rel.isEmpty { listed.append("/."); continue }
                listed.append("/" + rel)
                let linkKey = h.kind == .hardlink ? try place(h.linkName).dest : nil
                var node = try stager.node(for: h, from: tar, key: dest, linkKey: linkKey)
                if h.kind == .regular { bytes += h.size }
                if h.kind == .regular || h.kind == .hardlink { files += 1 }
                node.uid = h.uid
                node.gid = h.gid
                node.mtime = h.mtime
                if node.isDirectory, let old = tree[dest], old.isDirectory {
                    tree.update(dest) { $0.mode = node.mode; $0.uid = node.uid; $0.gid = node.gid; $0.mtime = node.mtime }
                } else {
                    tree.insert(dest, node)
                }
            }
            // The compressed stream's checksum is only checked at its very end.
            _ = try tar.skipTrailingData()
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError("\(what): \(error)")
        }
        return UnpackedPackage(tree: tree, packagePaths: listed, fileCount: files, byteCount: bytes)
    }
}
