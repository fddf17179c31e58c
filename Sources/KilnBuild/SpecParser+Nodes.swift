import Yams

/// Reading YAML nodes: maps with checked keys, lists, scalars; error messages in the
/// `FILE:LINE: KEY: what is wrong` form, with did-you-mean hints.
extension SpecParser {
    struct Entry {
        var key: Node
        var value: Node
    }

    struct Fields {
        var node: Node
        var path: String
        var entries: [String: Entry]

        /// The value of `name`, nil when absent or null.
        subscript(name: String) -> Node? {
            guard let v = entries[name]?.value else { return nil }
            if case .scalar = v, v.tag == Tag(.null) { return nil }
            return v
        }

        func keyPath(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }

        func missing(_ name: String, _ what: String, _ p: SpecParser) -> BuildError {
            if let e = entries[name] {
                return p.fail(e.key, keyPath(name), "missing value (\(what))")
            }
            return p.fail(node, keyPath(name), "missing required key (\(what))")
        }
    }

    /// The entries of a map: keys must be strings and unique; `<<` merge keys are applied;
    /// keys not in `allowed` (when given) are errors with a suggestion.
    func fields(_ n: Node, at kp: String, allowed: [String]?) throws -> Fields {
        guard case .mapping(let m) = n else {
            throw fail(n, kp, "expected a map, got \(describe(n))")
        }
        let pairs = try flatten(m, at: kp)
        var entries: [String: Entry] = [:]
        for (name, key, value) in pairs {
            let path = kp.isEmpty ? name : "\(kp).\(name)"
            if let allowed, !allowed.contains(name) {
                throw fail(key, path, "unknown key" + hint(name, allowed, expected: nil))
            }
            entries[name] = Entry(key: key, value: value)
        }
        return Fields(node: n, path: kp, entries: entries)
    }

    func flatten(_ m: Node.Mapping, at kp: String) throws -> [(String, Node, Node)] {
        var explicit: [(String, Node, Node)] = []
        var seen: [String: Node] = [:]
        var merged: [[(String, Node, Node)]] = []
        for (key, value) in m {
            let path = { (name: String) in kp.isEmpty ? name : "\(kp).\(name)" }
            if case .scalar = key, key.tag == Tag(.merge) {
                switch value {
                case .mapping(let mm): merged.append(try flatten(mm, at: kp))
                case .sequence(let seq):
                    for item in seq {
                        guard case .mapping(let mm) = item else {
                            throw fail(item, path("<<"), "expected a map to merge, got \(describe(item))")
                        }
                        merged.append(try flatten(mm, at: kp))
                    }
                default:
                    throw fail(value, path("<<"), "expected a map or a list of maps to merge, got \(describe(value))")
                }
                continue
            }
            guard case .scalar(let s) = key, !isNull(key) else {
                throw fail(key, kp.isEmpty ? "(top level)" : kp, "keys must be strings, got \(describe(key))")
            }
            let name = s.string
            if let first = seen[name] {
                throw fail(key, path(name), "duplicate key (first on line \(line(first)))")
            }
            seen[name] = key
            explicit.append((name, key, value))
        }
        var result = explicit
        for group in merged {
            for entry in group where seen[entry.0] == nil {
                seen[entry.0] = entry.1
                result.append(entry)
            }
        }
        return result
    }

    func list(_ n: Node, _ kp: String, itemHint: String) throws -> [Node] {
        guard case .sequence(let seq) = n else {
            throw fail(n, kp, "expected \(itemHint), got \(describe(n))")
        }
        return Array(seq)
    }

    func stringList(_ n: Node, _ kp: String) throws -> [String] {
        try list(n, kp, itemHint: "a list of strings").enumerated().map { i, item in
            try string(item, "\(kp)[\(i)]")
        }
    }

    /// Any non-null scalar, as written (so `tag: 1.0` is "1.0").
    func string(_ n: Node, _ kp: String) throws -> String {
        guard case .scalar(let s) = n, !isNull(n) else {
            throw fail(n, kp, "expected a string, got \(describe(n))")
        }
        return s.string
    }

    func bool(_ n: Node, _ kp: String) throws -> Bool {
        guard tagName(n) == .bool, let b = n.bool else {
            throw fail(n, kp, "expected true or false, got \(describe(n))")
        }
        return b
    }

    /// A non-negative decimal integer up to `max`.
    func integer(_ n: Node, _ kp: String, max: Int) throws -> Int {
        guard case .scalar(let s) = n, tagName(n) == .int || tagName(n) == .str,
              !s.string.isEmpty, s.string.count <= 18, s.string.utf8.allSatisfy({ (48...57).contains($0) }),
              let v = Int(s.string), v <= max else {
            throw fail(n, kp, "expected an integer from 0 to \(max), got \(describe(n))")
        }
        return v
    }

    func tagName(_ n: Node) -> Tag.Name { Tag.Name(rawValue: n.tag.description) }

    func isNull(_ n: Node) -> Bool {
        if case .scalar = n { return tagName(n) == .null }
        return false
    }

    func describe(_ n: Node) -> String {
        switch n {
        case .mapping: return "a map"
        case .sequence: return "a list"
        case .scalar(let s):
            let shown = s.string.count > 40 ? String(s.string.prefix(40)) + "…" : s.string
            switch tagName(n) {
            case .null: return "null"
            case .bool: return "a boolean (\(shown))"
            case .int: return "an integer (\(shown))"
            case .float: return "a number (\(shown))"
            default: return "a string (\(quoted(shown)))"
            }
        }
    }

    func line(_ n: Node) -> Int { n.mark?.line ?? 1 }

    func location(_ n: Node) -> SourceLocation {
        SourceLocation(file: file, line: n.mark?.line ?? 1, column: n.mark?.column ?? 1)
    }

    func fail(_ n: Node, _ kp: String, _ what: String) -> BuildError {
        BuildError("\(file):\(line(n)): \(kp): \(what)")
    }

    func quoted(_ s: String) -> String {
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    /// "; did you mean `X`?" or " (expected …)".
    func hint(_ s: String, _ candidates: [String], expected: String?) -> String {
        if let m = didYouMean(s, candidates) { return "; did you mean `\(m)`?" }
        return " (expected " + (expected ?? "one of " + candidates.map { "`\($0)`" }.joined(separator: ", ")) + ")"
    }

    func didYouMean(_ s: String, _ candidates: [String]) -> String? {
        SpecPaths.didYouMean(s, candidates)
    }

    func yamlError(_ e: YamlError) -> BuildError {
        var lineNo = 1
        var what = "\(e)"
        switch e {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            lineNo = mark.line
            what = problem
            if let context { what += " (\(context.text) on line \(context.mark.line))" }
        case .reader(let problem, let offset, _, let yaml):
            what = problem
            if let offset {
                lineNo = 1 + yaml.prefix(offset).filter { $0 == "\n" }.count
            }
        default:
            break
        }
        return BuildError("\(file):\(lineNo): invalid YAML: \(what)")
    }
}
