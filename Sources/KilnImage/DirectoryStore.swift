#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// An OCI image-layout directory (image-spec image-layout.md).
///
/// A new directory is staged beside its final path and renamed into place. An existing
/// layout is added to in place, and a failed write leaves it exactly as it was: each
/// blob is written to a temporary name and renamed to its digest only if no blob of
/// that name is there (content addressing makes an existing one the same bytes), and
/// the store remembers the blobs and directories it added; small files (`index.json`,
/// `oci-layout`) are staged beside their final names and renamed over them only on
/// `commit`, `index.json` last. `abort` removes the staged files, the added blobs and
/// the added directories, so a layout that held another image still holds it alone.
///
/// Assumed: one writer per layout at a time (as with skopeo and umoci, nothing locks
/// it). A process killed mid-write leaves `index.json` untouched but may leave blobs
/// nothing references, which are harmless.
public final class DirectoryStore: LayoutStore {
    public let path: String
    private let work: String
    private let isNew: Bool
    private var committed = false
    /// What this store added to an existing layout, in order, to undo on `abort`.
    private var addedFiles: [String] = []
    private var addedDirectories: [String] = []
    /// Small files written beside their final names: (temporary, final), renamed on commit.
    private var staged: [(tmp: String, final: String)] = []

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
        try makeDirectories(work + "/blobs/sha256")
    }

    deinit { if !committed { abort() } }

    /// `mkdir -p`, remembering what it made (in an existing layout) for `abort`.
    private func makeDirectories(_ dir: String) throws {
        var cur = dir.hasPrefix("/") ? "" : "."
        for c in dir.split(separator: "/") {
            cur += "/" + c
            if mkdir(cur, 0o755) == 0 {
                if !isNew { addedDirectories.append(cur) }
            } else if errno != EEXIST {
                throw ImageError.io("cannot create directory \(cur): \(errnoMessage())")
            }
        }
    }

    private func exists(_ p: String) -> Bool {
        var st = stat()
        return lstat(p, &st) == 0
    }

    /// Moves a finished temporary file to `final`, unless a file of that (content-
    /// addressed) name is already there, which is then kept as it is.
    private func place(_ tmp: String, at final: String) throws {
        if exists(final) {
            unlink(tmp)
            return
        }
        try makeDirectories(parentDirectory(final))
        guard rename(tmp, final) == 0 else { throw ImageError.io("cannot write \(final): \(errnoMessage())") }
        if !isNew { addedFiles.append(final) }
    }

    private func tempName() -> String {
        work + "/blobs/.tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    public func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        let tmp = tempName()
        do {
            let file = try FileWriter(creating: tmp)
            let hasher = PipelinedHashingWriter(file)
            try body(hasher)
            try file.sync()
            let digest = hasher.digest
            try place(tmp, at: work + "/" + name(digest))
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
        if exists(final) { return }
        try makeDirectories(parentDirectory(final))
        // A hard link costs nothing; across file systems, a kernel copy.
        if link(path, final) == 0 {
            if !isNew { addedFiles.append(final) }
            return
        }
        let tmp = tempName()
        do {
            let out = try FileWriter(creating: tmp)
            let src = try FileReader(path: path)
            try out.copy(fromFile: src, count: size)
            try out.sync()
            try place(tmp, at: final)
        } catch {
            unlink(tmp)
            throw error
        }
    }

    /// A new layout is private until renamed, so its files go straight in; in an
    /// existing layout they wait beside their final names for `commit`.
    public func putFile(_ name: String, _ bytes: [UInt8]) throws {
        let final = work + "/" + name
        guard !isNew else {
            try FileSystem.writeAtomically(bytes, to: final)
            return
        }
        let tmp = final + ".kiln-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            let f = try FileWriter(creating: tmp)
            try f.write(bytes)
            try f.sync()
        } catch {
            unlink(tmp)
            throw error
        }
        staged.removeAll { s in
            if s.final == final { unlink(s.tmp) }
            return s.final == final
        }
        staged.append((tmp, final))
    }

    public func putDirectory(_ name: String) throws {
        try makeDirectories(work + "/" + name)
    }

    public func existingFile(_ name: String) -> [UInt8]? {
        isNew ? nil : readSmallFile(path + "/" + name)
    }

    public func hasExisting(_ name: String) -> Bool {
        !isNew && exists(path + "/" + name)
    }

    public func commit() throws {
        if isNew {
            guard rename(work, path) == 0 else {
                throw ImageError.io("cannot move the layout into place at \(path): \(errnoMessage())")
            }
        } else {
            // The blobs are synced; `index.json` (staged last) makes them part of the layout.
            while let s = staged.first {
                let wasThere = exists(s.final)
                guard rename(s.tmp, s.final) == 0 else { throw ImageError.io("cannot write \(s.final): \(errnoMessage())") }
                staged.removeFirst()
                if !wasThere { addedFiles.append(s.final) }
            }
            staged = []
        }
        committed = true
    }

    public func abort() {
        if isNew {
            FileSystem.removeTree(work)
        } else {
            for s in staged { unlink(s.tmp) }
            for f in addedFiles.reversed() { unlink(f) }
            for d in addedDirectories.reversed() { rmdir(d) }
            staged = []
            addedFiles = []
            addedDirectories = []
        }
        committed = true
    }
}
