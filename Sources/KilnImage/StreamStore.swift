import KilnArchive
import KilnOCI

/// A tar written front to back into a pipe (`kiln build --stream | podman load`): no
/// temporary file, no seeking. Entries must be known by name and size before their
/// bytes, so sinks compute digests in a first pass. A failure cannot unwrite what
/// went out; the consumer sees a truncated archive and the exit status says why.
public final class StreamStore: LayoutStore {
    private let out: ByteWriter
    private let mtime: Int64
    private var names: Set<String> = []

    public init(_ out: ByteWriter, mtime: Int64 = 0) {
        self.out = out
        self.mtime = mtime
    }

    public func putStreamed(name: (Digest) -> String, body: (ByteWriter) throws -> Void) throws -> (digest: Digest, size: Int64) {
        throw ImageError.invalid("internal: a streamed archive needs each entry's name and size before its bytes")
    }

    public func putKnown(_ name: String, size: Int64, body: (ByteWriter) throws -> Void) throws -> Digest {
        let hasher = HashingWriter(nil)
        if names.contains(name) {
            // Already in the archive: only the digest is wanted.
            try body(ExactSizeWriter(hasher, size: size, what: name))
            return hasher.digest
        }
        let tw = TarWriter(UnfinishedWriter(out))
        try tw.writeHeader(TarHeader(name: name, kind: .regular, mode: 0o644, size: size, mtime: mtime))
        let counted = ExactSizeWriter(TeeToTar(tw, hasher), size: size, what: name)
        try body(counted)
        try counted.check()
        names.insert(name)
        return hasher.digest
    }

    public func putLocalFile(_ name: String, from path: String, size: Int64) throws {
        _ = try putKnown(name, size: size) { try FileReader(path: path).copy(to: $0) }
    }

    public func putFile(_ name: String, _ bytes: [UInt8]) throws {
        _ = try putKnown(name, size: Int64(bytes.count)) { try $0.write(bytes) }
    }

    public func putDirectory(_ name: String) throws {
        let n = name.hasSuffix("/") ? name : name + "/"
        guard !names.contains(n) else { return }
        try TarWriter(UnfinishedWriter(out)).writeHeader(TarHeader(name: n, kind: .directory, mode: 0o755, mtime: mtime))
        names.insert(n)
    }

    public func existingFile(_ name: String) -> [UInt8]? { nil }

    public func commit() throws {
        try out.write([UInt8](repeating: 0, count: 1024))
        try out.finish()
    }

    public func abort() {}
}

/// Feeds a tar entry's body and a hasher at once.
private final class TeeToTar: ByteWriter {
    let tar: TarWriter
    let hasher: HashingWriter
    init(_ tar: TarWriter, _ hasher: HashingWriter) {
        self.tar = tar
        self.hasher = hasher
    }
    func write(_ buffer: UnsafeRawBufferPointer) throws {
        try tar.writeBody(buffer)
        try hasher.write(buffer)
    }
    func finish() throws {}
}
