/// Writes a POSIX pax-format tar stream (ustar headers, with a pax extended header
/// only when a field does not fit: long names, large sizes or ids, xattrs).
///
/// The output depends only on the headers and bodies given: no clock, no user
/// names, no host state. Pax headers get a fixed name so they are reproducible too.
public final class TarWriter {
    private let out: ByteWriter
    private var remaining: Int64 = 0
    private var padding: Int = 0
    /// Bytes written so far, headers and padding included.
    public private(set) var offset: Int64 = 0

    public init(_ out: ByteWriter) { self.out = out }

    /// Writes the header (and pax header when needed). For a regular file the caller
    /// then writes exactly `header.size` bytes with `writeBody`.
    public func writeHeader(_ h: TarHeader) throws {
        precondition(remaining == 0, "previous entry body not complete")
        let blocks = try TarWriter.encode(h)
        try emit(blocks)
        remaining = h.bodySize
        padding = Int(TarBlock.padded(h.bodySize) - h.bodySize)
        if remaining == 0 { try pad() }
    }

    public func writeBody(_ buffer: UnsafeRawBufferPointer) throws {
        guard Int64(buffer.count) <= remaining else {
            throw ArchiveError.corrupt("tar entry body longer than its header size (file changed while reading?)")
        }
        try out.write(buffer)
        offset += Int64(buffer.count)
        remaining -= Int64(buffer.count)
        if remaining == 0 { try pad() }
    }

