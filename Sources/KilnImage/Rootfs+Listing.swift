import KilnArchive
import KilnOCI

extension Rootfs {
    /// One path of a flattened image as `kiln diff` and listings report it.
    public struct Entry: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable { case directory, file, symlink, device, fifo }
        public var kind: Kind
        public var size: Int64
        public var mode: UInt32
        public var uid: Int
        public var gid: Int
        /// A symlink's target.
        public var target: String?
    }

    /// Every path (no leading `/`) with what is there, parents before children,
    /// siblings in byte order.
    public func entries() -> [(path: String, entry: Entry)] {
        var out: [(String, Entry)] = []
        walk { path, node in
            let kind: Entry.Kind, size: Int64, target: String?
            switch node.kind {
            case .directory: (kind, size, target) = (.directory, 0, nil)
            case .regular(_, let s): (kind, size, target) = (.file, s, nil)
            case .symlink(let t): (kind, size, target) = (.symlink, 0, t)
            case .charDevice, .blockDevice: (kind, size, target) = (.device, 0, nil)
            case .fifo: (kind, size, target) = (.fifo, 0, nil)
            }
            out.append((path, Entry(kind: kind, size: size, mode: node.mode & 0o7777, uid: node.uid, gid: node.gid, target: target)))
        }
        return out
    }

    /// The sha256 of a regular file's content (streamed from its spooled body), nil when
    /// `path` is not a regular file. Symlinks in the parents are followed inside the root.
    public func fileDigest(at path: String) throws -> Digest? {
        guard let n = node(at: path, followLast: false), case .regular(let body, _) = n.kind else { return nil }
        guard let body else { return .sha256([]) }
        let hashing = HashingWriter(NullWriter())
        _ = try FileReader(path: body).copy(to: hashing)
        try hashing.finish()
        return hashing.digest
    }
}
