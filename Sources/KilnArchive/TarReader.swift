// Reads tar streams: POSIX.1-2001 pax / ustar (IEEE Std 1003.1, "pax" utility,
// "ustar Interchange Format" and "pax Interchange Format"), GNU tar's extensions
// (`L`/`K` long names, base-256 numbers, the GNU magic) and old v7 headers.

/// One entry's header fields exactly as Go's `archive/tar` reader reports them,
/// which is what Docker's tarsum hashes (see `Tarsum`).
///
/// Differences from `TarHeader`, all deliberate Go behaviours: names are raw
/// bytes (no UTF-8 repair); `mode` is the whole mode field (type bits included if
/// a tool stored them); `size` is the size field even for links and directories;
/// pax records with an empty value are ignored, so are SCHILY.xattr records with
/// empty values; pax *global* (`g`) headers are not applied to later entries but
/// reported as entries of their own (typeflag `g`, zero time).
public struct TarRawHeader: Sendable, Equatable {
    /// One PAX `SCHILY.xattr.KEY=VALUE` record.
    public struct Xattr: Sendable, Equatable {
        public var key: [UInt8]
        public var value: [UInt8]
        public init(key: [UInt8], value: [UInt8]) {
            self.key = key
            self.value = value
        }
    }

    /// The path: pax `path`, else GNU `L`, else ustar prefix + "/" + name.
    public var name: [UInt8]
    /// The link target: pax `linkpath`, else GNU `K`, else the ustar field.
    public var linkName: [UInt8]
    /// The typeflag byte; an old-style `\0` is already turned into `0` or `5`.
    public var typeflag: UInt8
    /// The whole mode field, not masked.
    public var mode: Int64
    public var uid: Int64
    public var gid: Int64
    /// The size field (pax `size` if any), whatever the type.
    public var size: Int64
    /// Seconds since the epoch, rounded down (pax times may carry fractions).
    public var mtime: Int64
    public var devMajor: Int64
    public var devMinor: Int64
    /// Non-empty xattrs, sorted bytewise by key (Go's `sort.Strings`).
    public var xattrs: [Xattr]

    public init(name: [UInt8], linkName: [UInt8] = [], typeflag: UInt8, mode: Int64 = 0, uid: Int64 = 0,
                gid: Int64 = 0, size: Int64 = 0, mtime: Int64 = 0, devMajor: Int64 = 0, devMinor: Int64 = 0,
                xattrs: [Xattr] = []) {
        self.name = name
        self.linkName = linkName
        self.typeflag = typeflag
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.devMajor = devMajor
        self.devMinor = devMinor
        self.xattrs = xattrs
    }

    /// True for a pax global header (typeflag `g`), which Go reports as an entry.
    public var isGlobalHeader: Bool { typeflag == UInt8(ascii: "g") }

    /// `time.Time{}.Unix()` in Go: the mtime Go reports for a global header.
    static let goZeroTime: Int64 = -62_135_596_800

    /// Builds the sorted xattr list from a dictionary, dropping empty values.
    static func xattrList(_ xattrs: [String: [UInt8]]) -> [Xattr] {
        xattrs.filter { !$0.value.isEmpty }
            .map { Xattr(key: Array($0.key.utf8), value: $0.value) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }
}

/// Reads a tar stream entry by entry without holding bodies in memory.
///
/// ```
/// let tar = TarReader(try Compression.openDecompressed(path: p))
/// while let h = try tar.next() { … try tar.readBody(into: buf) … }
/// ```
///
/// Accepts ustar, pax (`x` per-entry and `g` global headers: `path`,
/// `linkpath`, `size`, `uid`, `gid`, `uname`, `gname`, `mtime`,
/// `SCHILY.xattr.*`), GNU (`L`/`K` long names, base-256 numbers) and v7 headers;
/// a header checksum may be the unsigned or the signed byte sum; an old-style
/// typeflag `\0` is a regular file, or a directory when the name ends in `/`.
///
/// It is strict, since layers come from untrusted registries: everything below is
/// an `ArchiveError.corrupt` naming the entry: a stream that ends before the two
/// zero blocks (one zero block then end of stream is accepted, as GNU tar and Go
/// do), a bad checksum, an invalid numeric field, a negative size or one above
/// `maxEntrySize`, an extension header body over 1 MiB, a typeflag it cannot
/// represent (GNU sparse `S` and pax sparse files included). After an error the
/// reader stays failed. Nothing past the end-of-archive blocks is read unless
/// `skipTrailingData()` is called.
public final class TarReader {
    /// The default `maxEntrySize`: 1 TiB.
    public static let defaultMaxEntrySize: Int64 = 1 << 40
    /// The largest pax / GNU long-name header body accepted (as Go's reader).
    public static let maxExtensionSize: Int64 = 1 << 20

