#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

extension FileTree {
    /// Unpacks a `.tar`, `.tar.gz` or `.tar.zst` at `imagePath` (the seed's mergeDrvs
    /// untars such inputs). Only file bodies touch the disk, under content-free names in
    /// `staging`; paths stay data, so a hostile name can never write outside the build.
    /// Modes come from the archive; owners are 0 unless `perms` says otherwise.
    public mutating func addArchive(_ archivePath: String, at imagePath: String, staging: Staging, xattrs: Bool, key: String) throws {
        let reader: ByteReader
        do {
            reader = try Compression.openDecompressed(path: archivePath)
        } catch {
            throw BuildError("\(key): \(archivePath): \(error)")
        }
        let tar = TarReader(reader)
        let stager = try TarStager(staging: staging, hint: "archive", container: "archive", what: "\(key): \(archivePath)")
        let root = FileTree.normalize(imagePath)
        do {
            while let h = try tar.next() {
                ProgressBoard.shared.planned()
                var name = h.name
                while name.hasPrefix("/") { name.removeFirst() }
                if FileTree.escapesRoot(name) {
                    throw BuildError("\(key): \(archivePath): entry \"\(h.name)\" points outside the archive root")
                }
                let rel = FileTree.normalize(name)
                if rel.isEmpty { continue }  // "./" itself
                // A member below a symlink an earlier member made goes through it, as tar
                // extracts it (the base's symlinks are followed when the item is merged).
                var dest = root.isEmpty ? rel : root + "/" + rel
                if let slash = dest.lastIndex(of: "/") {
                    let parent = try FileTree.resolve(String(dest[..<slash]), followFinal: true) { nodes[$0].map(ViewKind.init) }
                    dest = (parent.isEmpty ? "" : parent + "/") + dest[dest.index(after: slash)...]
                }
                var linkKey: String?
                if h.kind == .hardlink {
                    var target = h.linkName
                    while target.hasPrefix("/") { target.removeFirst() }
                    linkKey = FileTree.normalize(target)
                }
                var node = try stager.node(for: h, from: tar, key: rel, linkKey: linkKey)
                if xattrs { node.xattrs = h.xattrs }
                if node.isDirectory, let old = nodes[dest], old.isDirectory {
                    update(dest) { $0.mode = node.mode; $0.xattrs = node.xattrs }
                } else {
                    insert(dest, node)
                }
            }
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError("\(key): \(archivePath): \(error)")
        }
    }
}
