import Foundation
import KilnArchive
import Testing

@Suite struct GzipTests {
    @Test func outputMatchesGzipAndPigzAndIsReproducible() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let data = sampleData(3 << 20)
        let first = try compress(data) { GzipWriter($0) }
        let second = try compress(data, chunk: 7_777) { GzipWriter($0) }
        #expect(first == second) // same bytes whatever the write sizes
        // RFC 1952 header: no name, mtime 0, XFL 0 at level 6, OS 3 (Unix).
        #expect(Array(first.prefix(10)) == [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03])
        #expect(first.count < data.count)

        try dir.write("plain", data)
        try dir.write("out.gz", first)
        try sh("gzip -dc out.gz > gzip.out && pigz -dc out.gz > pigz.out && gzip -t out.gz", in: dir.path)
        #expect(try dir.read("gzip.out") == data)
        #expect(try dir.read("pigz.out") == data)
    }

    @Test func extraFlagsFollowTheLevel() throws {
        let best = try compress([1, 2, 3]) { GzipWriter($0, level: 9) }
        let fast = try compress([1, 2, 3]) { GzipWriter($0, level: 1) }
        #expect(best[8] == 2)
        #expect(fast[8] == 4)
        for level in [0, 1, 9] {
            let gz = try compress(sampleData(200_000)) { GzipWriter($0, level: level) }
            #expect(try drain(GzipReader(BufferReader(gz))) == sampleData(200_000))
        }
    }

    @Test func emptyInputRoundTrips() throws {
        let gz = try compress([]) { GzipWriter($0) }
        #expect(try drain(GzipReader(BufferReader(gz))) == [])
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("e.gz", gz)
        #expect(try sh("gzip -dc e.gz | wc -c", in: dir.path).trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func readsPigzGzipAndMultiMemberStreams() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let a = sampleData(2 << 20, seed: 2), b = sampleData(300_000, seed: 3)
        try dir.write("a", a)
        try dir.write("b", b)
        // pigz: parallel blocks; gzip without -n: FNAME and MTIME set.
        try sh("pigz -p 2 -b 128 -c a > a.pigz.gz && gzip -c b > b.gz && cat a.pigz.gz b.gz > ab.gz", in: dir.path)
        #expect(try drain(GzipReader(FileReader(path: dir.file("a.pigz.gz")))) == a)
        #expect(try drain(GzipReader(FileReader(path: dir.file("b.gz")))) == b)
        let multi = GzipReader(try FileReader(path: dir.file("ab.gz")))
        #expect(try drain(multi) == a + b)
        #expect(multi.members == 2)

        // Our own members concatenated, with tape-style zero padding after them.
        let ours = try compress(a) { GzipWriter($0) } + compress(b) { GzipWriter($0) } + [UInt8](repeating: 0, count: 700)
        #expect(try drain(GzipReader(BufferReader(ours))) == a + b)
    }

    /// FEXTRA, FNAME, FCOMMENT and FHCRC (RFC 1952 §2.3.1) are parsed and skipped.
    @Test func optionalHeaderFields() throws {
        let data = sampleData(50_000)
        let gz = try compress(data) { GzipWriter($0) }
        var header: [UInt8] = [0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 1, 2, 3, 4, 0, 3]
        header += [3, 0] + Array("abc".utf8)        // FEXTRA
        header += Array("name.tar".utf8) + [0]      // FNAME
        header += Array("a comment".utf8) + [0]     // FCOMMENT
        let crc = crc32(header)
        let withCRC = header + [UInt8(crc & 0xff), UInt8((crc >> 8) & 0xff)] + gz.dropFirst(10)
        #expect(try drain(GzipReader(BufferReader(withCRC))) == data)

        var badHeaderCRC = withCRC
        badHeaderCRC[header.count] ^= 1
        let error = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(badHeaderCRC))) }
        #expect(error?.text.contains("header CRC mismatch") == true)

        var reserved = gz
        reserved[3] = 0x20
        #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(reserved))) }
    }

    @Test func truncatedStreamsFailClearly() throws {
        let gz = try compress(sampleData(500_000)) { GzipWriter($0) }
        for cut in [gz.count - 3, gz.count - 8, gz.count / 2, 5, 0] {
            let error = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(Array(gz.prefix(cut))))) }
            #expect(error?.text.contains("truncated gzip stream") == true, "cut at \(cut): \(String(describing: error))")
        }
    }

    @Test func corruptStreamsFail() throws {
        let data = sampleData(100_000)
        let gz = try compress(data) { GzipWriter($0) }

        var badCRC = gz
        badCRC[gz.count - 6] ^= 0xff
        let crcError = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(badCRC))) }
        #expect(crcError?.text.contains("gzip CRC mismatch") == true)

        var badSize = gz
        badSize[gz.count - 2] ^= 0x01
        let sizeError = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(badSize))) }
        #expect(sizeError?.text.contains("length mismatch") == true)

        var badData = gz
        badData[gz.count / 2] ^= 0x55
        #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(badData))) }

        var badMagic = gz
        badMagic[1] = 0x8c
        let magicError = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(badMagic))) }
        #expect(magicError?.text.contains("not a gzip stream") == true)

        let garbage = gz + Array("garbage".utf8)
        let garbageError = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(garbage))) }
        #expect(garbageError?.text.contains("trailing garbage") == true)
    }

    @Test func decompressionBombLimit() throws {
        let zeros = [UInt8](repeating: 0, count: 8 << 20)
        let gz = try compress(zeros) { GzipWriter($0, level: 9) }
        #expect(gz.count < 64 << 10)
        let error = #expect(throws: ArchiveError.self) { try drain(GzipReader(BufferReader(gz), limit: 1 << 20)) }
        guard case .tooLarge(_, let limit)? = error else {
            Issue.record("expected tooLarge, got \(String(describing: error))")
            return
        }
        #expect(limit == 1 << 20)
        // Exactly at the limit is fine.
        #expect(try drain(GzipReader(BufferReader(gz), limit: 8 << 20)).count == 8 << 20)
    }
}