    public let maxEntrySize: Int64
    /// The current entry (nil before the first `next()` and at the end).
    public private(set) var header: TarHeader?
    /// The current entry as Go's archive/tar reports it (for tarsum).
    public private(set) var raw: TarRawHeader?
    /// Bytes consumed from the source so far.
    public private(set) var offset: Int64 = 0
    /// Where the current entry's headers (extension headers included) begin.
    public private(set) var headerOffset: Int64 = 0

    private let source: ByteReader
    private let buf: UnsafeMutableRawBufferPointer
    private var bufPos = 0
    private var bufEnd = 0
    private var sourceEOF = false

    private var bodyRemaining: Int64 = 0
    private var padRemaining: Int64 = 0
    /// Merged pax global records (POSIX: they apply to every later entry).
    private var globals: [String: [UInt8]] = [:]
    private var ended = false
    private var failure: (any Error)?
    /// The last entry's name, to say where a problem is.
    private var lastName: String?

    /// - Parameters:
    ///   - source: the uncompressed tar stream (see `Compression.decompressing`).
    ///   - maxEntrySize: the largest entry size accepted.
    public init(_ source: ByteReader, maxEntrySize: Int64 = TarReader.defaultMaxEntrySize) {
        self.source = source
        self.maxEntrySize = maxEntrySize
        buf = .allocate(byteCount: 64 << 10, alignment: 16)
    }

    deinit { buf.deallocate() }

    /// Advances to the next entry, skipping whatever is left of the current body,
    /// and returns its header; nil at the end of the archive.
    public func next() throws -> TarHeader? {
        while let record = try nextRecord() {
            if case .entry(let h, _) = record { return h }
        }
        return nil
    }

