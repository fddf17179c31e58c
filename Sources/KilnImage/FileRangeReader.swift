#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// Reads a byte range of a file with `pread`, so several readers can share one
/// descriptor: members of a tar archive are read in place, never extracted.
public final class FileRangeReader: ByteReader {
    private let fd: Int32
    private let path: String
    private var position: Int64
    private let end: Int64

    public init(fd: Int32, path: String, offset: Int64, length: Int64) {
        self.fd = fd
        self.path = path
        self.position = offset
        self.end = offset + length
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(Int64(buffer.count), end - position))
        if want <= 0 { return 0 }
        while true {
            let n = pread(fd, buffer.baseAddress, want, off_t(position))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw ArchiveError.io("cannot read", path: path, errno: errno) }
            guard n > 0 else { throw ArchiveError.corrupt("\(path): unexpected end of file at offset \(position)") }
            position += Int64(n)
            return n
        }
    }
}
