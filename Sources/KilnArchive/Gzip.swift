import CZlib

// gzip file format, RFC 1952; the compressed data inside a member is raw
// DEFLATE, RFC 1951, produced and consumed by zlib with negative window bits
// (which tells zlib not to add or expect its own zlib/gzip wrapper, so the
// wrapper bytes are entirely under our control).

/// The size of the bounce buffers used by the gzip and zstd streams. Memory per
/// stream is this plus the codec's own state (~256 KiB for deflate at memLevel 8,
/// 32 KiB window for inflate), independent of the data size.
let codecBufferSize = 1 << 20

/// zlib takes `uInt` (32-bit) lengths; larger buffers are fed in slices of this.
private let zlibMaxChunk = 1 << 30

/// Compresses everything written into one deterministic gzip member (RFC 1952)
/// and forwards it to `next`.
///
/// The member header is fixed, so equal input gives equal output for a given zlib
/// version and level, like `gzip -n` / `pigz -n`: ID1 ID2 = `1f 8b`, CM = 8
/// (deflate), FLG = 0 (no name, comment, extra or header CRC), MTIME = 0, XFL as
/// GNU gzip sets it (2 for level 9, 4 for level 1, else 0) and OS = 3 (Unix). The
/// trailer is the CRC-32 and the input length modulo 2^32, both little-endian.
///
/// Output is produced in chunks of about 1 MiB; memory stays bounded whatever
/// the input size.
public final class GzipWriter: ByteWriter {
    private let next: ByteWriter
    /// The level actually used (clamped to zlib's 0...9).
    public let level: Int
    private let stream: UnsafeMutablePointer<z_stream>
    private let out: UnsafeMutableRawBufferPointer
    private var outCount = 0
    private var crc: uLong = crc32(0, nil, 0)
    private var inputSize: UInt32 = 0
    /// deflateInit can only fail on memory exhaustion; the initialiser does not
    /// throw (so `Compression.writer` can stay simple), the first write does.
    private var setupError: ArchiveError?
    private var finished = false

