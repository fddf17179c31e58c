import Yams

/// `contents`, and the host and image paths it names.
extension SpecParser {
    func parseContents(_ n: Node) throws -> [ContentItem] {
        try list(n, "contents", itemHint: "a list of paths or of maps with `source`, `archive`, `closure` or `swift`")
            .enumerated().map { i, item in
                let kp = "contents[\(i)]"
                switch item {
                case .scalar where !isNull(item):
                    return ContentItem(kind: .directory, path: try hostPath(item, kp), location: location(item))
                case .mapping:
                    let f = try fields(item, at: kp, allowed: ["source", "archive", "closure", "swift", "target", "onConflict",
                                                               "isolate", "package", "static"])
                    let given: [(String, ContentItem.Kind)] = [("source", .source), ("archive", .archive), ("closure", .closure),
                                                               ("swift", .swift)]
                        .filter { f.entries[$0.0] != nil }
                    guard let first = given.first else {
                        throw fail(item, kp, "expected one of `source`, `archive` or `closure`, or `swift` (a SwiftPM product)")
                    }
                    let (key, kind) = first
                    if given.count > 1 {
                        let second = given[1].0
                        throw fail(f.entries[second]!.key, "\(kp).\(second)",
                                   "`\(key)` and `\(second)` cannot be used together; make them two items")
                    }
                    guard let pathNode = f[key] else {
                        throw fail(f.entries[key]!.key, "\(kp).\(key)", kind == .swift ? "missing product name" : "missing path")
                    }
                    let target = try f["target"].map { try imagePath($0, "\(kp).target") }
                    let onConflict = try f["onConflict"].map { try conflictPolicy($0, "\(kp).onConflict") }
                    let isolate = try f["isolate"].map { try bool($0, "\(kp).isolate") } ?? false
                    if isolate, kind != .closure, let n = f["isolate"] {
                        throw fail(n, "\(kp).isolate", "only `closure:` items can be isolated")
                    }
                    for k in ["package", "static"] where kind != .swift {
                        if let e = f.entries[k] { throw fail(e.key, "\(kp).\(k)", "only `swift:` items take `\(k)`") }
                    }
                    if kind == .swift {
                        let product = try swiftProduct(pathNode, "\(kp).swift")
                        if let t = target, t.hasSuffix("/") || t == "/", let n = f["target"] {
                            throw fail(n, "\(kp).target", "`\(t)` names a directory; give the executable's path in the image")
                        }
                        let package = try f["package"].map { try hostPath($0, "\(kp).package") } ?? directory
                        let isStatic = try f["static"].map { try bool($0, "\(kp).static") } ?? false
                        return ContentItem(kind: .swift, path: package, target: target, location: location(item),
                                           onConflict: onConflict,
                                           swift: SwiftProductSpec(product: product, staticStdlib: isStatic))
                    }
                    let path = try hostPath(pathNode, "\(kp).\(key)")
                    return ContentItem(kind: kind, path: path, target: target, location: location(item),
                                       onConflict: onConflict, isolate: isolate)
                default:
                    throw fail(item, kp, "expected a path or a map with `source`, `archive`, `closure` or `swift`, got \(describe(item))")
                }
            }
    }

    /// A SwiftPM product name as `swift build --product` takes it and as the executable is
    /// named: letters, digits, `_`, `-`, `.` and `+`, not starting with `-` or `.`.
    func swiftProduct(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+".unicodeScalars)
        guard !s.isEmpty, !s.hasPrefix("-"), !s.hasPrefix("."), s.unicodeScalars.allSatisfy(allowed.contains) else {
            throw fail(n, kp, "`\(s)` is not a product name (letters, digits, `_`, `-`, `.` and `+`, not starting with `-` or `.`)")
        }
        return s
    }

    /// `onConflict`: `error`, `replace` or `keep`.
    func conflictPolicy(_ n: Node, _ kp: String) throws -> ConflictPolicy {
        let s = try string(n, kp)
        guard let p = ConflictPolicy(rawValue: s) else {
            throw fail(n, kp, "unknown value `\(s)`; expected one of \(ConflictPolicy.allCases.map { "`\($0.rawValue)`" }.joined(separator: ", "))")
        }
        return p
    }

    /// A host path, resolved against the spec's directory.
    func hostPath(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard !s.isEmpty else { throw fail(n, kp, "empty path") }
        guard !s.utf8.contains(0) else { throw fail(n, kp, "path contains a NUL character") }
        return SpecPaths.clean(s.hasPrefix("/") ? s : directory + "/" + s)
    }

    /// A path inside the image: absolute, cleaned, not escaping the root. A trailing `/` is kept.
    func imagePath(_ n: Node, _ kp: String) throws -> String {
        let s = try string(n, kp)
        guard s.hasPrefix("/") else {
            throw fail(n, kp, "`\(s)` must be an absolute path inside the image (starting with `/`)")
        }
        guard !s.utf8.contains(0) else { throw fail(n, kp, "path contains a NUL character") }
        var parts: [Substring] = []
        for p in s.split(separator: "/") {
            switch p {
            case ".": continue
            case "..":
                guard !parts.isEmpty else { throw fail(n, kp, "`\(s)` escapes the image root") }
                parts.removeLast()
            default: parts.append(p)
            }
        }
        let cleaned = "/" + parts.joined(separator: "/")
        return s.hasSuffix("/") && cleaned != "/" ? cleaned + "/" : cleaned
    }
}
