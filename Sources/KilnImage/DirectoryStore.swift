#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// An OCI image-layout directory. A new directory is staged beside its final path and
/// renamed into place; an existing layout is added to, blob by blob (each blob is
/// written to a temporary name and renamed), with `index.json` replaced last.
public final class DirectoryStore: LayoutStore {
    public let path: String
    private let work: String
    private let isNew: Bool
    private var committed = false

    public init(path: String) throws {
        self.path = path
        var st = stat()
        if lstat(path, &st) == 0 {
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                throw ImageError.invalid("\(path) exists and is not a directory")
            }
            let entries = (try? FileSystem.listDirectory(path)) ?? []
            guard entries.isEmpty || entries.contains("oci-layout") else {
                throw ImageError.invalid("\(path) exists and is not an OCI layout; refusing to write into it")
            }
            isNew = false
            work = path
        } else {
            isNew = true
            work = siblingTemp(of: path)
        }
        try FileSystem.makeDirectories(work + "/blobs/sha256")
    }

    deinit { if !committed { abort() } }

    public func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        let tmp = work + "/blobs/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let file = try FileWriter(creating: tmp)
            let hasher = PipelinedHashingWriter(file)
            try body(hasher)
            try file.sync()
            let digest = hasher.digest
            let final = work + "/" + name(digest)
            try FileSystem.makeDirectories(parentDirectory(final))
            guard rename(tmp, final) == 0 else { throw ImageError.io("cannot write \(final): \(errnoMessage())") }
            return (digest, hasher.count)
        } catch {
            unlink(tmp)
            throw error
        }
    }

    public func putKnown(_ name: String, size: Int64, body: (ByteWriter) throws -> Void) throws -> Digest {
        let written = try putStreamed(name: { _ in name }) { out in
            let counted = ExactSizeWriter(out, size: size, what: name)
            try body(counted)
            try counted.check()
        }
        return written.digest
    }

    public func putLocalFile(_ name: String, from path: String, size: Int64) throws {
        let final = work + "/" + name
        if access(final, F_OK) == 0 { return }
        try FileSystem.makeDirectories(parentDirectory(final))
        // A hard link costs nothing; across file systems, a kernel copy.
        if link(path, final) == 0 { return }
        let tmp = work + "/blobs/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let out = try FileWriter(creating: tmp)
            let src = try FileReader(path: path)
            try out.copy(fromFile: src, count: size)
            try out.sync()
            guard rename(tmp, final) == 0 else { throw ImageError.io("cannot write \(final): \(errnoMessage())") }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    public func putFile(_ name: String, _ bytes: [UInt8]) throws {
        let final = work + "/" + name
        let tmp = final + ".tmp-\(getpid())"
        do {
            let f = try FileWriter(creating: tmp)
            try f.write(bytes)
            try f.sync()
            guard rename(tmp, final) == 0 else { throw ImageError.io("cannot write \(final): \(errnoMessage())") }
        } catch {
            unlink(tmp)
            throw error
        }
    }

    public func putDirectory(_ name: String) throws {
        try FileSystem.makeDirectories(work + "/" + name)
    }

    public func existingFile(_ name: String) -> [UInt8]? {
        isNew ? nil : readSmallFile(path + "/" + name)
    }

    public func commit() throws {
        if isNew {
            guard rename(work, path) == 0 else {
                throw ImageError.io("cannot move the layout into place at \(path): \(errnoMessage())")
            }
        }
        committed = true
    }

    public func abort() {
        if isNew { FileSystem.removeTree(work) }
        committed = true
    }
}
