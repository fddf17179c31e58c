import KilnArchive

/// One entry of a layer, ready for the tar writer: the header plus where the body comes from.
public struct LayerEntry: Sendable, Equatable {
    public var header: TarHeader
    public var source: FileSource?
}

extension FileTree {
    /// Compares paths component by component, bytewise: the order of GNU tar's
    /// `--sort=name`, with every parent before its children.
    public static func pathPrecedes(_ a: String, _ b: String) -> Bool {
        var ia = a.utf8.makeIterator()
        var ib = b.utf8.makeIterator()
        while true {
            let ca = ia.next(), cb = ib.next()
            switch (ca, cb) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case let (x?, y?):
                if x == y { continue }
                // '/' ends a component, so it sorts before any other byte.
                if x == UInt8(ascii: "/") { return true }
                if y == UInt8(ascii: "/") { return false }
                return x < y
            }
        }
    }

    /// The layer's entries in their final order, each with its tar header.
    ///
    /// Regular files that share an inode (and the same mode, owner and xattrs after
    /// `perms`) are written once; the others become hard links to the first in order,
    /// so the choice never depends on how the inputs were created.
    public func entries(mtime: Int64) -> [LayerEntry] {
        let ordered = nodes.keys.sorted(by: FileTree.pathPrecedes)
        struct LinkKey: Hashable {
            var identity: FileIdentity
            var mode: UInt32, uid: Int, gid: Int
            var xattrs: [String: [UInt8]]
        }
        var firstPath: [LinkKey: String] = [:]
        var out: [LayerEntry] = []
        out.reserveCapacity(ordered.count)
        for path in ordered {
            let node = nodes[path]!
            var h = TarHeader(name: path, kind: .regular, mode: node.mode & 0o7777, uid: node.uid, gid: node.gid,
                              mtime: mtime, xattrs: node.xattrs)
            var source: FileSource? = nil
            switch node.content {
            case .directory:
                h.kind = .directory
                h.name = path + "/"
            case .file(let src):
                if case .host(_, _, let id?) = src {
                    let key = LinkKey(identity: id, mode: node.mode, uid: node.uid, gid: node.gid, xattrs: node.xattrs)
                    if let target = firstPath[key] {
                        h.kind = .hardlink
                        h.linkName = target
                        break
                    }
                    firstPath[key] = path
                }
                h.size = src.size
                source = src
            case .symlink(let target):
                h.kind = .symlink
                h.linkName = target
            case .hardlink(let target):
                h.kind = .hardlink
                h.linkName = target
            case .charDevice(let ma, let mi):
                h.kind = .charDevice
                h.devMajor = ma
                h.devMinor = mi
            case .blockDevice(let ma, let mi):
                h.kind = .blockDevice
                h.devMajor = ma
                h.devMinor = mi
            case .fifo:
                h.kind = .fifo
            }
            out.append(LayerEntry(header: h, source: source))
        }
        return out
    }
}
