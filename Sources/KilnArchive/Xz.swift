import CLzma

// The .xz file format (tukaani.org/xz/xz-file-format.txt): a sequence of
// Streams, each a 12-byte Stream Header (magic FD 37 7A 58 5A 00, flags, CRC32),
// Blocks of LZMA2 data with their own integrity check (CRC32, CRC64 or SHA-256),
// an Index and a Stream Footer; Streams may be concatenated, with Stream Padding
// (multiples of four NUL bytes) between them. liblzma parses all of it; we feed
// it bounded chunks and map its results onto ArchiveError.

/// Decompresses an .xz stream (several concatenated Streams too, as `xz` itself
/// reads them), verifying every header CRC and each Block's integrity check.
///
/// Memory is the 1 MiB input buffer plus liblzma's state (the LZMA2 dictionary:
/// at most 64 MiB for `xz -9`, 8 MiB for the default `-6` that dpkg-deb uses),
/// independent of the data size. Output goes straight into the caller's buffer.
///
/// Errors are `ArchiveError.corrupt` naming the problem ("truncated xz stream",
/// "corrupt xz stream: …"), or `ArchiveError.tooLarge` once more than `limit`
/// decompressed bytes have been produced: a guard against decompression bombs.
public final class XzReader: ByteReader {
    /// The Stream Header magic bytes, xz-file-format §2.1.1.1.
    public static let magic: [UInt8] = [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]

    /// True when `firstBytes` begin with the .xz Stream Header magic.
    public static func isXz(_ firstBytes: [UInt8]) -> Bool {
        firstBytes.count >= magic.count && Array(firstBytes.prefix(magic.count)) == magic
    }

    private let source: ByteReader
    private let limit: Int64?
    private let stream: UnsafeMutablePointer<lzma_stream>
    private let input: UnsafeMutableRawBufferPointer
    private var sourceEOF = false
    private var sawInput = false
    private var done = false
    private var setupError: ArchiveError?
    /// Decompressed bytes produced so far.
    public private(set) var totalOut: Int64 = 0
    /// Compressed bytes consumed so far.
    public private(set) var totalIn: Int64 = 0

    /// - Parameters:
    ///   - upstream: the compressed bytes.
    ///   - limit: the most decompressed bytes to produce before failing with
    ///     `ArchiveError.tooLarge`; nil for no limit.
    public init(_ upstream: ByteReader, limit: Int64? = nil) {
        self.source = upstream
        self.limit = limit
        stream = .allocate(capacity: 1)
        // The zero value is LZMA_STREAM_INIT (all NULL and 0).
        stream.initialize(to: lzma_stream())
        input = .allocate(byteCount: codecBufferSize, alignment: 16)
        // No memory limit (the dictionary size is bounded by the format at
        // 1.5 GiB, and `limit` guards the output); LZMA_CONCATENATED decodes
        // every Stream of the file, not just the first, and requires LZMA_FINISH
        // at the end of input, which is how truncation is detected.
        let rc = lzma_stream_decoder(stream, UInt64.max, lzmaConcatenated)
        if rc != LZMA_OK { setupError = .compression("xz: cannot create a decoder (\(describe(rc)))") }
    }

    deinit {
        lzma_end(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let setupError { throw setupError }
        if done || buffer.count == 0 { return 0 }
        // liblzma reports LZMA_BUF_ERROR only on the second call in a row that
        // could make no progress; count them so a broken state can never spin.
        var idleCalls = 0
        while true {
            if stream.pointee.avail_in == 0 && !sourceEOF {
                let n = try source.read(into: input)
                if n == 0 {
                    sourceEOF = true
                } else {
                    sawInput = true
                    stream.pointee.next_in = UnsafePointer(input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                    stream.pointee.avail_in = n
                }
            }
            if sourceEOF && !sawInput { throw ArchiveError.corrupt("truncated xz stream: the input is empty") }

            let availIn = stream.pointee.avail_in
            stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            stream.pointee.avail_out = buffer.count
            let rc = lzma_code(stream, sourceEOF ? LZMA_FINISH : LZMA_RUN)
            let produced = buffer.count - stream.pointee.avail_out
            let consumed = availIn - stream.pointee.avail_in
            stream.pointee.next_out = nil
            stream.pointee.avail_out = 0
            totalIn += Int64(consumed)

            switch rc {
            case LZMA_OK:
                break
            case LZMA_STREAM_END:
                done = true
            case LZMA_BUF_ERROR:
                // Only reachable with LZMA_FINISH: the input ended mid-Stream.
                throw ArchiveError.corrupt("truncated xz stream: input ends after \(totalIn) compressed bytes, \(totalOut + Int64(produced)) decompressed")
            case LZMA_DATA_ERROR, LZMA_FORMAT_ERROR, LZMA_OPTIONS_ERROR:
                throw ArchiveError.corrupt("corrupt xz stream: \(describe(rc)) (at compressed byte \(totalIn), after \(totalOut) decompressed bytes)")
            default:
                throw ArchiveError.compression("xz: decoding failed (\(describe(rc)))")
            }

            if produced > 0 {
                totalOut += Int64(produced)
                if let limit, totalOut > limit {
                    throw ArchiveError.tooLarge("decompressed xz stream", limit: limit)
                }
                return produced
            }
            if done { return 0 }
            if consumed == 0 && (sourceEOF || stream.pointee.avail_in > 0) {
                idleCalls += 1
                if idleCalls > 2 { throw ArchiveError.compression("xz: decoding made no progress") }
            } else {
                idleCalls = 0
            }
        }
    }
}

/// `LZMA_CONCATENATED` (container.h); a `UINT32_C(…)` macro Swift does not import.
private let lzmaConcatenated: UInt32 = 0x08

/// liblzma's result codes in words (base.h).
private func describe(_ rc: lzma_ret) -> String {
    switch rc {
    case LZMA_DATA_ERROR: return "data is corrupt (a CRC or integrity check failed, or invalid LZMA2 data)"
    case LZMA_FORMAT_ERROR: return "not in the .xz format (bad Stream Header magic, or garbage after a Stream)"
    case LZMA_OPTIONS_ERROR: return "unsupported options in a header (filter or flags)"
    case LZMA_MEM_ERROR: return "out of memory"
    case LZMA_MEMLIMIT_ERROR: return "memory limit reached"
    case LZMA_BUF_ERROR: return "no progress possible"
    case LZMA_PROG_ERROR: return "programming error"
    default: return "liblzma error \(rc.rawValue)"
    }
}