    /// Reads from the current entry's body; 0 once it is all read. Only regular
    /// files (`TarHeader.bodySize`) have a body.
    public func readBody(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try guarded {
            guard bodyRemaining > 0, buffer.count > 0 else { return 0 }
            let want = Int(min(Int64(buffer.count), bodyRemaining))
            let n = try readSome(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<want]))
            if n == 0 {
                let size = header?.size ?? 0
                throw ArchiveError.corrupt("truncated tar archive: the body of '\(lastName ?? "?")' ends after \(size - bodyRemaining) of \(size) bytes")
            }
            bodyRemaining -= Int64(n)
            return n
        }
    }

    /// Copies the rest of the current entry's body to `writer`; returns the count.
    @discardableResult
    public func copyBody(to writer: ByteWriter, bufferSize: Int = 1 << 20) throws -> Int64 {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { b.deallocate() }
        var total: Int64 = 0
        while true {
            let n = try readBody(into: b)
            if n == 0 { return total }
            try writer.write(UnsafeRawBufferPointer(rebasing: b[..<n]))
            total += Int64(n)
        }
    }

    /// After `next()` returned nil: reads and discards whatever follows the
    /// end-of-archive blocks (GNU tar pads to 10 KiB records), so that a
    /// decompressor underneath reaches its end and verifies its checksums.
    /// Returns the number of bytes skipped.
    @discardableResult
    public func skipTrailingData() throws -> Int64 {
        try guarded {
            precondition(ended, "skipTrailingData() before the end of the archive")
            var skipped = Int64(bufEnd - bufPos)
            bufPos = bufEnd
            while !sourceEOF {
                let n = try source.read(into: buf)
                if n == 0 { sourceEOF = true }
                skipped += Int64(n)
            }
            offset += skipped
            return skipped
        }
    }

    // MARK: Records

    /// What the stream holds next: an entry, or (Go reports them) a pax global header.
    enum Record {
        case entry(TarHeader, TarRawHeader)
        case globalHeader(TarRawHeader)
    }

    /// Like `next()`, but also returns pax global headers, as Go's reader does.
    func nextRecord() throws -> Record? {
        try guarded {
            if ended { return nil }
            try skip(bodyRemaining + padRemaining) {
                "truncated tar archive: the body of '\(self.lastName ?? "?")' is cut short"
            }
            bodyRemaining = 0
            padRemaining = 0
            header = nil
            raw = nil
            headerOffset = offset
            let record = try readRecord()
            switch record {
            case .entry(let h, let r):
                header = h
                raw = r
                lastName = h.name
            case .globalHeader(let r):
                raw = r
            case nil:
                ended = true
            }
            return record
        }
    }

    private func guarded<T>(_ body: () throws -> T) throws -> T {
        if let failure { throw failure }
        do {
            return try body()
        } catch {
            failure = error
            throw error
        }
    }

    /// Where we are, for messages.
    private var context: String {
        lastName.map { "after entry '\($0)'" } ?? "at the start of the archive"
    }

    private func readRecord() throws -> Record? {
        var pax: [String: [UInt8]]?
        var longName: [UInt8]?
        var longLink: [UInt8]?
        var pending: String? // the extension header waiting for its entry

        while true {
            let blockOffset = offset
            guard let block = try readBlock() else {
                if let pending {
                    throw ArchiveError.corrupt("truncated tar archive: a \(pending) header at offset \(headerOffset) \(context) is not followed by its entry")
                }
                throw ArchiveError.corrupt("truncated tar archive: the stream ends \(context) at offset \(blockOffset) without the two zero blocks that end an archive")
            }
            if block.allSatisfy({ $0 == 0 }) {
                // End of archive: two zero blocks; one zero block then the end of
                // the stream is accepted (Go and GNU tar do; some writers omit one).
                if let second = try readBlock(), !second.allSatisfy({ $0 == 0 }) {
                    throw ArchiveError.corrupt("corrupt tar archive: a zero block at offset \(blockOffset) \(context) is followed by data")
                }
                if let pending {
                    throw ArchiveError.corrupt("corrupt tar archive: a \(pending) header at offset \(headerOffset) \(context) is followed by the end of the archive")
                }
                return nil
            }

            let h = try RawBlock(block, offset: blockOffset, context: context)
            let typeflag = block[156]
            switch typeflag {
            case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
                let what = typeflag == UInt8(ascii: "x") ? "pax extended"
                    : typeflag == UInt8(ascii: "g") ? "pax global"
                    : typeflag == UInt8(ascii: "L") ? "GNU long name" : "GNU long link name"
                guard h.size >= 0, h.size <= TarReader.maxExtensionSize else {
                    throw ArchiveError.corrupt("corrupt tar archive: the \(what) header at offset \(blockOffset) \(context) claims \(h.size) bytes (limit \(TarReader.maxExtensionSize))")
                }
                let body = try readExtensionBody(Int(h.size), what: what, at: blockOffset)
                switch typeflag {
                case UInt8(ascii: "x"):
                    // A second `x` replaces the first, as in Go's reader.
                    pax = try parsePax(body, at: blockOffset)
                    pending = what
                case UInt8(ascii: "L"):
                    longName = cString(body[...])
                    pending = what
                case UInt8(ascii: "K"):
                    longLink = cString(body[...])
                    pending = what
                default:
                    // Global header: merged into the POSIX view for later entries,
                    // and reported as Go does. Pending per-entry headers before it
                    // are dropped, which is also what Go does.
                    let records = try parsePax(body, at: blockOffset)
                    try mergeGlobals(records, at: blockOffset)
                    var go = h.fields
                    try go.apply(records.filter { !$0.value.isEmpty }, entry: go.displayName, at: blockOffset)
                    return .globalHeader(TarRawHeader(name: go.name, typeflag: typeflag, mtime: TarRawHeader.goZeroTime,
                                                      xattrs: TarRawHeader.xattrList(go.xattrs)))
                }
                continue
            default:
                let (header, raw) = try makeEntry(h, typeflag: typeflag, pax: pax ?? [:], longName: longName,
                                                  longLink: longLink, at: blockOffset)
                return .entry(header, raw)
            }
        }
    }

    private func makeEntry(_ h: RawBlock, typeflag rawTypeflag: UInt8, pax: [String: [UInt8]],
                           longName: [UInt8]?, longLink: [UInt8]?, at blockOffset: Int64) throws -> (TarHeader, TarRawHeader) {
        // Go's view: only this entry's `x` records, empty values ignored;
        // GNU long names win over pax names.
        var go = h.fields
        try go.apply(pax.filter { !$0.value.isEmpty }, entry: go.displayName, at: blockOffset)
        if let longName, !longName.isEmpty { go.name = longName }
        if let longLink, !longLink.isEmpty { go.link = longLink }

        // POSIX view: global records, overridden by this entry's; an empty value
        // deletes the keyword (back to the ustar field), except that an xattr may
        // legitimately be empty.
        var records = globals
        for (k, v) in pax { records[k] = v.isEmpty && !k.hasPrefix(xattrPrefix) ? nil : v }
        var posix = h.fields
        try posix.apply(records, entry: go.displayName, at: blockOffset)
        if let longName, !longName.isEmpty { posix.name = longName }
        if let longLink, !longLink.isEmpty { posix.link = longLink }
        let name = posix.displayName

        if records.keys.contains(where: { $0.hasPrefix("GNU.sparse.") }) {
            throw ArchiveError.corrupt("unsupported tar entry '\(name)': a GNU sparse file (pax format); create the archive without --sparse")
        }

        // Old-style (pre-POSIX) regular files have typeflag NUL; a trailing
        // slash made them directories.
        var typeflag = rawTypeflag
        var posixTypeflag = rawTypeflag
        if rawTypeflag == 0 {
            typeflag = go.name.last == UInt8(ascii: "/") ? UInt8(ascii: "5") : UInt8(ascii: "0")
            posixTypeflag = posix.name.last == UInt8(ascii: "/") ? UInt8(ascii: "5") : UInt8(ascii: "0")
        }
        let kind: TarHeader.Kind
        switch posixTypeflag {
        case UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .regular // '7' contiguous: a regular file (POSIX)
        case UInt8(ascii: "1"): kind = .hardlink
        case UInt8(ascii: "2"): kind = .symlink
        case UInt8(ascii: "3"): kind = .charDevice
        case UInt8(ascii: "4"): kind = .blockDevice
        case UInt8(ascii: "5"): kind = .directory
        case UInt8(ascii: "6"): kind = .fifo
        default:
            throw ArchiveError.corrupt("unsupported tar entry type \(describeTypeflag(posixTypeflag)) for '\(name)' at offset \(blockOffset)")
        }

        guard posix.size >= 0, go.size >= 0 else {
            throw ArchiveError.corrupt("corrupt tar archive: entry '\(name)' at offset \(blockOffset) has a negative size (\(min(posix.size, go.size)))")
        }
        guard posix.size <= maxEntrySize else {
            throw ArchiveError.corrupt("corrupt tar archive: entry '\(name)' at offset \(blockOffset) claims \(posix.size) bytes, above the limit of \(maxEntrySize)")
        }
        guard let devMajor = UInt32(exactly: h.devMajor), let devMinor = UInt32(exactly: h.devMinor) else {
            throw ArchiveError.corrupt("corrupt tar archive: entry '\(name)' has an out-of-range device number \(h.devMajor),\(h.devMinor)")
        }
        guard let uid = Int(exactly: posix.uid), let gid = Int(exactly: posix.gid) else {
            throw ArchiveError.corrupt("corrupt tar archive: entry '\(name)' has an out-of-range owner \(posix.uid):\(posix.gid)")
        }

        let header = TarHeader(
            name: name, kind: kind, mode: UInt32(truncatingIfNeeded: h.mode) & 0o7777, uid: uid, gid: gid,
            size: posix.size, mtime: posix.mtime, linkName: String(decoding: posix.link, as: UTF8.self),
            uname: String(decoding: posix.uname, as: UTF8.self), gname: String(decoding: posix.gname, as: UTF8.self),
            devMajor: devMajor, devMinor: devMinor, xattrs: posix.xattrs)
        let raw = TarRawHeader(
            name: go.name, linkName: go.link, typeflag: typeflag, mode: h.mode, uid: go.uid, gid: go.gid,
            size: go.size, mtime: go.mtime, devMajor: h.devMajor, devMinor: h.devMinor,
            xattrs: TarRawHeader.xattrList(go.xattrs))

        bodyRemaining = header.bodySize
        padRemaining = TarBlock.padded(bodyRemaining) - bodyRemaining
        return (header, raw)
    }

    private func mergeGlobals(_ records: [String: [UInt8]], at blockOffset: Int64) throws {
        for (k, v) in records { globals[k] = v.isEmpty && !k.hasPrefix(xattrPrefix) ? nil : v }
        // Each `g` header is capped, but there may be many: cap their sum too.
        let total = globals.reduce(0) { $0 + $1.key.utf8.count + $1.value.count }
        guard total <= TarReader.maxExtensionSize else {
            throw ArchiveError.corrupt("corrupt tar archive: pax global headers up to offset \(blockOffset) hold more than \(TarReader.maxExtensionSize) bytes")
        }
    }

    // MARK: pax records

    /// Parses pax extended header records, `"%d %s=%s\n"` with the length
    /// counting itself (POSIX pax, "pax Extended Header"). Later records win.
    private func parsePax(_ body: [UInt8], at blockOffset: Int64) throws -> [String: [UInt8]] {
        func bad(_ why: String) -> ArchiveError {
            .corrupt("corrupt tar archive: invalid pax header at offset \(blockOffset) \(context): \(why)")
        }
        var records: [String: [UInt8]] = [:]
        var i = 0
        while i < body.count {
            // Some writers pad the header body with NULs; nothing follows them.
            if body[i...].allSatisfy({ $0 == 0 }) { break }
            guard let space = body[i...].firstIndex(of: UInt8(ascii: " ")),
                  let length = parseDecimal(body[i..<space]).flatMap({ Int(exactly: $0) }),
                  length >= 5, length <= body.count - i, space + 1 < i + length else {
                throw bad("bad record length")
            }
            let end = i + length
            guard body[end - 1] == 0x0A else { throw bad("record not terminated by a newline") }
            let record = body[(space + 1)..<(end - 1)]
            guard let eq = record.firstIndex(of: UInt8(ascii: "=")), eq > record.startIndex else {
                throw bad("record without a keyword")
            }
            let keyBytes = record[..<eq]
            let value = Array(record[(eq + 1)...])
            let key = String(decoding: keyBytes, as: UTF8.self)
            guard !keyBytes.contains(0) else { throw bad("NUL in keyword") }
            if ["path", "linkpath", "uname", "gname"].contains(key), value.contains(0) {
                throw bad("NUL in the \(key) value")
            }
            records[key] = value
            i = end
        }
        return records
    }

    // MARK: Reading

    /// A whole 512-byte block; nil at a clean end of stream; throws if cut short.
    private func readBlock() throws -> [UInt8]? {
        let start = offset
        var block = [UInt8](repeating: 0, count: TarBlock.size)
        let n = try block.withUnsafeMutableBytes { try readFully(into: $0) }
        if n == 0 { return nil }
        guard n == TarBlock.size else {
            throw ArchiveError.corrupt("truncated tar archive: a header block at offset \(start) \(context) is cut short (\(n) of 512 bytes)")
        }
        return block
    }

    /// Fills `dst` from the buffered source; fewer bytes only at the end of the stream.
    private func readFully(into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < dst.count {
            let r = try readSome(into: UnsafeMutableRawBufferPointer(rebasing: dst[done...]))
            if r == 0 { break }
            done += r
        }
        return done
    }

    private func readExtensionBody(_ size: Int, what: String, at blockOffset: Int64) throws -> [UInt8] {
        var body = [UInt8](repeating: 0, count: size)
        let n = try body.withUnsafeMutableBytes { try readFully(into: $0) }
        let message = { "truncated tar archive: the \(what) header at offset \(blockOffset) \(self.context) is cut short" }
        guard n == size else { throw ArchiveError.corrupt(message()) }
        try skip(TarBlock.padded(Int64(size)) - Int64(size), message)
        return body
    }

    /// Reads what is buffered, or refills; reads large requests straight from
    /// the source to save a copy.
    private func readSome(into dst: UnsafeMutableRawBufferPointer) throws -> Int {
        if bufPos == bufEnd {
            if sourceEOF || dst.count == 0 { return 0 }
            if dst.count >= buf.count {
                let n = try source.read(into: dst)
                if n == 0 { sourceEOF = true }
                offset += Int64(n)
                return n
            }
            let n = try source.read(into: buf)
            if n == 0 {
                sourceEOF = true
                return 0
            }
            bufPos = 0
            bufEnd = n
        }
        let n = min(dst.count, bufEnd - bufPos)
        dst.baseAddress!.copyMemory(from: buf.baseAddress! + bufPos, byteCount: n)
        bufPos += n
        offset += Int64(n)
        return n
    }

    private func skip(_ count: Int64, _ message: () -> String) throws {
        var left = count
        while left > 0 {
            if bufPos == bufEnd {
                if sourceEOF { throw ArchiveError.corrupt(message()) }
                let n = try source.read(into: buf)
                if n == 0 {
                    sourceEOF = true
                    throw ArchiveError.corrupt(message())
                }
                bufPos = 0
                bufEnd = n
            }
            let n = Int(min(left, Int64(bufEnd - bufPos)))
            bufPos += n
            offset += Int64(n)
            left -= Int64(n)
        }
    }
}

