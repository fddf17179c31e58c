#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

/// Every build's provenance documents (`Provenance`), kept in the layer cache as
/// `provenance/<config digest hex>.json`, so `kiln inspect --files` and `kiln report`
/// name each file's origin for any image built here, with no flag at build time.
///
/// Keyed by the image's config digest, not its manifest digest: the config (its
/// `rootfs.diff_ids` and history) is the same bytes in every transport and through every
/// copy, while the manifest's digest changes with the layers' compression and media
/// types — a docker-archive copied to a registry (its plain layers compressed), an OCI
/// layout pushed with another compressor, `docker load` then `docker save` all keep
/// the config digest. The document is matched to the image by its layers' diffIDs when
/// read (`kiln inspect`'s side), so one document serves all of them.
///
/// Written to the cache's `tmp/` and renamed into place (a reader never sees half a
/// document); `prune` trims documents unused for as long as the other entries, and a
/// read touches its document.
extension LayerCache {
    /// Where the document of the image whose config has this digest is kept.
    public static func provenancePath(root: String, configDigest: Digest) -> String {
        "\(root)/provenance/\(configDigest.hex).json"
    }

    /// Keeps `document` for the image whose config has this digest (replacing any before).
    public func storeProvenance(_ document: Provenance, configDigest: Digest) throws {
        try FileSystem.makeDirectories(root + "/provenance")
        let bytes = try document.encode()
        let tmp = "\(root)/tmp/\(getpid())-\(UInt32.random(in: 0...UInt32.max)).provenance"
        defer { unlink(tmp) }
        let w = try FileWriter(creating: tmp)
        try w.write(bytes)
        try w.sync()
        let path = Self.provenancePath(root: root, configDigest: configDigest)
        guard rename(tmp, path) == 0 else {
            throw BuildError("cache: cannot store \(path): \(String(cString: strerror(errno)))")
        }
        cacheLog.debug("provenance of \(configDigest) kept in the cache")
    }

    /// The document kept for the image whose config has this digest: nil when there is
    /// none; an error when the file cannot be read or is not a provenance document.
    /// Reads without taking the cache's lock or creating anything under `root` (a
    /// document is replaced by rename, so it is read whole or not at all).
    public static func storedProvenance(root: String, configDigest: Digest) throws -> Provenance? {
        let path = provenancePath(root: root, configDigest: configDigest)
        guard access(path, F_OK) == 0 else { return nil }
        let doc = try Provenance.decode(try FileReader(path: path).readAll(limit: 256 << 20), what: path)
        // Touch it, so `prune` keeps what is in use (a read-only cache keeps its mtime).
        utimes(path, nil)
        return doc
    }
}
