import Foundation

/// Pure helpers of the spec parser: paths, account names, Go durations, did-you-mean.
enum SpecPaths {
    /// Lexically cleans an absolute path: no `.`, no empty components, `..` applied
    /// (never above `/`). `FileTree.normalize` with the leading `/`: one normaliser.
    static func clean(_ path: String) -> String {
        "/" + FileTree.normalize(path)
    }

    /// `[a-z_][a-z0-9_-]*[$]?`, 1 to 32 characters.
    static func isAccountName(_ s: String) -> Bool {
        let c = Array(s.utf8)
        guard !c.isEmpty, c.count <= 32 else { return false }
        func lower(_ b: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) }
        func digit(_ b: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) }
        guard lower(c[0]) || c[0] == UInt8(ascii: "_") else { return false }
        for (i, b) in c.enumerated().dropFirst() {
            if lower(b) || digit(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-") { continue }
            if b == UInt8(ascii: "$"), i == c.count - 1 { continue }
            return false
        }
        return true
    }

    /// Go's `time.ParseDuration`, or a plain integer (nanoseconds). nil when invalid or out of range.
    static func goDuration(_ s: String) -> Int64? {
        if !s.isEmpty, s.count <= 19, s.utf8.allSatisfy({ (48...57).contains($0) }) { return Int64(s) }
        var c = Array(s.unicodeScalars)
        var negative = false
        if let f = c.first, f == "-" || f == "+" {
            negative = f == "-"
            c.removeFirst()
        }
        if c.count == 1, c[0] == "0" { return 0 }
        guard !c.isEmpty else { return nil }
        let units: [String: Int64] = ["ns": 1, "us": 1_000, "\u{B5}s": 1_000, "\u{3BC}s": 1_000, "ms": 1_000_000,
                                      "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000]
        func isDigit(_ u: Unicode.Scalar) -> Bool { ("0"..."9").contains(u) }
        var i = 0
        var total: Int64 = 0
        while i < c.count {
            var whole: Int64 = 0
            var sawDigits = false
            while i < c.count, isDigit(c[i]) {
                let (m, o1) = whole.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(c[i].value - 48))
                guard !o1, !o2 else { return nil }
                whole = a
                sawDigits = true
                i += 1
            }
            var frac: Int64 = 0
            var scale: Double = 1
            if i < c.count, c[i] == "." {
                i += 1
                while i < c.count, isDigit(c[i]) {
                    if scale < 1e18 {
                        frac = frac * 10 + Int64(c[i].value - 48)
                        scale *= 10
                    }
                    sawDigits = true
                    i += 1
                }
            }
            guard sawDigits else { return nil }
            let start = i
            while i < c.count, c[i] != ".", !isDigit(c[i]) { i += 1 }
            let unitName = String(String.UnicodeScalarView(c[start..<i]))
            guard let unit = units[unitName] else { return nil }
            let (w, o1) = whole.multipliedReportingOverflow(by: unit)
            guard !o1 else { return nil }
            let f = Double(frac) * (Double(unit) / scale)
            guard f < 9.2e18 else { return nil }
            let (t1, o2) = total.addingReportingOverflow(w)
            let (t2, o3) = t1.addingReportingOverflow(Int64(f))
            guard !o2, !o3 else { return nil }
            total = t2
        }
        return negative ? -total : total
    }

    /// A case-insensitive match, else the closest candidate within edit distance 2.
    static func didYouMean(_ s: String, _ candidates: [String]) -> String? {
        let lower = s.lowercased()
        if let exact = candidates.first(where: { $0.lowercased() == lower }) { return exact }
        var best: (String, Int)?
        for c in candidates {
            let d = levenshtein(Array(lower.unicodeScalars), Array(c.lowercased().unicodeScalars))
            if d <= 2, d < c.unicodeScalars.count, d < s.unicodeScalars.count, best == nil || d < best!.1 {
                best = (c, d)
            }
        }
        return best?.0
    }

    static func levenshtein(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}