@Suite struct ZstdTests {
    @Test func outputMatchesZstdCLIAndIsReproducible() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let data = sampleData(3 << 20, seed: 5)
        let first = try compress(data) { ZstdWriter($0) }
        let second = try compress(data, chunk: 12_345) { ZstdWriter($0) }
        #expect(first == second)
        #expect(Array(first.prefix(4)) == [0x28, 0xb5, 0x2f, 0xfd])
        // Frame header descriptor: no content size (bits 7-6 = 0, single segment
        // bit 5 = 0), checksum flag (bit 2) set, no dictionary id (bits 1-0).
        #expect(first[4] & 0xe0 == 0)
        #expect(first[4] & 0x04 != 0)
        #expect(first[4] & 0x03 == 0)
        try dir.write("out.zst", first)
        try sh("zstd -q -dc out.zst > out && zstd -q -t out.zst", in: dir.path)
        #expect(try dir.read("out") == data)
        #expect(try drain(ZstdReader(BufferReader(first))) == data)
    }

    @Test func multithreadedOutputDoesNotDependOnThreadCount() throws {
        let data = sampleData(6 << 20, seed: 6)
        let one = try compress(data) { ZstdWriter($0, threads: 1) }
        let two = try compress(data) { ZstdWriter($0, threads: 2) }
        #expect(one == two)
        #expect(try drain(ZstdReader(BufferReader(two))) == data)
    }

    @Test func readsZstdCLIOutputAndMultipleFrames() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let a = sampleData(1 << 20, seed: 7), b = sampleData(10_000, seed: 8)
        try dir.write("a", a)
        try dir.write("b", b)
        try sh("zstd -q -19 -c a > a.zst && zstd -q --no-check -c b > b.zst && cat a.zst b.zst > ab.zst", in: dir.path)
        #expect(try drain(ZstdReader(FileReader(path: dir.file("ab.zst")))) == a + b)
        #expect(try drain(ZstdReader(BufferReader(compress([]) { ZstdWriter($0) }))) == [])
    }

    @Test func truncatedAndCorruptStreamsFail() throws {
        let zst = try compress(sampleData(500_000, seed: 9)) { ZstdWriter($0) }
        for cut in [zst.count - 1, zst.count - 4, zst.count / 2, 3, 0] {
            let error = #expect(throws: ArchiveError.self) { try drain(ZstdReader(BufferReader(Array(zst.prefix(cut))))) }
            #expect(error?.text.contains("truncated zstd stream") == true, "cut at \(cut): \(String(describing: error))")
        }
        var badChecksum = zst
        badChecksum[zst.count - 1] ^= 0xff
        let error = #expect(throws: ArchiveError.self) { try drain(ZstdReader(BufferReader(badChecksum))) }
        #expect(error?.text.contains("corrupt zstd stream") == true)

        let garbage = zst + Array("garbage!".utf8)
        #expect(throws: ArchiveError.self) { try drain(ZstdReader(BufferReader(garbage))) }
    }

    @Test func decompressionBombLimit() throws {
        let zst = try compress([UInt8](repeating: 0, count: 8 << 20)) { ZstdWriter($0, level: 19) }
        let error = #expect(throws: ArchiveError.self) { try drain(ZstdReader(BufferReader(zst), limit: 1 << 20)) }
        guard case .tooLarge? = error else {
            Issue.record("expected tooLarge, got \(String(describing: error))")
            return
        }
    }
}

@Suite struct CompressionSniffingTests {
    @Test func detectsMagicNumbers() {
        #expect(Compression.detect([0x1f, 0x8b, 8, 0]) == .gzip)
        #expect(Compression.detect([0x28, 0xb5, 0x2f, 0xfd]) == .zstd)
        #expect(Compression.detect([0x50, 0x2a, 0x4d, 0x18]) == .zstd) // skippable frame
        #expect(Compression.detect(Array("file.txt".utf8)) == .none)
        #expect(Compression.detect([0x1f]) == .none)
        #expect(Compression.detect([]) == .none)
    }

    @Test func decompressingSniffsEveryFormat() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let data = sampleData(700_000, seed: 11)
        for c in Compression.allCases {
            let blob = try compress(data) { c.writer($0) }
            if c == .none { #expect(blob == data) }
            #expect(try drain(Compression.decompressing(BufferReader(blob))) == data, "\(c)")
            try dir.write("blob.\(c.rawValue)", blob)
            #expect(try drain(Compression.openDecompressed(path: dir.file("blob.\(c.rawValue)"))) == data, "\(c)")
            // The limit applies to every format, uncompressed included.
            #expect(throws: ArchiveError.self) { try drain(Compression.decompressing(BufferReader(blob), limit: 1000)) }
        }
        // Streams shorter than a magic number are plain.
        #expect(try drain(Compression.decompressing(BufferReader([1, 2]))) == [1, 2])
        #expect(try drain(Compression.decompressing(BufferReader([]))) == [])
    }

    @Test func readsZstdSkippableFrames() throws {
        // A skippable frame (magic 0x184D2A50, 4-byte length, payload) before a real frame.
        let skippable: [UInt8] = [0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]
        let zst = try compress(Array("hello".utf8)) { ZstdWriter($0) }
        #expect(try drain(Compression.decompressing(BufferReader(skippable + zst))) == Array("hello".utf8))
    }
}

/// Plain CRC-32 (ISO 3309, as gzip uses), for building test headers.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xedb8_8320 : crc >> 1 }
    }
    return ~crc
}