// MARK: - Header block parsing

private let xattrPrefix = "SCHILY.xattr."

/// The fields pax records and GNU long names can override.
private struct OverridableFields {
    var name: [UInt8]
    var link: [UInt8]
    var uid: Int64
    var gid: Int64
    var size: Int64
    var mtime: Int64
    var uname: [UInt8]
    var gname: [UInt8]
    var xattrs: [String: [UInt8]] = [:]

    var displayName: String { String(decoding: name, as: UTF8.self) }

    /// Applies pax records (POSIX pax "pax Header Block" keywords; others ignored).
    mutating func apply(_ records: [String: [UInt8]], entry: String, at offset: Int64) throws {
        for (key, value) in records {
            func number(_ parsed: Int64?) throws -> Int64 {
                guard let parsed else {
                    throw ArchiveError.corrupt("corrupt tar archive: invalid pax \(key) '\(String(decoding: value, as: UTF8.self))' for '\(entry)' at offset \(offset)")
                }
                return parsed
            }
            switch key {
            case "path": name = value
            case "linkpath": link = value
            case "uname": uname = value
            case "gname": gname = value
            case "uid": uid = try number(parseDecimal(value[...]))
            case "gid": gid = try number(parseDecimal(value[...]))
            case "size": size = try number(parseDecimal(value[...]))
            case "mtime": mtime = try number(parsePaxTime(value))
            default:
                if key.hasPrefix(xattrPrefix) { xattrs[String(key.dropFirst(xattrPrefix.count))] = value }
            }
        }
    }
}

