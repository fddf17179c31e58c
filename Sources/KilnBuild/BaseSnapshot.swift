#if canImport(Glibc)
import Glibc
#endif
import CKilnSys
import KilnArchive
import KilnImage
import KilnOCI

/// Base layers extracted once, for runAsRoot's overlay to stack as lower directories
/// (one per layer) instead of copying the base into every build.
///
/// Layout under the cache root: `snapshots/<variant>-<diffID hex>/` for a layer that
/// stands on its own, `snapshots/<variant>-chain-<chain ID hex>/` for one that needed the
/// layers below it (parents it does not list, hard links into them) and for merged
/// snapshots of several bottom layers; each holds `root/` (the layer as overlayfs
/// reads it) and `digest`, written last. `variant` is `root` or `u<uid>`: a non-root
/// extraction keeps no owners or device nodes, and marks opaque directories with
/// `user.overlay.*`. A snapshot is extracted into `snapshots/tmp/`, its blob digest and
/// diffID checked while it is read, synced, and renamed into place: a killed build
/// leaves only a temporary directory that nothing reads (`kiln cache prune` removes
/// it), and two builds extracting the same layer both succeed, the first rename
/// winning. Use checks `digest` (cheap); builds hold the cache's shared lock, prune its
/// exclusive one. Without a cache the snapshots live in the build's staging directory.
final class BaseSnapshots {
    let dir: String
    let shared: Bool
    let userns: Bool
    let variant: String
    let limits: RootfsLimits
    /// How many layers were extracted by this build (for notices and tests).
    private(set) var extracted = 0

    /// Most lower directories one overlay mount takes (fs/overlayfs/params.h
    /// OVL_MAX_STACK); the mount's option page is usually the tighter limit.
    static let kernelMaxStack = 500

    init(cacheRoot: String?, staging: Staging, limits: RootfsLimits = RootfsLimits()) throws {
        userns = geteuid() != 0
        variant = userns ? "u\(geteuid())" : "root"
        self.limits = limits
        if let cacheRoot {
            dir = cacheRoot + "/snapshots"
            shared = true
            try FileSystem.makeDirectories(dir + "/tmp")
        } else {
            dir = staging.newPath("snapshots")
            shared = false
            try FileSystem.makeDirectories(dir + "/tmp")
        }
    }

    /// Snapshots extracted by this call, not yet in place: (temporary directory relative
    /// to `dir`, final name, digest recorded).
    private var pending: [(tmp: String, name: String, digest: Digest)] = []

    /// The lower directories for `layers` (bottom first), as names relative to `dir`:
    /// one per layer, the bottom ones merged when there are more than `maxLowers`. What
    /// had to be extracted is synced once (syncfs(2), as containerd's `sync_fs` unpack
    /// option does) and renamed into place at the end.
    func lowers(for layers: [any StoredLayer], maxLowers: Int, what: String) throws -> [String] {
        guard !layers.isEmpty else { return [] }
        let merge = layers.count > maxLowers ? layers.count - maxLowers + 1 : 0
        var out: [String] = []
        let chain = Digest.chainIDs(layers.map(\.diffID))
        do {
            if merge > 0 {
                out.append(try merged(Array(layers[..<merge]), chainID: chain[merge - 1], what: what))
            }
            for i in merge..<layers.count {
                let below = out.reversed().map { dir + "/" + $0 + "/root" }
                out.append(try layer(layers[i], chainID: chain[i], below: below,
                                     what: "\(what): layer \(i + 1) of \(layers.count) (\(layers[i].descriptor.digest))"))
            }
            let placed = try commitPending()
            return out.map { (placed[$0] ?? $0) + "/root" }
        } catch {
            for p in pending { FileSystem.removeTree(dir + "/" + p.tmp) }
            pending = []
            throw error
        }
    }

    /// One layer's snapshot: by diffID when it stands alone, else by chain ID.
    private func layer(_ layer: any StoredLayer, chainID: Digest, below: [String], what: String) throws -> String {
        let alone = "\(variant)-\(layer.diffID.hex)"
        let chained = "\(variant)-chain-\(chainID.hex)"
        for name in [alone, chained] where isValid(name, digest: name == alone ? layer.diffID : chainID) { return name }
        try refuseDamaged(alone, digest: layer.diffID)
        try refuseDamaged(chained, digest: chainID)
        let (tmp, writer) = try begin(below: below)
        do {
            try extract(layer, into: writer, what: what)
            try writer.finish()
        } catch {
            FileSystem.removeTree(dir + "/" + tmp)
            throw error
        }
        let name = writer.usedBelow ? chained : alone
        pending.append((tmp, name, name == alone ? layer.diffID : chainID))
        return tmp
    }

    /// The bottom layers applied into one directory, keyed by their chain ID.
    private func merged(_ layers: [any StoredLayer], chainID: Digest, what: String) throws -> String {
        let name = "\(variant)-chain-\(chainID.hex)"
        if isValid(name, digest: chainID) { return name }
        try refuseDamaged(name, digest: chainID)
        let (tmp, writer) = try begin(below: [])
        do {
            for (i, l) in layers.enumerated() {
                try extract(l, into: writer, what: "\(what): layer \(i + 1) of \(layers.count) (\(l.descriptor.digest))")
            }
            try writer.finish()
        } catch {
            FileSystem.removeTree(dir + "/" + tmp)
            throw error
        }
        pending.append((tmp, name, chainID))
        return tmp
    }

