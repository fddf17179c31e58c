import KilnOCI

// Docker's legacy "tarsum" layer checksum (docker/docker pkg/tarsum, the
// `checksum` of pre-1.10 layer JSON). See /work/shared/reference/formats.md,
// "Docker legacy tarsum".

/// A tarsum version; the raw value is the checksum's prefix.
public enum TarsumVersion: String, Sendable, CaseIterable {
    /// Hashes mtime; no xattrs.
    case v0 = "tarsum"
    /// No mtime; xattrs (PAX `SCHILY.xattr.*`) sorted by key.
    case v1 = "tarsum.v1"

    /// The version of a `tarsum[.vN]+sha256:<hex>` string; nil for other strings
    /// (other versions or hash algorithms are not supported).
    public init?(checksum: String) {
        guard let plus = checksum.firstIndex(of: "+"), checksum[plus...].hasPrefix("+sha256:") else { return nil }
        self.init(rawValue: String(checksum[..<plus]))
    }
}

/// Docker's legacy tarsum over sha256.
///
/// Each entry is hashed on its own: the header fields as key+value strings with
/// no separators — `name` (raw bytes), `mode`, `uid`, `gid`, `size`, `mtime` (v0
/// only), `typeflag` (one byte), `linkname`, `uname` and `gname` (both with empty
/// values: Docker ignores them since Go 1.10), `devmajor`, `devminor`, numbers in
/// decimal; v1 then adds each xattr as KEY+VALUE sorted by key — followed by the
/// body. The per-entry hex digests are sorted as strings and the checksum is the
/// sha256 of their concatenation: `tarsum+sha256:<hex>` (v0) or
/// `tarsum.v1+sha256:<hex>` (v1). An empty archive hashes nothing.
///
/// Headers are taken as Go's archive/tar reader reports them (see
/// `TarRawHeader`): PAX and GNU extension headers are not entries, but a pax
/// global header is one, as in Docker.
///
/// Feed it while writing (`beginEntry`, `update` for the body, `finish`), or use
/// `compute(reader:version:)` on an existing archive.
public struct Tarsum: Sendable {
    public let version: TarsumVersion
    private var entry: SHA256Hasher?
    private var sums: [String] = []

    public init(version: TarsumVersion = .v1) {
        self.version = version
    }

    /// Starts an entry from the header given to `TarWriter`: hashes the fields as
    /// a Go reader would read them back from TarWriter's output.
    public mutating func beginEntry(_ h: TarHeader) {
        beginEntry(raw: TarRawHeader(writtenBy: h))
    }

    /// Starts an entry from the fields of an existing archive (`TarReader.raw`).
    public mutating func beginEntry(raw h: TarRawHeader) {
        endEntry()
        var hasher = SHA256Hasher()
        Tarsum.headerBytes(h, version: version).withUnsafeBytes { hasher.update($0) }
        entry = hasher
    }

    /// Adds body bytes of the current entry.
    public mutating func update(_ body: UnsafeRawBufferPointer) {
        precondition(entry != nil, "Tarsum.update before beginEntry")
        entry!.update(body)
    }

    public mutating func update(_ body: [UInt8]) {
        body.withUnsafeBytes { update($0) }
    }

    /// Ends the last entry and returns the checksum string.
    public mutating func finish() -> String {
        endEntry()
        var all = SHA256Hasher()
        for s in sums.sorted() { Array(s.utf8).withUnsafeBytes { all.update($0) } }
        return "\(version.rawValue)+sha256:\(all.finalize().hex)"
    }

    private mutating func endEntry() {
        if let e = entry { sums.append(e.finalize().hex) }
        entry = nil
    }

    /// The key+value byte string hashed for a header.
    static func headerBytes(_ h: TarRawHeader, version: TarsumVersion) -> [UInt8] {
        var b: [UInt8] = []
        func add(_ key: String, _ value: [UInt8]) {
            b += Array(key.utf8)
            b += value
        }
        func add(_ key: String, _ value: Int64) { add(key, Array(String(value).utf8)) }
        add("name", h.name)
        add("mode", h.mode)
        add("uid", h.uid)
        add("gid", h.gid)
        add("size", h.size)
        if version == .v0 { add("mtime", h.mtime) }
        add("typeflag", [h.typeflag])
        add("linkname", h.linkName)
        add("uname", [UInt8]())
        add("gname", [UInt8]())
        add("devmajor", h.devMajor)
        add("devminor", h.devMinor)
        if version == .v1 {
            for x in h.xattrs { b += x.key + x.value }
        }
        return b
    }

    /// The tarsum of a tar archive, plain or gzip/zstd compressed (sniffed).
    /// - Parameter limit: the most decompressed bytes to accept.
    public static func compute(reader: ByteReader, version: TarsumVersion = .v1, limit: Int64? = nil) throws -> String {
        let tar = TarReader(try Compression.decompressing(reader, limit: limit))
        var sum = Tarsum(version: version)
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buf.deallocate() }
        while let record = try tar.nextRecord() {
            switch record {
            case .globalHeader(let raw):
                sum.beginEntry(raw: raw)
            case .entry(_, let raw):
                sum.beginEntry(raw: raw)
                while true {
                    let n = try tar.readBody(into: buf)
                    if n == 0 { break }
                    sum.update(UnsafeRawBufferPointer(rebasing: buf[..<n]))
                }
            }
        }
        // Read to the end so a compressed stream's checksum is verified too.
        try tar.skipTrailingData()
        return sum.finish()
    }
}

extension TarRawHeader {
    /// The fields a Go reader reports for `h` as `TarWriter` encodes it: mode
    /// masked to 07777, size 0 unless a regular file, device numbers clamped to
    /// the 7 octal digits of the ustar field, empty xattrs dropped (a Go reader
    /// ignores empty pax values). Long names and large ids go through pax, so
    /// they come back exactly.
    public init(writtenBy h: TarHeader) {
        self.init(
            name: Array(h.name.utf8), linkName: Array(h.linkName.utf8), typeflag: h.kind.typeflag,
            mode: Int64(h.mode & 0o7777), uid: Int64(h.uid), gid: Int64(h.gid), size: h.bodySize,
            mtime: h.mtime, devMajor: min(Int64(h.devMajor), 0o7777777), devMinor: min(Int64(h.devMinor), 0o7777777),
            xattrs: TarRawHeader.xattrList(h.xattrs))
    }
}