/// One header block decoded as Go's `readHeader` does.
private struct RawBlock {
    var fields: OverridableFields
    var mode: Int64
    var size: Int64 { fields.size }
    var devMajor: Int64 = 0
    var devMinor: Int64 = 0

    init(_ b: [UInt8], offset: Int64, context: String) throws {
        let shownName = String(decoding: cString(b[0..<100]), as: UTF8.self)
        guard checksumMatches(b) else {
            throw ArchiveError.corrupt("corrupt tar archive: bad header checksum for entry '\(shownName)' at offset \(offset) \(context)")
        }
        func number(_ range: Range<Int>, _ what: String) throws -> Int64 {
            guard let v = parseNumeric(b[range]) else {
                throw ArchiveError.corrupt("corrupt tar archive: invalid \(what) field in the header of '\(shownName)' at offset \(offset)")
            }
            return v
        }
        var name = cString(b[0..<100])
        mode = try number(100..<108, "mode")
        fields = OverridableFields(
            name: name, link: cString(b[157..<257]),
            uid: try number(108..<116, "uid"), gid: try number(116..<124, "gid"),
            size: try number(124..<136, "size"), mtime: try number(136..<148, "mtime"),
            uname: [], gname: [])

        // Format from the magic (as Go's getFormat): ustar "ustar\0" (with the
        // star trailer "tar\0" at 508, star), GNU "ustar  \0", else v7.
        let magic = b[257..<263], version = b[263..<265]
        let isUstarMagic = magic.elementsEqual(Array("ustar\0".utf8))
        let isStar = isUstarMagic && b[508..<512].elementsEqual(Array("tar\0".utf8))
        let isGNU = magic.elementsEqual(Array("ustar ".utf8)) && version.elementsEqual(Array(" \0".utf8))
        guard isUstarMagic || isGNU else { return } // v7: no owner names, devices or prefix

        fields.uname = cString(b[265..<297])
        fields.gname = cString(b[297..<329])
        devMajor = try number(329..<337, "devmajor")
        devMinor = try number(337..<345, "devminor")
        var prefix: [UInt8] = []
        if isStar {
            prefix = cString(b[345..<476])
        } else if isUstarMagic {
            prefix = cString(b[345..<500])
        } else {
            // GNU keeps atime/ctime where ustar has the prefix. Go < 1.8 wrongly
            // wrote a prefix there; Go falls back to it when those do not parse.
            let atime = b[345..<357], ctime = b[357..<369]
            let unparsable = (atime.first != 0 && parseNumeric(atime) == nil) || (ctime.first != 0 && parseNumeric(ctime) == nil)
            if unparsable {
                let p = cString(b[345..<500])
                if p.allSatisfy({ $0 < 0x80 }) { prefix = p }
            }
        }
        if !prefix.isEmpty {
            name = prefix + [UInt8(ascii: "/")] + name
            fields.name = name
        }
    }
}

