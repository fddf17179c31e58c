#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

extension LayerCache {
    /// Takes a layer blob downloaded from a cache repo (its digest and size already
    /// checked as it arrived) into this cache under `key`, as `store` would have left
    /// it had the layer been built here: blob first, entry last, each through a
    /// temporary name, synced and renamed.
    func adopt(blobAt source: String, descriptor: Descriptor, diffID: Digest, uncompressedSize: Int64,
               tarsum: String?, key: String) throws -> any StoredLayer {
        let blob = blobPath(descriptor.digest)
        var st = stat()
        if !(stat(blob, &st) == 0 && Int64(st.st_size) == descriptor.size) {
            let tmp = "\(root)/tmp/\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            defer { unlink(tmp) }
            // A hard link when the download spool is on the cache's file system, else a
            // copy; synced either way (the spool is not), so the entry written after it
            // never outlives its blob's bytes in a crash.
            if link(source, tmp) == 0 {
                let fd = open(tmp, O_RDONLY | O_CLOEXEC)
                defer { if fd >= 0 { close(fd) } }
                guard fd >= 0, fsync(fd) == 0 else { throw BuildError("cache: cannot sync \(tmp): \(String(cString: strerror(errno)))") }
            } else {
                let reader = try FileReader(path: source)
                let writer = try FileWriter(creating: tmp)
                try writer.copy(fromFile: reader, count: descriptor.size)
                try writer.sync()
            }
            guard stat(tmp, &st) == 0, Int64(st.st_size) == descriptor.size else {
                throw BuildError("cache: \(source): not the \(descriptor.size) bytes of \(descriptor.digest)")
            }
            guard rename(tmp, blob) == 0 else { throw BuildError("cache: cannot store \(blob): \(String(cString: strerror(errno)))") }
        }
        let entry = Entry(descriptor: descriptor, diffID: diffID, uncompressedSize: uncompressedSize, tarsum: tarsum)
        try FileSystem.writeAtomically(try CanonicalJSON.encode(entry), to: "\(root)/layers/\(key).json")
        return CachedLayer(descriptor: descriptor, diffID: diffID, path: blob, tarsum: tarsum)
    }
}
