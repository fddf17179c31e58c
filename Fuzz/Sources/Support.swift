#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// Decompressed output is capped so a small bomb is an error, not an out-of-memory
/// report (the parsers' own limits are what is being tested).
let fuzzLimit: Int64 = 8 << 20

/// A `ByteReader` over bytes in memory, handing them out in short, uneven reads
/// (a reader must cope with any read size; real pipes return short reads).
final class MemoryReader: ByteReader {
    private let bytes: [UInt8]
    private var offset = 0
    private var turn = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard offset < bytes.count, buffer.count > 0 else { return 0 }
        turn += 1
        let chunk = turn % 3 == 0 ? 1 : 4096 + turn % 7
        let n = min(buffer.count, bytes.count - offset, chunk)
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}

/// Reads `reader` to its end (or the first error), discarding the bytes.
func drain(_ reader: ByteReader) throws {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    while try buffer.withUnsafeMutableBytes({ try reader.read(into: $0) }) > 0 {}
}

/// Reads every entry and body of a tar stream, then its trailing data. A body read to
/// its end without an error has exactly the size its header promised.
func readTar(_ reader: ByteReader) throws {
    let tar = TarReader(reader, maxEntrySize: fuzzLimit)
    var buffer = [UInt8](repeating: 0, count: 16 << 10)
    while let header = try tar.next() {
        var total: Int64 = 0
        while case let n = try buffer.withUnsafeMutableBytes({ try tar.readBody(into: $0) }), n > 0 { total += Int64(n) }
        precondition(total == header.bodySize, "'\(header.name)': read \(total) body bytes, the header says \(header.bodySize)")
    }
    _ = try tar.skipTrailingData()
}

/// The parsers that take a path get the input in a file that was unlinked as soon as it
/// was made (nothing to clean up, even after a crash), named through /proc/self/fd.
let scratchFD: Int32 = {
    // tmpfs: on a disk file system the truncate and rewrite of each input cost ~3 ms.
    var st = stat()
    let dir = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0
        ? "/dev/shm" : getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    let path = "\(dir)/kiln-fuzz-\(getpid())"
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    precondition(fd >= 0, "cannot create \(path)")
    unlink(path)
    return fd
}()

func withFile(_ bytes: [UInt8], _ body: (String) throws -> Void) rethrows {
    let fd = scratchFD
    precondition(ftruncate(fd, 0) == 0, "ftruncate failed")
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(done)) }
        precondition(n > 0, "write to the scratch file failed")
        done += n
    }
    try body("/proc/self/fd/\(fd)")
}