/// The checksum field holds the byte sum of the block with the field itself as
/// spaces; historic tars summed signed chars, so both sums are accepted.
private func checksumMatches(_ b: [UInt8]) -> Bool {
    guard let stored = parseOctal(b[148..<156]) else { return false }
    var unsigned: Int64 = 0
    var signed: Int64 = 0
    for (i, c) in b.enumerated() {
        let v = (148..<156).contains(i) ? 0x20 : c
        unsigned += Int64(v)
        signed += Int64(Int8(bitPattern: v))
    }
    return stored == unsigned || stored == signed
}

/// Bytes up to the first NUL (header strings need not be terminated).
private func cString(_ field: ArraySlice<UInt8>) -> [UInt8] {
    if let nul = field.firstIndex(of: 0) { return Array(field[..<nul]) }
    return Array(field)
}

/// A numeric header field: GNU base-256 (high bit of the first byte set, two's
/// complement big-endian in the rest, bit 6 the sign) or octal. nil if invalid.
private func parseNumeric(_ field: ArraySlice<UInt8>) -> Int64? {
    guard let first = field.first, first & 0x80 != 0 else { return parseOctal(field) }
    let inv: UInt8 = first & 0x40 != 0 ? 0xff : 0
    var x: UInt64 = 0
    for (i, c) in field.enumerated() {
        var c = c ^ inv
        if i == 0 { c &= 0x7f }
        if x >> 56 > 0 { return nil }
        x = x << 8 | UInt64(c)
    }
    if x >> 63 > 0 { return nil }
    return inv == 0xff ? ~Int64(x) : Int64(x)
}

