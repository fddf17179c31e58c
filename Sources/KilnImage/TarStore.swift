#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnOCI

/// A single tar file (OCI archive, docker-archive), written to a temporary file beside
/// its destination and renamed into place on `commit`.
///
/// Streamed entries get a placeholder header that is patched once the body's digest
/// and size are known, so no layer is ever buffered or written twice.
public final class TarStore: LayoutStore {
    public let path: String
    private let tmp: String
    private let file: FileWriter
    private var names: Set<String> = []
    private var committed = false
    /// Fixed mtime for the archive's own entries.
    private let mtime: Int64

    /// The `index.json` of the archive being rewritten (`carrying`), if any.
    private var carriedIndex: [UInt8]?

    public init(path: String, mtime: Int64 = 0) throws {
        self.path = path
        self.tmp = siblingTemp(of: path)
        self.file = try FileWriter(creating: tmp)
        self.mtime = mtime
    }

    /// A new archive that will replace `old` (an OCI archive at `path`) holding all it
    /// held: every blob its `index.json` reaches is copied in first, and that
    /// `index.json` is the existing one a sink adds to. A tar cannot be appended to in
    /// place without risking the original, so adding an artifact to an OCI archive
    /// rewrites it beside itself and renames it over the old one on `commit`.
    public convenience init(path: String, carrying old: OCILayout, mtime: Int64 = 0) throws {
        try self.init(path: path, mtime: mtime)
        do {
            let index = try old.files.open("index.json").readAll(limit: documentLimit)
            for d in try old.reachableBlobs() {
                let name = OCILayout.blobName(d.digest)
                let size = try old.files.size(name)
                let digest = try putKnown(name, size: size) { out in _ = try old.files.open(name).copy(to: out) }
                guard digest == d.digest else {
                    throw ImageError.digestMismatch(what: "\(old.what): blob \(d.digest)", expected: d.digest, actual: digest)
                }
            }
            carriedIndex = index
        } catch {
            abort()
            throw error
        }
    }

    deinit { if !committed { abort() } }

    public func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        let start = file.offset
        try file.write([UInt8](repeating: 0, count: TarBlock.size))
        let hasher = PipelinedHashingWriter(UnfinishedWriter(file))
        try body(hasher)
        let size = hasher.count
        let digest = hasher.digest
        let entryName = name(digest)
        if names.contains(entryName) {
            // Same name means same bytes: drop the copy just written.
            try file.truncate(to: start)
            return (digest, size)
        }
        let header = TarHeader(name: entryName, kind: .regular, mode: 0o644, size: size, mtime: mtime)
        let encoded = try TarWriter.encode(header)
        guard encoded.count == TarBlock.size else {
            throw ImageError.invalid("\(entryName): entries over 8 GiB are not supported in archives yet")
        }
        try file.pwrite(encoded, at: start)
        let pad = Int(TarBlock.padded(size) - size)
        if pad > 0 { try file.write([UInt8](repeating: 0, count: pad)) }
        names.insert(entryName)
        return (digest, size)
    }

    public func putKnown(_ name: String, size: Int64, body: (ByteWriter) throws -> Void) throws -> Digest {
        try putStreamed(name: { _ in name }) { out in
            let counted = ExactSizeWriter(out, size: size, what: name)
            try body(counted)
            try counted.check()
        }.digest
    }

    public func putLocalFile(_ name: String, from path: String, size: Int64) throws {
        guard !names.contains(name) else { return }
        let tw = TarWriter(UnfinishedWriter(file))
        try tw.writeHeader(TarHeader(name: name, kind: .regular, mode: 0o644, size: size, mtime: mtime))
        // The body goes file to file in the kernel; the tar writer only pads.
        try file.copy(fromFile: try FileReader(path: path), count: size)
        let pad = Int(TarBlock.padded(size) - size)
        if pad > 0 { try file.write([UInt8](repeating: 0, count: pad)) }
        names.insert(name)
    }

    public func putFile(_ name: String, _ bytes: [UInt8]) throws {
        guard !names.contains(name) else { return }
        let tw = TarWriter(UnfinishedWriter(file))
        try tw.writeHeader(TarHeader(name: name, kind: .regular, mode: 0o644, size: Int64(bytes.count), mtime: mtime))
        try bytes.withUnsafeBytes { try tw.writeBody($0) }
        names.insert(name)
    }

    public func putDirectory(_ name: String) throws {
        let n = name.hasSuffix("/") ? name : name + "/"
        guard !names.contains(n) else { return }
        let tw = TarWriter(UnfinishedWriter(file))
        try tw.writeHeader(TarHeader(name: n, kind: .directory, mode: 0o755, mtime: mtime))
        names.insert(n)
    }

    public func existingFile(_ name: String) -> [UInt8]? {
        name == "index.json" ? carriedIndex : nil
    }

    /// Blobs of the carried archive (a subject to refer to) are in the new one already.
    public func hasExisting(_ name: String) -> Bool {
        carriedIndex != nil && names.contains(name)
    }

    public func commit() throws {
        try file.write([UInt8](repeating: 0, count: 1024))
        try file.sync()
        guard rename(tmp, path) == 0 else {
            throw ImageError.io("cannot move the archive into place at \(path): \(errnoMessage())")
        }
        committed = true
    }

    public func abort() {
        unlink(tmp)
        committed = true
    }
}
