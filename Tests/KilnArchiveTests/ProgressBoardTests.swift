#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import Synchronization
import Testing

@Suite struct ProgressBoardTests {
    @Test func layerBytesAreCountedAMiBAtATime() throws {
        let board = ProgressBoard()
        let meter = board.beginLayer(size: 5 << 20)
        // Small reads are held back until a MiB has gathered, then reported at once.
        for _ in 0..<1000 { meter.read(1000) }
        #expect(board.snapshot().layerRead == 0)
        for _ in 0..<100 { meter.read(1000) }
        #expect(board.snapshot().layerRead == 1_049_000)  // the first whole MiB (1,048,576) reached at 1,049 reads
        meter.read(5)
        meter.finish()
        meter.finish()  // once only
        let s = board.snapshot()
        #expect(s.layerRead == 1_100_005 && s.totalRead == 1_100_005)
        #expect(s.layer == 1 && s.layersDone == 1 && s.layerSize == 5 << 20 && s.phase == "layer")

        // What a compressor writes is counted through `counting`.
        let sink = CountingWriter()
        let w = board.counting(sink)
        let chunk = [UInt8](repeating: 7, count: 300_000)
        for _ in 0..<4 { try w.write(chunk) }
        #expect(board.snapshot().layerWritten == 1_200_000)
        try w.write(chunk)
        #expect(board.snapshot().layerWritten == 1_200_000)
        try w.finish()
        #expect(board.snapshot().layerWritten == 1_500_000 && sink.count == 1_500_000)

        board.planned()
        board.planned(4)
        board.cacheLookup(hit: true)
        board.cacheLookup(hit: false)
        let t = board.snapshot()
        #expect(t.phase == "planning" && t.entriesPlanned == 5 && t.cacheHits == 1)
        // A second layer starts from zero.
        board.beginLayer(size: 10).finish()
        #expect(board.snapshot().layer == 2 && board.snapshot().layerRead == 0)
    }

    @Test func downloadReportsGoToTheBoardAndToTheCallerUnlessLiveOrQuiet() {
        let board = ProgressBoard()
        let heard = LockedCount()
        board.downloadReport { _, _ in heard.add() }(10, 100)
        #expect(board.snapshot().downloadDone == 10 && board.snapshot().phase == "downloading packages")
        #expect(heard.value == 1)
        board.mode = .live
        board.downloadReport { _, _ in heard.add() }(20, 100)
        board.mode = .quiet
        board.downloadReport { _, _ in heard.add() }(30, 100)
        #expect(heard.value == 1 && board.snapshot().downloadDone == 30)
    }

    @Test func screenWritesMessagesAboveTheLiveLines() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let screen = TerminalScreen(fd: fds[1])
        screen.write("plain\n")
        screen.set("a", lines: ["progress 1"])
        screen.write("message\n")
        screen.set("a", lines: ["progress 2"], force: false, minInterval: 60)  // too soon: not drawn
        screen.remove("a")
        close(fds[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buf, buf.count)
            if n <= 0 { break }
            out += buf[..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        let esc = "\u{1B}["
        #expect(text == "plain\n"
            + "\r\(esc)2Kprogress 1\n"
            + "\r\(esc)1A\(esc)Jmessage\n\r\(esc)2Kprogress 1\n"
            + "\r\(esc)1A\(esc)J", "\(text.debugDescription)")
    }

    @Test func httpLogLeavesNoSecretInURLs() {
        #expect(HTTPLog.redacted("https://alice:pw@r.example/v2/a/blobs/uploads/u1?_state=SECRET&digest=sha256:abc")
            == "https://r.example/v2/a/blobs/uploads/u1?_state=…&digest=sha256:abc")
        #expect(HTTPLog.redacted("https://auth.example/token?service=reg&scope=repository:a/b:pull,push&account=alice&access_token=T0K")
            == "https://auth.example/token?service=reg&scope=repository:a/b:pull,push&account=…&access_token=…")
        #expect(HTTPLog.redacted("https://s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=def#frag")
            == "https://s3.example/blob?X-Amz-Signature=…&X-Amz-Credential=…")
        #expect(HTTPLog.redacted("http://127.0.0.1:5000/v2/") == "http://127.0.0.1:5000/v2/")
        #expect(!HTTPLog.redacted("not a url with user:pw@host?token=x").contains("token=x"))
    }
}

private final class CountingWriter: ByteWriter {
    var count = 0
    func write(_ buffer: UnsafeRawBufferPointer) throws { count += buffer.count }
    func finish() throws {}
}

private final class LockedCount: Sendable {
    private let n = Mutex(0)
    func add() { n.withLock { $0 += 1 } }
    var value: Int { n.withLock { $0 } }
}