/// An octal field: leading/trailing spaces and NULs ignored, then the digits up
/// to a NUL. An empty field is 0.
private func parseOctal(_ field: ArraySlice<UInt8>) -> Int64? {
    var s = field
    while let c = s.first, c == 0x20 || c == 0 { s = s.dropFirst() }
    while let c = s.last, c == 0x20 || c == 0 { s = s.dropLast() }
    if s.isEmpty { return 0 }
    if let nul = s.firstIndex(of: 0) { s = s[..<nul] }
    var v: Int64 = 0
    for c in s {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "7") else { return nil }
        let (m, o1) = v.multipliedReportingOverflow(by: 8)
        let (a, o2) = m.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
        if o1 || o2 { return nil }
        v = a
    }
    return v
}

/// A decimal integer with an optional sign (Go's `strconv.ParseInt(s, 10, 64)`).
private func parseDecimal(_ s: ArraySlice<UInt8>) -> Int64? {
    var digits = s
    var negative = false
    if let c = digits.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
        negative = c == UInt8(ascii: "-")
        digits = digits.dropFirst()
    }
    guard !digits.isEmpty else { return nil }
    var v: Int64 = 0
    for c in digits {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        let d = Int64(c - UInt8(ascii: "0"))
        let (m, o1) = v.multipliedReportingOverflow(by: 10)
        let (a, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
        if o1 || o2 { return nil }
        v = a
    }
    return v
}

