#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One paragraph of a deb822 control file (Debian Policy §5.1): a `Packages` index entry,
/// a `status` entry, a `.deb`'s `control`, a `Release` header.
///
/// A field's `value` keeps its continuation lines joined with `"\n"`, each with its
/// leading space or tab, so `serialized` reproduces the paragraph exactly as dpkg writes it.
public struct ControlParagraph: Sendable, Hashable {
    public struct Field: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// The fields in file order.
    public var fields: [Field]

    public init(fields: [Field]) {
        self.fields = fields
    }

    /// The value of the field `name`, matched case-insensitively (Policy §5.1: "field
    /// names are not case-sensitive").
    public subscript(_ name: String) -> String? {
        for f in fields where Self.sameName(f.name, name) { return f.value }
        return nil
    }

    /// The paragraph as dpkg writes it: `Name: value` lines, continuation lines as kept,
    /// a field whose first line is empty written as `Name:` (as dpkg writes `Conffiles:`),
    /// no trailing blank line.
    public var serialized: String {
        var out = ""
        out.reserveCapacity(fields.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count + 3 })
        for f in fields {
            out += f.name
            out += f.value.isEmpty || f.value.utf8.first == 0x0A ? ":" : ": "
            out += f.value
            out += "\n"
        }
        return out
    }

    /// Parses every paragraph of a deb822 text. Paragraphs are separated by lines that are
    /// empty or hold only spaces and tabs; lines starting with `#` are comments (deb822(5));
    /// a line starting with a space or tab continues the previous field. Errors name the
    /// 1-based line: a continuation with no field before it, a line without a colon, an
    /// empty or malformed field name, a field repeated in one paragraph.
    public static func parseAll(_ text: String) throws(ResolveError) -> [ControlParagraph] {
        var text = text
        var result: Result<[ControlParagraph], ResolveError> = .success([])
        text.withUTF8 { buf in
            guard let base = buf.baseAddress, !buf.isEmpty else { return }
            var parser = Parser(base, count: buf.count)
            do throws(ResolveError) { result = .success(try parser.run()) } catch { result = .failure(error) }
        }
        return try result.get()
    }

    /// ASCII case-insensitive comparison of field names. An index loop rather than a
    /// generic algorithm, which debug builds would not specialise.
    static func sameName(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        let x = a.utf8, y = b.utf8
        guard x.count == y.count else { return false }
        var i = x.startIndex, j = y.startIndex
        while i != x.endIndex {
            let p = x[i], q = y[j]
            if p != q {
                let folded = p | 0x20
                guard folded == q | 0x20, folded >= 0x61, folded <= 0x7A else { return false }
            }
            i = x.index(after: i)
            j = y.index(after: j)
        }
        return true
    }
}

/// A single pass over the bytes of a deb822 text. A field's value is usually one
/// contiguous slice of the input (its lines separated by `\n`), so it becomes a `String`
/// with a single copy; CRLF line ends or comments between continuation lines fall back
/// to joining the lines. Loops are plain index loops over a raw pointer so that debug
/// builds, which inline nothing, stay usable on a 60,000-paragraph index.
private struct Parser {
    let p: UnsafePointer<UInt8>
    let n: Int
    var paragraphs: [ControlParagraph] = []
    var fields: [ControlParagraph.Field] = []
    /// Per field of the current paragraph: its name's length and folded first and last
    /// bytes, so that the duplicate check compares names only when these agree.
    var fieldKeys: [Int] = []
    var name = ""
    var nameKey = 0
    var nameLine = 0
    /// The current field's value: from `valueStart` to `valueEnd` when its lines are
    /// adjacent in the input, else the lines in `pieces`.
    var valueStart = 0
    var valueEnd = 0
    var pieces: [Range<Int>] = []

    init(_ p: UnsafePointer<UInt8>, count: Int) {
        self.p = p
        n = count
    }

