import Foundation
import KilnArchive
import Testing

/// True when `tool` is an executable in one of the usual bin directories.
private func haveTool(_ tool: String) -> Bool {
    ["/usr/bin", "/bin", "/usr/local/bin"].contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)") }
}

private let haveXz = haveTool("xz")

/// Pseudo-random bytes that do not compress (xorshift64*), deterministic per seed.
private func noise(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27
        out[i] = UInt8(truncatingIfNeeded: (x &* 0x2545F4914F6CDD1D) >> 56)
    }
    return out
}

/// The SHA-256 of everything `reader` produces, read with `bufferSize` reads.
private func digest(of reader: ByteReader, bufferSize: Int = 1 << 16) throws -> (String, Int64) {
    let hasher = HashingWriter(nil)
    let n = try reader.copy(to: hasher, bufferSize: bufferSize)
    return (hasher.digest.hex, n)
}

private func sha256(_ bytes: [UInt8]) -> String {
    let h = HashingWriter(nil)
    try! h.write(bytes)
    return h.digest.hex
}

@Suite struct XzTests {
    /// Files made by the real `xz` with several presets and checks decode to the
    /// same bytes, whatever size the caller's reads have.
    @Test(.enabled(if: haveXz, "the xz command is not installed")) func roundTripWithXzCLI() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let text = sampleData(3 << 20, seed: 7)
        let random = noise(2 << 20, seed: 11)
        try dir.write("text", text)
        try dir.write("random", random)
        // -T2 with a small block size makes a multi-Block Stream (the threaded
        // encoder's layout); --check covers all of CRC32, CRC64 and SHA-256.
        try sh("""
            xz -T1 -c text > text.xz && xz -T1 -0 --check=crc32 -c random > random.xz && \
            xz -T2 --block-size=300KiB --check=sha256 -c text > text.mt.xz && \
            xz -T1 -9e --check=none -c random > random.9.xz
            """, in: dir.path)
        let cases: [(String, [UInt8])] = [("text.xz", text), ("random.xz", random), ("text.mt.xz", text), ("random.9.xz", random)]
        for (file, original) in cases {
            let expected = try sh("sha256sum \(file.split(separator: ".")[0])", in: dir.path).prefix(64)
            #expect(expected == sha256(original)[...])
            for bufferSize in [1 << 20, 4096, 7] where bufferSize > 7 || original.count <= (2 << 20) {
                let reader = XzReader(try FileReader(path: dir.file(file)))
                let (hex, n) = try digest(of: reader, bufferSize: bufferSize)
                #expect(hex == String(expected), "\(file) read in \(bufferSize)-byte reads")
                #expect(n == Int64(original.count))
                #expect(reader.totalOut == Int64(original.count))
                #expect(reader.totalIn == Int64(try dir.read(file).count))
                // Reading on after the end keeps answering 0.
                var b = [UInt8](repeating: 0, count: 16)
                #expect(try b.withUnsafeMutableBytes { try reader.read(into: $0) } == 0)
            }
        }
    }

    @Test(.enabled(if: haveXz, "the xz command is not installed")) func emptyPayloadRoundTrips() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try sh("printf '' | xz -c > empty.xz", in: dir.path)
        #expect(try drain(XzReader(FileReader(path: dir.file("empty.xz")))) == [])
    }

    /// Concatenated Streams (`cat a.xz b.xz`), with Stream Padding between them
    /// (xz-file-format §2.2), decode to the concatenated data, as `xz -d` does.
    @Test(.enabled(if: haveXz, "the xz command is not installed")) func multiStreamConcatenation() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let a = sampleData(1 << 20, seed: 2), b = noise(300_000, seed: 3), c = sampleData(10, seed: 4)
        try dir.write("a", a)
        try dir.write("b", b)
        try dir.write("c", c)
        try sh("xz -c a > abc.xz && xz -c b >> abc.xz && head -c 8 /dev/zero >> abc.xz && xz -c c >> abc.xz", in: dir.path)
        try sh("xz -dc abc.xz > abc.out", in: dir.path)
        #expect(try dir.read("abc.out") == a + b + c)
        #expect(try drain(XzReader(FileReader(path: dir.file("abc.xz")))) == a + b + c)
    }

    @Test(.enabled(if: haveXz, "the xz command is not installed")) func truncatedInputThrows() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("data", sampleData(600_000, seed: 5))
        try sh("xz -c data > data.xz", in: dir.path)
        let xz = try dir.read("data.xz")
        for cut in [0, 3, 6, 12, 100, xz.count / 2, xz.count - 12, xz.count - 1] {
            let error = #expect(throws: ArchiveError.self, "cut at \(cut) of \(xz.count)") {
                try drain(XzReader(BufferReader(Array(xz.prefix(cut)))))
            }
            #expect(error?.text.contains("xz stream") == true, "\(error.map { "\($0)" } ?? "")")
            if cut > 12 { #expect(error?.text.contains("truncated") == true, "\(error.map { "\($0)" } ?? "")") }
        }
    }

    @Test(.enabled(if: haveXz, "the xz command is not installed")) func corruptedInputThrows() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let data = sampleData(600_000, seed: 6)
        try dir.write("data", data)
        try sh("xz -c data > data.xz", in: dir.path)
        let xz = try dir.read("data.xz")
        // A flipped byte in the header, the middle of the LZMA2 data, and the
        // index/footer: each caught by a CRC or the Block's check.
        for position in [2, 8, xz.count / 2, xz.count - 20, xz.count - 3] {
            var bad = xz
            bad[position] ^= 0x55
            let error = #expect(throws: ArchiveError.self, "flip at \(position)") { try drain(XzReader(BufferReader(bad))) }
            #expect(error?.text.contains("xz") == true)
        }
        // Garbage after the last Stream is not Stream Padding.
        #expect(throws: ArchiveError.self) { try drain(XzReader(BufferReader(xz + Array("junk".utf8)))) }
        // Not xz at all.
        #expect(throws: ArchiveError.self) { try drain(XzReader(BufferReader(data))) }
    }

    @Test(.enabled(if: haveXz, "the xz command is not installed")) func limitIsEnforced() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        // 64 MiB of zeros: ~10 KiB of xz, the shape of a decompression bomb.
        try sh("head -c 67108864 /dev/zero | xz -T1 -c > zeros.xz", in: dir.path)
        #expect(try dir.read("zeros.xz").count < 100_000)
        let error = #expect(throws: ArchiveError.self) {
            try XzReader(FileReader(path: dir.file("zeros.xz")), limit: 1 << 20).copy(to: NullWriter())
        }
        #expect(error?.text.contains("exceeds the limit of 1048576 bytes") == true)
        // Exactly at the limit is fine.
        #expect(try XzReader(FileReader(path: dir.file("zeros.xz")), limit: 64 << 20).copy(to: NullWriter()) == 64 << 20)
        // Through the sniffing entry point too.
        #expect(throws: ArchiveError.self) {
            try Compression.openDecompressed(path: dir.file("zeros.xz"), limit: 1000).copy(to: NullWriter())
        }
    }

    @Test(.enabled(if: haveXz, "the xz command is not installed")) func decompressingSniffsXz() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let data = sampleData(200_000, seed: 8)
        try dir.write("data", data)
        try sh("xz -c data > data.xz", in: dir.path)
        let reader = try Compression.decompressing(FileReader(path: dir.file("data.xz")))
        #expect(reader is XzReader)
        #expect(try drain(reader) == data)
        #expect(try drain(Compression.openDecompressed(path: dir.file("data.xz"))) == data)
        // The enum is untouched: detect still says .none for xz bytes.
        #expect(Compression.detect(try dir.read("data.xz")) == .none)
        // Five of the six magic bytes are not xz; short inputs still pass through.
        #expect(try drain(Compression.decompressing(BufferReader(Array(XzReader.magic.prefix(5))))) == Array(XzReader.magic.prefix(5)))
        #expect(try drain(Compression.decompressing(BufferReader([1, 2]))) == [1, 2])
        // gzip and zstd are still recognised after reading six bytes.
        let gz = try compress(data) { GzipWriter($0) }
        #expect(try drain(Compression.decompressing(BufferReader(gz))) == data)
        let zst = try compress(data) { ZstdWriter($0) }
        #expect(try drain(Compression.decompressing(BufferReader(zst))) == data)
    }

    /// Not a benchmark: decodes ~48 MiB and prints the rate, so a pathological
    /// slowdown (tiny reads, per-byte work) shows in the log. No timing assertion.
    @Test(.enabled(if: haveXz, "the xz command is not installed")) func throughputSanity() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try dir.write("chunk", sampleData(4 << 20, seed: 9) + noise(4 << 20, seed: 10))
        try sh("for i in 1 2 3 4 5 6; do cat chunk; done | xz -T1 -1 -c > big.xz", in: dir.path)
        let expected = try sh("xz -dc big.xz | sha256sum", in: dir.path).prefix(64)
        let start = ContinuousClock.now
        let (hex, n) = try digest(of: XzReader(FileReader(path: dir.file("big.xz"))), bufferSize: 1 << 20)
        let elapsed = ContinuousClock.now - start
        #expect(hex == String(expected))
        #expect(n == 48 << 20)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("XzReader: \(n >> 20) MiB in \(elapsed) (\(Int(Double(n >> 20) / max(seconds, 1e-9))) MiB/s, SHA-256 included)")
    }
}
