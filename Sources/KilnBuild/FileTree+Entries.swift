#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// One entry of a layer, ready for the tar writer: the header plus where the body comes from.
public struct LayerEntry: Sendable, Equatable {
    public var header: TarHeader
    public var source: FileSource?
}

extension FileTree {
    /// Paths in the order of GNU tar's `--sort=name`: component by component, bytewise,
    /// every parent before its children. Each path's bytes with `/` turned into 0 (which
    /// no name contains) compare as plain byte strings, so the sort runs on memcmp.
    public static func sortedPaths<S: Sequence>(_ paths: S) -> [String] where S.Element == String {
        var keyed: [([UInt8], String)] = paths.map { p in
            (p.utf8.map { $0 == UInt8(ascii: "/") ? 0 : $0 }, p)
        }
        keyed.sort { a, b in
            let n = min(a.0.count, b.0.count)
            let c = n == 0 ? 0 : a.0.withUnsafeBufferPointer { x in b.0.withUnsafeBufferPointer { y in memcmp(x.baseAddress!, y.baseAddress!, n) } }
            return c != 0 ? c < 0 : a.0.count < b.0.count
        }
        return keyed.map(\.1)
    }

    /// The layer's entries in their final order, each with its tar header.
    ///
    /// Regular files that share an inode (and the same mode, owner and xattrs after
    /// `perms`) are written once; the others become hard links to the first in order,
    /// so the choice never depends on how the inputs were created.
    public func entries(mtime: Int64) -> [LayerEntry] {
        let ordered = FileTree.sortedPaths(nodes.keys)
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
                              mtime: node.mtime ?? mtime, xattrs: node.xattrs)
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
