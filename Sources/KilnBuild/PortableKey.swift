#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnOCI

/// The machine-independent key of a layer, under which a cache repo keeps it
/// (`kiln build --cache-repo`).
///
/// The local cache key (`LayerCache.key`) names host files by device, inode and times,
/// which mean nothing on another machine. This one covers only what decides the layer's
/// bytes: every tar header (`TreeLayer.metadataDigest`: names, modes, owners, the tar's
/// mtimes, link targets, xattrs), the SHA-256 of every file's content in order, and
/// the compressor with its library version (`Compression.encoderIdentity`). Two
/// machines with the same inputs compute the same key; a key never depends on where
/// the inputs sit on the host or when they were written there.
struct PortableKeyer: Sendable {
    let staging: Staging
    /// Content digests of host files already hashed, by stat identity (nil: no cache).
    let memo: ContentDigestMemo?

    func key(for layer: TreeLayer, compression: Compression) throws -> String {
        var h = SHA256Hasher()
        h.update(Array("kiln-portable-layer-v1 \(compression.encoderIdentity) \(layer.metadataDigest)\n".utf8))
        for e in layer.entries {
            switch e.source {
            case .host(let path, let size, _)?:
                h.update(Array("content \(try contentDigest(path: path, size: size))\n".utf8))
            case .inline(let bytes)?:
                h.update(Array("content \(Digest.sha256(bytes))\n".utf8))
            case nil:
                break
            }
        }
        return h.finalize().hex
    }

    /// The SHA-256 of a file's `size` bytes: known already for bodies unpacked into the
    /// staging area, remembered from an earlier build when the file's stat identity is
    /// unchanged, hashed otherwise.
    private func contentDigest(path: String, size: Int64) throws -> Digest {
        if let d = staging.contentDigest(of: path) { return d }
        var st = stat()
        guard stat(path, &st) == 0 else { throw BuildError("cannot read \(path): \(String(cString: strerror(errno)))") }
        guard Int64(st.st_size) == size else { throw BuildError("\(path): file changed while the build read it") }
        // Files Kiln staged itself (extraCommands' tree) are new each build: not remembered.
        let remember = memo != nil && !path.hasPrefix(staging.path + "/")
        let id = ContentDigestMemo.StatKey(st)
        if remember, let d = memo?.lookup(id) { return d }
        let reader = try FileReader(path: path)
        var h = SHA256Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try reader.read(into: buffer)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
        }
        guard h.count == size else { throw BuildError("\(path): file changed while the build read it") }
        let d = h.finalize()
        if remember { memo?.record(id, digest: d, stat: st) }
        return d
    }
}

/// Host files' content digests by their stat identity (device, inode, size, mtime,
/// ctime, as git's index and the local cache key trust them), kept in the local cache
/// (`content-digests.v1`), so a machine does not hash an unchanged file again.
///
/// A file whose times are within two seconds of the moment it was hashed is not
/// remembered: it could change again within the same timestamp tick (git's "racily
/// clean" entries), and a stale digest here would put a wrong layer under a key other
/// machines trust. The file is a cache: concurrent builds may drop each other's new
/// entries (they are hashed again next time), never corrupt it (temp file + rename).
final class ContentDigestMemo: @unchecked Sendable {
    struct StatKey: Hashable {
        var dev: UInt64, ino: UInt64, size: Int64
        var mtime: Int64, mtimeNsec: Int64, ctime: Int64, ctimeNsec: Int64

        init(_ st: stat) {
            dev = UInt64(st.st_dev)
            ino = UInt64(st.st_ino)
            size = Int64(st.st_size)
            mtime = Int64(st.st_mtim.tv_sec)
            mtimeNsec = Int64(st.st_mtim.tv_nsec)
            ctime = Int64(st.st_ctim.tv_sec)
            ctimeNsec = Int64(st.st_ctim.tv_nsec)
        }

        init?(_ fields: [Substring]) {
            guard fields.count == 7, let a = UInt64(fields[0]), let b = UInt64(fields[1]), let c = Int64(fields[2]),
                  let d = Int64(fields[3]), let e = Int64(fields[4]), let f = Int64(fields[5]), let g = Int64(fields[6]) else { return nil }
            (dev, ino, size, mtime, mtimeNsec, ctime, ctimeNsec) = (a, b, c, d, e, f, g)
        }

        var line: String { "\(dev) \(ino) \(size) \(mtime) \(mtimeNsec) \(ctime) \(ctimeNsec)" }
    }

    /// At most this many entries are kept; the oldest go first.
    static let limit = 500_000

    let path: String
    /// Shared by the hashing threads: everything below is behind `lock`.
    private let lock = NSLock()
    private var known: [StatKey: Digest]?
    private var added: [(StatKey, Digest)] = []

    init(cacheRoot: String) { path = cacheRoot + "/content-digests.v1" }

    func lookup(_ key: StatKey) -> Digest? {
        lock.withLock {
            if known == nil { known = Dictionary(Self.read(path).map { ($0.0, $0.1) }, uniquingKeysWith: { $1 }) }
            return known?[key]
        }
    }

    func record(_ key: StatKey, digest: Digest, stat st: stat) {
        let now = Int64(time(nil))
        guard now - max(Int64(st.st_mtim.tv_sec), Int64(st.st_ctim.tv_sec)) >= 2 else { return }
        lock.withLock {
            known?[key] = digest
            added.append((key, digest))
        }
    }

    /// Writes the entries learnt in this build after those on disk now.
    func save() throws {
        let added = lock.withLock { () -> [(StatKey, Digest)] in
            defer { self.added = [] }
            return self.added
        }
        guard !added.isEmpty else { return }
        let new = Set(added.map(\.0))
        var lines = Self.read(path).filter { !new.contains($0.0) }.map { "\($0.0.line) \($0.1.hex)\n" }
        lines += added.map { "\($0.0.line) \($0.1.hex)\n" }
        if lines.count > Self.limit { lines.removeFirst(lines.count - Self.limit) }
        try FileSystem.writeAtomically(Array(lines.joined().utf8), to: path)
    }

    /// The entries on disk, in order; unreadable lines are skipped.
    private static func read(_ path: String) -> [(StatKey, Digest)] {
        guard let r = try? FileReader(path: path), let bytes = try? r.readAll(limit: 512 << 20) else { return [] }
        var out: [(StatKey, Digest)] = []
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count == 8, let key = StatKey(f[0..<7].map { $0 }), f[7].utf8.count == 64,
                  let d = try? Digest(parsing: "sha256:" + f[7]) else { continue }
            out.append((key, d))
        }
        return out
    }
}