    mutating func run() throws(ResolveError) -> [ControlParagraph] {
        var pos = 0
        var lineNo = 0
        while pos < n {
            lineNo += 1
            let lineStart = pos
            var lineEnd = n
            if let hit = memchr(p + pos, 0x0A, n - pos) {
                lineEnd = p.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
            pos = lineEnd + 1
            var end = lineEnd
            if end > lineStart && p[end - 1] == 0x0D { end -= 1 }  // CRLF
            if end == lineStart {
                try flushParagraph()
                continue
            }
            let first = p[lineStart]
            if first == 0x20 || first == 0x09 {
                if isBlank(lineStart, end) {
                    try flushParagraph()
                    continue
                }
                guard !name.isEmpty else {
                    throw .controlSyntax(line: lineNo, reason: "continuation line with no field before it")
                }
                if pieces.isEmpty && lineStart == valueEnd + 1 && lineEnd == end {
                    valueEnd = end
                } else {
                    if pieces.isEmpty { pieces.append(valueStart..<valueEnd) }
                    pieces.append(lineStart..<end)
                }
                continue
            }
            if first == 0x23 { continue }  // '#' comment
            try flushField()
            // The name runs to the colon: printable ASCII without spaces, not starting
            // with '-' (deb822(5)).
            var colon = lineStart
            var badName = first == 0x2D
            while colon < end {
                let b = p[colon]
                if b == 0x3A { break }
                if b <= 0x20 || b >= 0x7F { badName = true }
                colon += 1
            }
            guard colon < end else {
                throw .controlSyntax(line: lineNo, reason: "expected \"Field: value\", found \"\(string(lineStart, min(end, lineStart + 60)))\"")
            }
            guard colon > lineStart, !badName else {
                throw .controlSyntax(line: lineNo, reason: colon == lineStart || first == 0x2D
                    ? "empty or malformed field name"
                    : "invalid character in field name \"\(string(lineStart, colon))\"")
            }
            name = string(lineStart, colon)
            nameKey = (colon - lineStart) << 16 | Int(p[lineStart] | 0x20) << 8 | Int(p[colon - 1] | 0x20)
            nameLine = lineNo
            var v = colon + 1
            while v < end && (p[v] == 0x20 || p[v] == 0x09) { v += 1 }
            valueStart = v
            valueEnd = end
            if lineEnd != end { pieces.append(v..<end) }  // CRLF: lines are not adjacent
        }
        try flushParagraph()
        return paragraphs
    }

    private mutating func flushField() throws(ResolveError) {
        guard !name.isEmpty else { return }
        var k = 0
        while k < fieldKeys.count {
            if fieldKeys[k] == nameKey && ControlParagraph.sameName(fields[k].name, name) {
                throw .controlSyntax(line: nameLine, reason: "field \(name) appears twice in one paragraph")
            }
            k += 1
        }
        fields.append(.init(name: name, value: value()))
        fieldKeys.append(nameKey)
        name = ""
        pieces.removeAll(keepingCapacity: true)
    }

    private mutating func flushParagraph() throws(ResolveError) {
        try flushField()
        if !fields.isEmpty {
            paragraphs.append(ControlParagraph(fields: fields))
            fields.removeAll(keepingCapacity: true)
            fieldKeys.removeAll(keepingCapacity: true)
        }
    }

    /// The value with trailing whitespace removed, lines joined by `\n`.
    private func value() -> String {
        if pieces.isEmpty {
            var end = valueEnd
            while end > valueStart && isSpace(p[end - 1]) { end -= 1 }
            return string(valueStart, end)
        }
        var s = ""
        var k = 0
        while k < pieces.count {
            if k > 0 { s += "\n" }
            s += string(pieces[k].lowerBound, pieces[k].upperBound)
            k += 1
        }
        while let last = s.utf8.last, isSpace(last) { s.removeLast() }
        return s
    }

    private func isBlank(_ start: Int, _ end: Int) -> Bool {
        var i = start
        while i < end {
            if p[i] != 0x20 && p[i] != 0x09 { return false }
            i += 1
        }
        return true
    }

    @inline(__always) private func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    private func string(_ start: Int, _ end: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: p + start, count: end - start), as: UTF8.self)
    }
}