    /// - Parameters:
    ///   - next: receives the compressed bytes; `finish()` finishes it too.
    ///   - level: zlib level 0 (store) ... 9 (best); values outside are clamped.
    public init(_ next: ByteWriter, level: Int = 6) {
        self.next = next
        self.level = min(max(level, 0), 9)
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        out = .allocate(byteCount: codecBufferSize, alignment: 16)

        // Window bits -15: raw deflate with a 32 KiB window; memLevel 8 is the
        // zlib (and gzip/pigz) default, so the stream is what `gzip -6` decoders
        // expect and is reproducible.
        let rc = deflateInit2_(stream, Int32(self.level), Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        if rc != Z_OK { setupError = .compression("gzip: deflateInit2 failed (\(rc))") }

        // RFC 1952 §2.3: the XFL byte says which deflate effort was used; GNU gzip
        // and pigz write 2 for the slowest level and 4 for the fastest.
        let xfl: UInt8 = self.level == 9 ? 2 : (self.level == 1 ? 4 : 0)
        let header: [UInt8] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, xfl, 0x03]
        header.withUnsafeBytes { out.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        outCount = header.count
    }

    deinit {
        if setupError == nil { deflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
        out.deallocate()
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        if let setupError { throw setupError }
        guard !finished else { throw ArchiveError.compression("gzip: write after finish") }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var offset = 0
        while offset < buffer.count {
            let chunk = min(buffer.count - offset, zlibMaxChunk)
            let p = base.advanced(by: offset).assumingMemoryBound(to: Bytef.self)
            crc = crc32(crc, p, uInt(chunk))
            inputSize &+= UInt32(truncatingIfNeeded: chunk)
            // zlib's API is not const-correct; it never writes through next_in.
            stream.pointee.next_in = UnsafeMutablePointer(mutating: p)
            stream.pointee.avail_in = uInt(chunk)
            while stream.pointee.avail_in > 0 {
                let rc = try step(Z_NO_FLUSH)
                guard rc == Z_OK || rc == Z_BUF_ERROR else {
                    throw ArchiveError.compression("gzip: deflate failed (\(rc))")
                }
            }
            offset += chunk
        }
        stream.pointee.next_in = nil
    }

    /// Ends the deflate stream, writes the trailer, flushes and finishes `next`.
    /// A second call does nothing.
    public func finish() throws {
        if let setupError { throw setupError }
        if finished { return }
        while true {
            let rc = try step(Z_FINISH)
            if rc == Z_STREAM_END { break }
            guard rc == Z_OK || rc == Z_BUF_ERROR else {
                throw ArchiveError.compression("gzip: deflate failed (\(rc))")
            }
        }
        let c = UInt32(truncatingIfNeeded: crc)
        let trailer: [UInt8] = [
            UInt8(truncatingIfNeeded: c), UInt8(truncatingIfNeeded: c >> 8),
            UInt8(truncatingIfNeeded: c >> 16), UInt8(truncatingIfNeeded: c >> 24),
            UInt8(truncatingIfNeeded: inputSize), UInt8(truncatingIfNeeded: inputSize >> 8),
            UInt8(truncatingIfNeeded: inputSize >> 16), UInt8(truncatingIfNeeded: inputSize >> 24),
        ]
        if out.count - outCount < trailer.count { try flushOutput() }
        trailer.withUnsafeBytes {
            (out.baseAddress! + outCount).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
        }
        outCount += trailer.count
        try flushOutput()
        finished = true
        try next.finish()
    }

    /// One deflate call into the free part of the output buffer; the buffer is
    /// handed to `next` only when full, so `next` sees ~1 MiB writes.
    private func step(_ flush: Int32) throws -> Int32 {
        if outCount == out.count { try flushOutput() }
        stream.pointee.next_out = out.baseAddress!.advanced(by: outCount).assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(out.count - outCount)
        let rc = deflate(stream, flush)
        outCount = out.count - Int(stream.pointee.avail_out)
        return rc
    }

    private func flushOutput() throws {
        if outCount > 0 {
            try next.write(UnsafeRawBufferPointer(rebasing: out[..<outCount]))
            outCount = 0
        }
    }
}

/// Decompresses a gzip stream (RFC 1952), including several concatenated members
/// (as `pigz`, `cat a.gz b.gz` or `gzip` appends produce), and verifies each
/// member's CRC-32 and ISIZE trailer.
///
/// Errors are `ArchiveError.corrupt` with a message naming the problem ("truncated
/// gzip stream", "gzip CRC mismatch", ...), or `ArchiveError.tooLarge` once more
/// than `limit` decompressed bytes have been produced: a guard against
/// decompression bombs, since deflate can expand data ~1000:1.
///
/// As GNU gzip does, zero bytes after the last member are ignored (tape padding);
/// any other trailing data is an error. Header fields FEXTRA, FNAME and FCOMMENT
/// are skipped without being buffered, and FHCRC is checked.
public final class GzipReader: ByteReader {
    private enum State { case memberHeader, body, trailer, done }

    private let source: ByteReader
    private let limit: Int64?
    private let stream: UnsafeMutablePointer<z_stream>
    private let input: UnsafeMutableRawBufferPointer
    private var inPos = 0
    private var inEnd = 0
    private var sourceEOF = false
    private var state = State.memberHeader
    private var crc: uLong = 0
    private var memberSize: UInt32 = 0
    private var setupError: ArchiveError?
    /// Decompressed bytes produced so far.
    public private(set) var totalOut: Int64 = 0
    /// Members whose trailer has been verified.
    public private(set) var members = 0

    /// - Parameters:
    ///   - source: the compressed bytes.
    ///   - limit: the most decompressed bytes to produce before failing with
    ///     `ArchiveError.tooLarge`; nil for no limit.
    public init(_ source: ByteReader, limit: Int64? = nil) {
        self.source = source
        self.limit = limit
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        input = .allocate(byteCount: codecBufferSize, alignment: 16)
        // Raw inflate (-15): we parse the RFC 1952 wrapper ourselves, which is
        // what lets us handle multiple members, trailing zeros and precise errors.
        let rc = inflateInit2_(stream, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        if rc != Z_OK { setupError = .compression("gzip: inflateInit2 failed (\(rc))") }
    }

    deinit {
        if setupError == nil { inflateEnd(stream) }
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let setupError { throw setupError }
        while true {
            switch state {
            case .done:
                return 0
            case .memberHeader:
                try readMemberHeader()
                state = .body
            case .trailer:
                try readTrailer()
            case .body:
                guard buffer.count > 0 else { return 0 }
                let n = try inflateSome(into: buffer)
                if n > 0 { return n }
            }
        }
    }

    // MARK: Input

    /// Makes at least one unread input byte available; false at end of input.
    private func fill() throws -> Bool {
        if inPos < inEnd { return true }
        if sourceEOF { return false }
        let n = try source.read(into: input)
        if n == 0 {
            sourceEOF = true
            return false
        }
        inPos = 0
        inEnd = n
        return true
    }

    private func byte(_ context: String) throws -> UInt8 {
        guard try fill() else {
            throw ArchiveError.corrupt("truncated gzip stream: input ends inside the \(context)")
        }
        let b = input.load(fromByteOffset: inPos, as: UInt8.self)
        inPos += 1
        return b
    }

    // MARK: Members

    private func readMemberHeader() throws {
        if members == 0, try !fill() {
            throw ArchiveError.corrupt("truncated gzip stream: the input is empty")
        }
        // Keep a running CRC of the header bytes for the optional FHCRC field.
        var headerCRC = crc32(0, nil, 0)
        func next(_ what: String) throws -> UInt8 {
            var b = try byte("gzip \(what)")
            headerCRC = crc32(headerCRC, &b, 1)
            return b
        }
        let id1 = try next("header"), id2 = try next("header")
        guard id1 == 0x1f, id2 == 0x8b else {
            throw ArchiveError.corrupt("not a gzip stream: bad magic bytes \(hex(id1)) \(hex(id2)) in member \(members + 1)")
        }
        let method = try next("header")
        guard method == 8 else { throw ArchiveError.corrupt("unsupported gzip compression method \(method) (only deflate, 8, exists)") }
        let flags = try next("header")
        // RFC 1952 §2.3.1: a decoder must reject reserved flag bits.
        guard flags & 0xE0 == 0 else { throw ArchiveError.corrupt("corrupt gzip header: reserved flag bits set (\(hex(flags)))") }
        for _ in 0..<6 { _ = try next("header") } // MTIME, XFL, OS: informational only.
        if flags & 0x04 != 0 { // FEXTRA
            let lo = Int(try next("extra field")), hi = Int(try next("extra field"))
            for _ in 0..<(lo | hi << 8) { _ = try next("extra field") }
        }
        if flags & 0x08 != 0 { while try next("file name") != 0 {} }   // FNAME
        if flags & 0x10 != 0 { while try next("comment") != 0 {} }     // FCOMMENT
        if flags & 0x02 != 0 { // FHCRC: low 16 bits of the CRC-32 of the header so far.
            let expected = UInt16(truncatingIfNeeded: headerCRC)
            let lo = UInt16(try byte("gzip header CRC")), hi = UInt16(try byte("gzip header CRC"))
            guard lo | hi << 8 == expected else { throw ArchiveError.corrupt("gzip header CRC mismatch") }
        }
        guard inflateReset(stream) == Z_OK else { throw ArchiveError.compression("gzip: inflateReset failed") }
        crc = crc32(0, nil, 0)
        memberSize = 0
    }

    private func inflateSome(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let capacity = min(buffer.count, zlibMaxChunk)
        while true {
            guard try fill() else {
                throw ArchiveError.corrupt("truncated gzip stream: input ends inside compressed data of member \(members + 1) after \(totalOut) decompressed bytes")
            }
            let available = inEnd - inPos
            stream.pointee.next_in = input.baseAddress!.advanced(by: inPos).assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_in = uInt(available)
            stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(capacity)
            let rc = inflate(stream, Z_NO_FLUSH)
            inPos = inEnd - Int(stream.pointee.avail_in)
            let produced = capacity - Int(stream.pointee.avail_out)
            stream.pointee.next_in = nil
            stream.pointee.next_out = nil

            switch rc {
            case Z_OK: break
            case Z_STREAM_END: state = .trailer
            case Z_BUF_ERROR:
                // No progress possible although input and output space were both
                // available: cannot happen with a healthy zlib, never loop on it.
                if produced == 0 && inPos - (inEnd - available) == 0 {
                    throw ArchiveError.compression("gzip: inflate made no progress")
                }
            case Z_DATA_ERROR:
                throw ArchiveError.corrupt("corrupt gzip stream: \(zlibMessage()) (member \(members + 1), after \(totalOut) decompressed bytes)")
            case Z_NEED_DICT:
                throw ArchiveError.corrupt("corrupt gzip stream: deflate data asks for a preset dictionary")
            case Z_MEM_ERROR:
                throw ArchiveError.compression("gzip: out of memory while inflating")
            default:
                throw ArchiveError.compression("gzip: inflate failed (\(rc))")
            }

            if produced > 0 {
                crc = crc32(crc, buffer.baseAddress!.assumingMemoryBound(to: Bytef.self), uInt(produced))
                memberSize &+= UInt32(truncatingIfNeeded: produced)
                totalOut += Int64(produced)
                if let limit, totalOut > limit {
                    throw ArchiveError.tooLarge("decompressed gzip stream", limit: limit)
                }
                return produced
            }
            if state != .body { return 0 }
        }
    }

    private func readTrailer() throws {
        var t = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { t[i] = try byte("gzip trailer (CRC-32 and length) of member \(members + 1)") }
        let storedCRC = UInt32(t[0]) | UInt32(t[1]) << 8 | UInt32(t[2]) << 16 | UInt32(t[3]) << 24
        let storedSize = UInt32(t[4]) | UInt32(t[5]) << 8 | UInt32(t[6]) << 16 | UInt32(t[7]) << 24
        let actualCRC = UInt32(truncatingIfNeeded: crc)
        guard storedCRC == actualCRC else {
            throw ArchiveError.corrupt("gzip CRC mismatch in member \(members + 1): stored \(hex32(storedCRC)), data has \(hex32(actualCRC))")
        }
        guard storedSize == memberSize else {
            throw ArchiveError.corrupt("gzip length mismatch in member \(members + 1): trailer says \(storedSize) bytes (mod 2^32), data has \(memberSize)")
        }
        members += 1

        // What follows: nothing, another member, or zero padding.
        guard try fill() else {
            state = .done
            return
        }
        let b = input.load(fromByteOffset: inPos, as: UInt8.self)
        if b == 0x1f {
            state = .memberHeader
            return
        }
        if b == 0 {
            // Trailing NULs (a tape block's padding): gzip accepts them; so do we,
            // but only if everything left is zero.
            while try fill() {
                let rest = UnsafeRawBufferPointer(rebasing: input[inPos..<inEnd])
                guard rest.allSatisfy({ $0 == 0 }) else { break }
                inPos = inEnd
            }
            if inPos == inEnd && sourceEOF {
                state = .done
                return
            }
        }
        throw ArchiveError.corrupt("trailing garbage after gzip stream (after \(members) member\(members == 1 ? "" : "s"))")
    }

    private func zlibMessage() -> String {
        if let m = stream.pointee.msg { return String(cString: m) }
        return "invalid deflate data"
    }
}

private func hex(_ b: UInt8) -> String {
    let s = String(b, radix: 16)
    return "0x" + (s.count < 2 ? "0" + s : s)
}

private func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}