    /// Copies the body from a reader; fails if the reader yields another size.
    public func writeBody(from reader: ByteReader, size: Int64, what: String, buffer: UnsafeMutableRawBufferPointer) throws {
        var left = size
        while left > 0 {
            let want = Int(min(Int64(buffer.count), left))
            let n = try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
            if n == 0 { throw ArchiveError.corrupt("\(what): file shrank while it was being read") }
            try writeBody(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            left -= Int64(n)
        }
    }

    /// Writes the two zero blocks that end an archive, then finishes the output.
    public func close(finishOutput: Bool = true) throws {
        precondition(remaining == 0, "entry body not complete")
        try emit([UInt8](repeating: 0, count: 1024))
        if finishOutput { try out.finish() }
    }

    private func pad() throws {
        if padding > 0 {
            try emit([UInt8](repeating: 0, count: padding))
            padding = 0
        }
    }

    private func emit(_ bytes: [UInt8]) throws {
        try out.write(bytes)
        offset += Int64(bytes.count)
    }

    // MARK: Encoding

    static let maxOctal7: Int = 0o7777777
    static let maxOctal11: Int64 = 0o77777777777

    /// The size in bytes the header blocks of `h` take (pax header included).
    public static func headerSize(_ h: TarHeader) throws -> Int64 {
        Int64(try encode(h).count)
    }

    /// The full encoded size of an entry: headers plus padded body.
    public static func entrySize(_ h: TarHeader) throws -> Int64 {
        try headerSize(h) + TarBlock.padded(h.bodySize)
    }

    /// Encodes the header blocks for `h` (a pax `x` header first when needed).
    public static func encode(_ h: TarHeader) throws -> [UInt8] {
        var pax: [(String, [UInt8])] = []
        let nameBytes = Array(h.name.utf8)
        let split = splitUstarName(nameBytes)
        if split == nil { pax.append(("path", nameBytes)) }
        let linkBytes = Array(h.linkName.utf8)
        if linkBytes.count > 100 { pax.append(("linkpath", linkBytes)) }
        // Only a body needs its size recorded: a pax `size` on a link or directory
        // would make readers that honour it (GNU tar) expect data that is not there.
        if h.bodySize > maxOctal11 { pax.append(("size", Array(String(h.bodySize).utf8))) }
        if h.uid > maxOctal7 || h.uid < 0 { pax.append(("uid", Array(String(h.uid).utf8))) }
        if h.gid > maxOctal7 || h.gid < 0 { pax.append(("gid", Array(String(h.gid).utf8))) }
        if h.mtime > maxOctal11 || h.mtime < 0 { pax.append(("mtime", Array(String(h.mtime).utf8))) }
        // The ustar owner name fields hold 32 bytes; longer names would be cut.
        if h.uname.utf8.count > 32 { pax.append(("uname", Array(h.uname.utf8))) }
        if h.gname.utf8.count > 32 { pax.append(("gname", Array(h.gname.utf8))) }
        for key in h.xattrs.keys.sorted() { pax.append(("SCHILY.xattr." + key, h.xattrs[key]!)) }

        var out: [UInt8] = []
        if !pax.isEmpty {
            var body: [UInt8] = []
            for (k, v) in pax { body += paxRecord(k, v) }
            var ph = TarHeader(name: "././@PaxHeader", kind: .regular, mode: 0o644, size: Int64(body.count), mtime: clampMtime(h.mtime))
            ph.kind = .regular
            out += block(ph, name: (Array("././@PaxHeader".utf8), []), typeflag: UInt8(ascii: "x"))
            out += body
            out += [UInt8](repeating: 0, count: Int(TarBlock.padded(Int64(body.count))) - body.count)
        }
        let (n, prefix) = split ?? (Array(nameBytes.prefix(100)), [])
        out += block(h, name: (n, prefix), typeflag: h.kind.typeflag)
        return out
    }

    static func clampMtime(_ t: Int64) -> Int64 { min(max(t, 0), maxOctal11) }

    /// ustar splits a long name into prefix (≤155) '/' name (≤100).
    static func splitUstarName(_ name: [UInt8]) -> ([UInt8], [UInt8])? {
        if name.count <= 100 { return (name, []) }
        if name.count > 256 { return nil }
        // Find a '/' such that prefix ≤ 155 and rest ≤ 100.
        var i = min(name.count - 1, 155)
        while i > 0 {
            if name[i] == UInt8(ascii: "/") && name.count - i - 1 <= 100 && name.count - i - 1 > 0 {
                return (Array(name[(i + 1)...]), Array(name[..<i]))
            }
            i -= 1
        }
        return nil
    }

    static func paxRecord(_ key: String, _ value: [UInt8]) -> [UInt8] {
        let payload = Array(" \(key)=".utf8) + value + [0x0A]
        // The length prefix counts itself.
        var len = payload.count + 1
        while String(len).utf8.count + payload.count != len { len = String(len).utf8.count + payload.count }
        return Array(String(len).utf8) + payload
    }

    static func block(_ h: TarHeader, name: ([UInt8], [UInt8]), typeflag: UInt8) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        func put(_ bytes: [UInt8], _ off: Int, _ len: Int) {
            for (i, c) in bytes.prefix(len).enumerated() { b[off + i] = c }
        }
        func octal(_ v: Int64, _ off: Int, _ len: Int) {
            // len-1 zero-padded octal digits, then NUL (already there); all 7s if too big.
            let digits = len - 1
            let fits = v >= 0 && (digits >= 21 || v < (Int64(1) << (3 * Int64(digits))))
            var x = fits ? v : -1
            for i in stride(from: off + digits - 1, through: off, by: -1) {
                b[i] = fits ? UInt8(ascii: "0") + UInt8(x & 7) : UInt8(ascii: "7")
                x >>= 3
            }
        }
        put(name.0, 0, 100)
        octal(Int64(h.mode & 0o7777), 100, 8)
        octal(Int64(min(max(h.uid, 0), maxOctal7)), 108, 8)
        octal(Int64(min(max(h.gid, 0), maxOctal7)), 116, 8)
        octal(typeflag == UInt8(ascii: "x") || h.kind == .regular ? min(h.size, maxOctal11) : 0, 124, 12)
        octal(clampMtime(h.mtime), 136, 12)
        b[156] = typeflag
        put(Array(h.linkName.utf8), 157, 100)
        put(Array("ustar\0".utf8), 257, 6)
        put(Array("00".utf8), 263, 2)
        put(Array(h.uname.utf8), 265, 32)
        put(Array(h.gname.utf8), 297, 32)
        octal(Int64(h.devMajor), 329, 8)
        octal(Int64(h.devMinor), 337, 8)
        put(name.1, 345, 155)
        // Checksum: sum of all bytes with the checksum field as spaces.
        for i in 148..<156 { b[i] = 0x20 }
        let sum = b.reduce(0) { $0 + Int($1) }
        var cs = String(sum, radix: 8)
        cs = String(repeating: "0", count: max(0, 6 - cs.count)) + cs
        put(Array(cs.utf8), 148, 6)
        b[154] = 0
        b[155] = 0x20
        return b
    }
}
