#if canImport(Glibc)
import Glibc
#endif
import Testing
import KilnArchive
@testable import KilnRegistry

/// The live blob display on a terminal, read back through a minimal terminal (ECMA-48's
/// CR, EL `ESC [ 2 K`, CUU `ESC [ n A`, ED `ESC [ J`) to see what stays on the screen.
@Suite struct TerminalProgressTests {
    /// The lines left on a screen after `bytes` were written to it.
    static func screen(_ bytes: [UInt8]) -> [String] {
        var lines: [String] = [], row = 0, i = 0
        func ensure() { while lines.count <= row { lines.append("") } }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x1B, i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "[") {
                var j = i + 2, n = 0
                while j < bytes.count, (48...57).contains(bytes[j]) { n = n * 10 + Int(bytes[j] - 48); j += 1 }
                switch bytes[j] {
                case UInt8(ascii: "A"): row = max(0, row - max(1, n))
                case UInt8(ascii: "J"): if lines.count > row { lines.removeSubrange(row...) }
                case UInt8(ascii: "K"): ensure(); lines[row] = ""
                default: break
                }
                i = j + 1
                continue
            }
            if b == UInt8(ascii: "\n") { row += 1 } else if b != UInt8(ascii: "\r") { ensure(); lines[row].append(Character(UnicodeScalar(b))) }
            i += 1
        }
        return lines.filter { !$0.isEmpty }
    }

    /// A display used for two pushes (one per platform of an index) leaves each blob's
    /// line once: the first push's blobs are not printed again when the second closes.
    @Test func eachPushLeavesItsOwnBlobsOnce() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let progress = TerminalProgress(screen: TerminalScreen(fd: fds[1]))
        progress.start("aaaa", verb: "pushing", total: 10)
        progress.finish("aaaa", outcome: "exists")
        progress.close()
        progress.start("bbbb", verb: "pushing", total: 10)
        progress.advance("bbbb", by: 10)
        progress.finish("bbbb", outcome: "done")
        progress.close()
        close(fds[1])
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buf, buf.count)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        close(fds[0])
        let lines = Self.screen(out)
        #expect(lines == ["pushing aaaa exists", "pushing bbbb done (10 B)"], "\(lines)")
    }
}
