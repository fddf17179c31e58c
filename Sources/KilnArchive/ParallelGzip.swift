import CLibdeflate
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Gzip compression on all cores with output that never depends on the number of
/// threads: the stream is cut into fixed-size blocks, each compressed on its own
/// (libdeflate, the fastest deflate Debian ships) into a complete gzip member, and the
/// members are written in order. RFC 1952 §2.2 defines a gzip file as a series of
/// members; gzip, pigz, Go's compress/gzip (Docker, containerd, containers/image),
/// GNU tar and bsdtar all read them.
///
/// Memory is bounded by the blocks in flight: about `2 × threads × 2 × blockSize`.
public final class ParallelGzipWriter: ByteWriter {
    public static let defaultBlockSize = 1 << 20

    private let next: ByteWriter
    private let level: Int32
    private let blockSize: Int
    private let maxInFlight: Int
    private var buffer: [UInt8] = []
    private var inFlight: [Job] = []
    private var wroteMember = false
    private let pool: CompressorPool

    /// - Parameters:
    ///   - level: libdeflate level 1–12 (6 matches gzip's default ratio, faster).
    ///   - threads: workers; the bytes written are the same for any value.
    public init(_ next: ByteWriter, level: Int = 6, threads: Int = ProcessInfoCores.count, blockSize: Int = ParallelGzipWriter.defaultBlockSize) {
        self.next = next
        self.level = Int32(level)
        self.blockSize = blockSize
        self.maxInFlight = max(1, threads) * 2
        self.pool = CompressorPool(level: Int32(level))
        buffer.reserveCapacity(blockSize)
    }

    public func write(_ data: UnsafeRawBufferPointer) throws {
        var rest = data
        while !rest.isEmpty {
            let take = min(blockSize - buffer.count, rest.count)
            buffer.append(contentsOf: rest[..<take])
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
            if buffer.count == blockSize { try submit() }
        }
    }

    public func finish() throws {
        if !buffer.isEmpty || !wroteMember && inFlight.isEmpty { try submit() }
        while !inFlight.isEmpty { try emitOldest() }
        try next.finish()
    }

    private func submit() throws {
        if inFlight.count >= maxInFlight { try emitOldest() }
        let job = Job(input: buffer, level: level, pool: pool)
        buffer = []
        buffer.reserveCapacity(blockSize)
        inFlight.append(job)
        DispatchQueue.global(qos: .userInitiated).async { job.run() }
        wroteMember = true
    }

    private func emitOldest() throws {
        let job = inFlight.removeFirst()
        job.done.wait()
        try job.output.withUnsafeBytes { try next.write($0) }
    }

    /// One block: its bytes in, one gzip member out.
    final class Job: @unchecked Sendable {
        let input: [UInt8]
        let level: Int32
        let pool: CompressorPool
        var output: [UInt8] = []
        let done = DispatchSemaphore(value: 0)

        init(input: [UInt8], level: Int32, pool: CompressorPool) {
            self.input = input
            self.level = level
            self.pool = pool
        }

        func run() {
            let c = pool.take()
            defer {
                pool.put(c)
                done.signal()
            }
            let bound = libdeflate_deflate_compress_bound(c, input.count)
            var out = [UInt8](repeating: 0, count: 10 + bound + 8)
            // Header: no name, mtime 0, XFL as gzip sets it, OS = Unix (RFC 1952 §2.3).
            let xfl: UInt8 = level >= 9 ? 2 : (level <= 1 ? 4 : 0)
            out.replaceSubrange(0..<10, with: [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])
            let n = input.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    libdeflate_deflate_compress(c, src.baseAddress, src.count, dst.baseAddress! + 10, bound)
                }
            }
            precondition(n > 0, "libdeflate output exceeded its own bound")
            let crc = input.withUnsafeBytes { libdeflate_crc32(0, $0.baseAddress, $0.count) }
            let size = UInt32(truncatingIfNeeded: input.count)
            var end = 10 + n
            for v in [crc, size] {
                for i in 0..<4 { out[end + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
                end += 4
            }
            out.removeSubrange(end...)
            output = out
        }
    }

    /// libdeflate compressors are not thread-safe; each job borrows one.
    final class CompressorPool: @unchecked Sendable {
        private let level: Int32
        private var free: [OpaquePointer] = []
        private let lock = NSLockLike()

        init(level: Int32) { self.level = level }

        deinit { for c in free { libdeflate_free_compressor(c) } }

        func take() -> OpaquePointer {
            lock.locked { free.popLast() } ?? libdeflate_alloc_compressor(level)!
        }

        func put(_ c: OpaquePointer) { lock.locked { free.append(c) } }
    }
}

/// A pthread mutex, so KilnArchive needs no Foundation.
final class NSLockLike: @unchecked Sendable {
    private var m = pthread_mutex_t()
    init() { pthread_mutex_init(&m, nil) }
    deinit { pthread_mutex_destroy(&m) }
    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&m)
        defer { pthread_mutex_unlock(&m) }
        return body()
    }
}

/// The number of online cores.
public enum ProcessInfoCores {
    public static var count: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
}
