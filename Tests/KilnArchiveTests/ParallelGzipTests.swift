import Foundation
import Testing
@testable import KilnArchive

@Suite struct ParallelGzipTests {
    /// Compressible but not trivial input of `n` bytes.
    func sample(_ n: Int) -> [UInt8] {
        var x: UInt32 = 12345
        return (0..<n).map { i in
            x = x &* 1_103_515_245 &+ 12345
            return i % 7 == 0 ? UInt8(truncatingIfNeeded: x >> 16) : UInt8(ascii: "a") + UInt8(i % 13)
        }
    }

    func compress(_ input: [UInt8], threads: Int, blockSize: Int, chunk: Int = 70_000) throws -> [UInt8] {
        let out = BufferWriter()
        let gz = ParallelGzipWriter(out, threads: threads, blockSize: blockSize)
        var i = 0
        while i < input.count {
            let j = min(i + chunk, input.count)
            try input[i..<j].withUnsafeBytes { try gz.write($0) }
            i = j
        }
        try gz.finish()
        return out.bytes
    }

    @Test func sameBytesWhateverTheThreadCountAndWriteSizes() throws {
        let input = sample(3_300_000)
        let one = try compress(input, threads: 1, blockSize: 1 << 20)
        let two = try compress(input, threads: 2, blockSize: 1 << 20, chunk: 4096)
        let eight = try compress(input, threads: 8, blockSize: 1 << 20, chunk: 1 << 20)
        #expect(one == two)
        #expect(one == eight)
        #expect(one.count < input.count / 2)
    }

    @Test func gzipAndPigzAndOurReaderDecompressIt() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let input = sample(2_500_000)
        try dir.write("in", input)
        try dir.write("in.gz", try compress(input, threads: 2, blockSize: 256 << 10))
        try sh("gzip -t in.gz && gzip -dc in.gz | cmp - in && pigz -dc in.gz | cmp - in", in: dir.path)
        let back = try GzipReader(BufferReader(try dir.read("in.gz"))).readAll(limit: 1 << 30)
        #expect(back == input)
    }

    @Test func emptyInputIsOneValidMember() throws {
        let out = try compress([], threads: 2, blockSize: 1 << 20)
        #expect(out.count <= 30)
        #expect(Array(out.prefix(4)) == [0x1f, 0x8b, 8, 0])
        #expect(try GzipReader(BufferReader(out)).readAll().isEmpty)
    }
}
