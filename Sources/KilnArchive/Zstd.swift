import CZstd

// Zstandard frame format, RFC 8878, through libzstd's streaming API
// (ZSTD_compressStream2 / ZSTD_decompressStream).

private func zstdErrorName(_ code: Int) -> String {
    String(cString: ZSTD_getErrorName(code))
}

/// Compresses everything written into one Zstandard frame (RFC 8878) and forwards
/// it to `next`.
///
/// The output is reproducible for a given libzstd version, level and thread
/// setting: no dictionary, the content checksum (XXH64, RFC 8878 §3.1.1) is on,
/// and the frame content size is never written, so the frame header does not
/// depend on whether the data happened to arrive in one write or many.
/// `threads` = 0 compresses on the caller's thread; ≥ 1 uses libzstd's worker
/// threads, whose output is identical for any worker count ≥ 1 but differs from
/// single-threaded output. A library built without threading ignores `threads`.
public final class ZstdWriter: ByteWriter {
    private let next: ByteWriter
    private let cctx: OpaquePointer?
    private let out: UnsafeMutableRawBufferPointer
    private var outCount = 0
    private var setupError: ArchiveError?
    private var finished = false
    /// The level actually used (clamped to libzstd's range).
    public let level: Int

    /// - Parameters:
    ///   - next: receives the compressed bytes; `finish()` finishes it too.
    ///   - level: zstd level, clamped to `ZSTD_minCLevel()...ZSTD_maxCLevel()`.
    ///   - threads: worker threads; 0 for single-threaded (the default).
    public init(_ next: ByteWriter, level: Int = 3, threads: Int = 0) {
        self.next = next
        self.level = min(max(level, Int(ZSTD_minCLevel())), Int(ZSTD_maxCLevel()))
        out = .allocate(byteCount: codecBufferSize, alignment: 16)
        cctx = ZSTD_createCCtx()
        guard let cctx else {
            setupError = .compression("zstd: cannot create a compression context")
            return
        }
        func set(_ p: ZSTD_cParameter, _ v: Int, _ what: String) {
            let rc = ZSTD_CCtx_setParameter(cctx, p, Int32(clamping: v))
            if ZSTD_isError(rc) != 0, setupError == nil {
                setupError = .compression("zstd: cannot set \(what): \(zstdErrorName(rc))")
            }
        }
        set(ZSTD_c_compressionLevel, self.level, "level")
        set(ZSTD_c_checksumFlag, 1, "checksum flag")
        // The content size is only known when everything arrives in a single
        // ZSTD_e_end call; leaving it out keeps the header independent of that.
        set(ZSTD_c_contentSizeFlag, 0, "content size flag")
        if threads > 0 {
            // Fails only when libzstd lacks threading: stay single-threaded then.
            _ = ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, Int32(clamping: threads))
        }
    }

    deinit {
        ZSTD_freeCCtx(cctx)
        out.deallocate()
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        if let setupError { throw setupError }
        guard !finished else { throw ArchiveError.compression("zstd: write after finish") }
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        var input = ZSTD_inBuffer(src: base, size: buffer.count, pos: 0)
        while input.pos < input.size {
            _ = try step(&input, ZSTD_e_continue)
        }
    }

    /// Ends the frame (epilogue and checksum), flushes and finishes `next`.
    /// A second call does nothing.
    public func finish() throws {
        if let setupError { throw setupError }
        if finished { return }
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        // ZSTD_e_end returns how much is still buffered; 0 once the frame is out.
        while try step(&input, ZSTD_e_end) != 0 {}
        try flushOutput()
        finished = true
        try next.finish()
    }

    /// One compression call into the free part of the output buffer; the buffer
    /// goes to `next` only when full, so `next` sees ~1 MiB writes.
    private func step(_ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective) throws -> Int {
        if outCount == out.count { try flushOutput() }
        var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: outCount)
        let rc = ZSTD_compressStream2(cctx, &output, &input, directive)
        outCount = output.pos
        if ZSTD_isError(rc) != 0 { throw ArchiveError.compression("zstd: compression failed: \(zstdErrorName(rc))") }
        return rc
    }

    private func flushOutput() throws {
        if outCount > 0 {
            try next.write(UnsafeRawBufferPointer(rebasing: out[..<outCount]))
            outCount = 0
        }
    }
}

/// Decompresses a Zstandard stream (RFC 8878): one or more frames, skippable
/// frames included, verifying content checksums when present.
///
/// Errors are `ArchiveError.corrupt` ("truncated zstd stream ..." when the input
/// ends inside a frame, "corrupt zstd stream: <libzstd reason>" otherwise), or
/// `ArchiveError.tooLarge` once more than `limit` decompressed bytes have been
/// produced (decompression-bomb guard). Frames needing a window above libzstd's
/// default limit (128 MiB, `--long=28` and beyond) are refused, which bounds memory.
public final class ZstdReader: ByteReader {
    private let source: ByteReader
    private let limit: Int64?
    private let dctx: OpaquePointer?
    private let input: UnsafeMutableRawBufferPointer
    private var inPos = 0
    private var inEnd = 0
    private var sourceEOF = false
    /// True when the last call that made progress completed a frame (returned 0).
    private var atFrameBoundary = false
    private var sawInput = false
    private var done = false
    /// Decompressed bytes produced so far.
    public private(set) var totalOut: Int64 = 0

    /// - Parameters:
    ///   - source: the compressed bytes.
    ///   - limit: the most decompressed bytes to produce before failing with
    ///     `ArchiveError.tooLarge`; nil for no limit.
    public init(_ source: ByteReader, limit: Int64? = nil) {
        self.source = source
        self.limit = limit
        dctx = ZSTD_createDCtx()
        input = .allocate(byteCount: codecBufferSize, alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(dctx)
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let dctx else { throw ArchiveError.compression("zstd: cannot create a decompression context") }
        if done || buffer.count == 0 { return 0 }
        while true {
            if inPos == inEnd && !sourceEOF {
                let n = try source.read(into: input)
                inPos = 0
                inEnd = n
                if n == 0 { sourceEOF = true } else { sawInput = true }
            }
            var inBuf = ZSTD_inBuffer(src: input.baseAddress, size: inEnd, pos: inPos)
            var outBuf = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
            let rc = ZSTD_decompressStream(dctx, &outBuf, &inBuf)
            if ZSTD_isError(rc) != 0 {
                throw ArchiveError.corrupt("corrupt zstd stream: \(zstdErrorName(rc)) (after \(totalOut) decompressed bytes)")
            }
            let consumed = inBuf.pos - inPos
            inPos = inBuf.pos
            let produced = outBuf.pos
            // With no input, libzstd answers a size hint even between frames;
            // only a call that did something tells us where we are.
            if consumed > 0 || produced > 0 { atFrameBoundary = rc == 0 }
            if produced > 0 {
                totalOut += Int64(produced)
                if let limit, totalOut > limit {
                    throw ArchiveError.tooLarge("decompressed zstd stream", limit: limit)
                }
                return produced
            }
            if inPos == inEnd && sourceEOF {
                guard sawInput else { throw ArchiveError.corrupt("truncated zstd stream: the input is empty") }
                guard atFrameBoundary else {
                    throw ArchiveError.corrupt("truncated zstd stream: input ends inside a frame after \(totalOut) decompressed bytes")
                }
                done = true
                return 0
            }
            if consumed == 0 && inPos < inEnd {
                throw ArchiveError.compression("zstd: decompression made no progress")
            }
        }
    }
}