    /// Puts the pending snapshots in place: their digests recorded, the file system
    /// synced once, each renamed; one another build put in place meanwhile is used and
    /// this one dropped. Returns the final name of each temporary one.
    private func commitPending() throws -> [String: String] {
        defer { pending = [] }
        guard !pending.isEmpty else { return [:] }
        var placed: [String: String] = [:]
        if shared {
            for p in pending {
                let w = try FileWriter(creating: dir + "/" + p.tmp + "/digest", mode: 0o644)
                try w.write(Array(p.digest.description.utf8))
            }
            // Everything extracted reaches the disk before a name says it is complete.
            let fd = open(dir + "/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { kiln_syncfs(fd); close(fd) }
        }
        for p in pending {
            let final = dir + "/" + p.name
            if rename(dir + "/" + p.tmp, final) != 0 {
                let e = errno
                guard shared, e == EEXIST || e == ENOTEMPTY, isValid(p.name, digest: p.digest) else {
                    throw BuildError("cache: cannot store the snapshot \(final): \(String(cString: strerror(e)))")
                }
                FileSystem.removeTree(dir + "/" + p.tmp)
            }
            placed[p.tmp] = p.name
        }
        if shared {
            let fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd >= 0 { fsync(fd); close(fd) }
        }
        return placed
    }

    /// A new temporary snapshot (its name relative to `dir`) and its writer.
    private func begin(below: [String]) throws -> (String, SnapshotWriter) {
        let tmp = "tmp/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let full = dir + "/" + tmp
        guard mkdir(full, 0o700) == 0, mkdir(full + "/root", 0o755) == 0 else {
            throw BuildError("cannot create \(full): \(errnoText())")
        }
        return (tmp, try SnapshotWriter(root: full + "/root", below: below, userns: userns))
    }

    /// Applies a stored layer, checking its blob digest, size and diffID.
    private func extract(_ layer: any StoredLayer, into writer: SnapshotWriter, what: String) throws {
        let blob = HashingReader(try layer.openBlob())
        let plain: ByteReader
        do {
            plain = try Compression.decompressing(blob, limit: limits.maxLayerSize)
        } catch {
            throw BuildError("\(what): \(error)")
        }
        let diffID = try writer.apply(tar: plain, what: what, maxEntrySize: limits.maxLayerSize)
        extracted += 1
        try layer.verify(blob: blob, uncompressed: diffID, what: what)
    }

    /// A snapshot directory that is there but does not record the digest it must have
    /// was not written by Kiln's rename (which comes after the digest): something else
    /// changed it, so nothing in it is trusted or silently replaced.
    private func refuseDamaged(_ name: String, digest: Digest) throws {
        guard shared, access(dir + "/" + name, F_OK) == 0 else { return }
        let recorded = (try? FileReader(path: dir + "/" + name + "/digest").readAll(limit: 256)).map { String(decoding: $0, as: UTF8.self) }
        throw BuildError("cache: the snapshot \(dir)/\(name) is damaged (it records \(recorded.map { "\"\($0)\"" } ?? "no digest"), not \(digest)); run `kiln cache prune --all` or remove it")
    }

    /// A cheap check: the snapshot is there with its recorded digest. Touches it, so
    /// `prune` keeps what is in use.
    func isValid(_ name: String, digest: Digest) -> Bool {
        let final = dir + "/" + name
        if !shared { return access(final + "/root", F_OK) == 0 }
        guard let r = try? FileReader(path: final + "/digest"), let bytes = try? r.readAll(limit: 256),
              String(decoding: bytes, as: UTF8.self) == digest.description else { return false }
        var st = stat()
        guard lstat(final + "/root", &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return false }
        utimes(final + "/digest", nil)
        return true
    }

    /// Removes temporary leftovers, snapshots unused for `olderThan` seconds (every one
    /// with 0) and anything that is not a complete snapshot. The caller holds the
    /// cache's exclusive lock. Returns the bytes freed.
    static func prune(cacheRoot: String, olderThan: Int64) throws -> Int64 {
        let dir = cacheRoot + "/snapshots"
        var freed: Int64 = 0
        guard access(dir, F_OK) == 0 else { return 0 }
        for n in (try? FileSystem.listDirectory(dir + "/tmp")) ?? [] { freed += removeCounting(dir + "/tmp/" + n) }
        let now = Int64(time(nil))
        for n in try FileSystem.listDirectory(dir) where n != "tmp" {
            var st = stat()
            let complete = lstat(dir + "/" + n + "/digest", &st) == 0
            if !complete || now - Int64(st.st_mtim.tv_sec) >= olderThan {
                freed += removeCounting(dir + "/" + n)
            }
        }
        return freed
    }

    /// `rm -rf` returning the bytes of the regular files removed.
    private static func removeCounting(_ path: String) -> Int64 {
        var st = stat()
        guard lstat(path, &st) == 0 else { return 0 }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            var n: Int64 = 0
            for c in (try? FileSystem.listDirectory(path)) ?? [] { n += removeCounting(path + "/" + c) }
            rmdir(path)
            return n
        }
        unlink(path)
        return (st.st_mode & S_IFMT) == S_IFREG && st.st_nlink <= 1 ? Int64(st.st_size) : 0
    }
}
