import Foundation
import KilnArchive

/// A scratch directory under the system temp dir, removed by `remove()`.
struct TempDir {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-archive-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ name: String, _ bytes: [UInt8]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: file(name)))
    }

    func read(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: file(name))))
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

struct ShellError: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let stderr: String
    var description: String { "`\(command)` exited \(status): \(stderr)" }
}

/// Runs `command` with /bin/sh in `cwd`; returns stdout; throws on a non-zero exit.
@discardableResult
func sh(_ command: String, in cwd: String? = nil) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    // stderr to a file so neither pipe can fill up and block the child.
    let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-sh-\(UUID().uuidString).err")
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errURL) }
    let errHandle = try FileHandle(forWritingTo: errURL)
    let out = Pipe()
    p.standardOutput = out
    p.standardError = errHandle
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    try errHandle.close()
    guard p.terminationStatus == 0 else {
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        throw ShellError(command: command, status: p.terminationStatus, stderr: err)
    }
    return String(decoding: data, as: UTF8.self)
}

/// Deterministic, compressible test data (words from a small vocabulary mixed
/// with pseudo-random bytes), so compressors produce several blocks.
func sampleData(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    func nextRandom() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
    let words = ["layer", "image", "kiln", "tar", "gzip", "zstd", "manifest", "blob", "digest", "\n", " "]
        .map { Array($0.utf8) }
    var out: [UInt8] = []
    out.reserveCapacity(count)
    while out.count < count {
        let r = nextRandom()
        if r % 7 == 0 {
            out.append(UInt8(truncatingIfNeeded: r >> 8))
        } else {
            out += words[Int(r % UInt64(words.count))]
        }
    }
    return Array(out.prefix(count))
}

/// Reads a stream to its end.
func drain(_ reader: ByteReader) throws -> [UInt8] {
    try reader.readAll(limit: 1 << 30)
}

/// Compresses `bytes` into memory with a writer built on the given sink.
func compress(_ bytes: [UInt8], chunk: Int = 100_000, _ make: (ByteWriter) -> ByteWriter) throws -> [UInt8] {
    let sink = BufferWriter()
    let w = make(sink)
    var i = 0
    while i < bytes.count {
        let end = min(bytes.count, i + chunk)
        try bytes[i..<end].withUnsafeBytes { try w.write($0) }
        i = end
    }
    try w.finish()
    return sink.bytes
}

/// A tar archive built with TarWriter: (header, body) pairs.
func makeTar(_ entries: [(TarHeader, [UInt8])]) throws -> [UInt8] {
    let sink = BufferWriter()
    let tw = TarWriter(sink)
    for (h, body) in entries {
        try tw.writeHeader(h)
        if !body.isEmpty { try body.withUnsafeBytes { try tw.writeBody($0) } }
    }
    try tw.close()
    return sink.bytes
}

/// All entries of a tar stream with their bodies.
func readTar(_ bytes: [UInt8]) throws -> [(TarHeader, [UInt8])] {
    let tr = TarReader(BufferReader(bytes))
    var out: [(TarHeader, [UInt8])] = []
    while let h = try tr.next() {
        let sink = BufferWriter()
        try tr.copyBody(to: sink)
        out.append((h, sink.bytes))
    }
    return out
}

/// Rewrites a header block's checksum after a test edited it.
func fixChecksum(_ tar: inout [UInt8], block offset: Int) {
    for i in 148..<156 { tar[offset + i] = 0x20 }
    let sum = tar[offset..<(offset + 512)].reduce(0) { $0 + Int($1) }
    let digits = Array(String(sum, radix: 8).utf8)
    let field = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, 0x20]
    for (i, c) in field.enumerated() { tar[offset + 148 + i] = c }
}

/// Writes `value` into a header field as a NUL-terminated octal string.
func setOctal(_ tar: inout [UInt8], block offset: Int, field: Int, length: Int, _ value: Int64) {
    let digits = Array(String(value, radix: 8).utf8)
    let text = [UInt8](repeating: UInt8(ascii: "0"), count: length - 1 - digits.count) + digits + [0]
    for (i, c) in text.enumerated() { tar[offset + field + i] = c }
}

extension Error {
    var text: String { "\(self)" }
}

/// A pax record, `"%d %s=%s\n"` with the length counting itself.
func paxRecord(_ key: String, _ value: String) -> [UInt8] {
    let payload = Array(" \(key)=\(value)\n".utf8)
    var length = payload.count + 1
    while String(length).utf8.count + payload.count != length { length = String(length).utf8.count + payload.count }
    return Array(String(length).utf8) + payload
}

/// A pax header of the given type (`g` global, `x` extended) holding `records`.
func paxGlobalHeader(_ records: [(String, String)], typeflag: Character = "g", name: String = "pax_global_header") throws -> [UInt8] {
    let body = records.flatMap { paxRecord($0.0, $0.1) }
    var block = try TarWriter.encode(TarHeader(name: name, kind: .regular, mode: 0o644, size: Int64(body.count)))
    block[156] = typeflag.asciiValue!
    fixChecksum(&block, block: 0)
    return block + body + [UInt8](repeating: 0, count: Int(TarBlock.padded(Int64(body.count))) - body.count)
}