/// A pax time, `SECONDS[.FRACTION]`, as whole seconds rounded down (Go's
/// `parsePAXTime` followed by `Unix()`): "-1.5" is -2.
private func parsePaxTime(_ value: [UInt8]) -> Int64? {
    let dot = value.firstIndex(of: UInt8(ascii: "."))
    let secondsPart = value[..<(dot ?? value.endIndex)]
    guard let seconds = parseDecimal(secondsPart) else { return nil }
    guard let dot else { return seconds }
    let fraction = value[(dot + 1)...]
    guard fraction.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
    // Only the first 9 digits count (nanoseconds), as in Go.
    let nanosNonZero = fraction.prefix(9).contains { $0 != UInt8(ascii: "0") }
    if secondsPart.first == UInt8(ascii: "-") && nanosNonZero { return seconds - 1 }
    return seconds
}

private func describeTypeflag(_ t: UInt8) -> String {
    let shown = t >= 0x20 && t < 0x7f ? "'\(String(UnicodeScalar(t)))'" : "0x" + String(t, radix: 16)
    switch t {
    case UInt8(ascii: "S"): return "\(shown) (GNU sparse file; create the archive without --sparse)"
    case UInt8(ascii: "D"): return "\(shown) (GNU incremental dump directory)"
    case UInt8(ascii: "M"): return "\(shown) (GNU multi-volume continuation)"
    case UInt8(ascii: "N"): return "\(shown) (obsolete GNU long file names)"
    case UInt8(ascii: "V"): return "\(shown) (GNU volume label)"
    default: return shown
    }
}
