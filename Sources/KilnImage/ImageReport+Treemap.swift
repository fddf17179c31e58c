/// The report's treemap: the image's bytes by layer, then by origin (when the
/// provenance is known), then by directory, laid out as squarified rectangles (Bruls,
/// Huizing and van Wijk, "Squarified Treemaps", 2000) in Swift, so the page draws with
/// no script. A page for 100k files stays small and quick: files under a size threshold
/// (a fraction of the image) are gathered per directory into one "N small files"
/// rectangle, directories under it become one rectangle, and chains of single
/// directories are joined (`usr/lib/x86_64-linux-gnu`).
extension ImageReport {
    final class TreeNode {
        var name: String
        var size: Int64
        var children: [TreeNode] = []
        /// The full path or description, for the tooltip.
        var title: String
        var layer: Int
        /// layer, origin, directory, file, aggregate.
        var kind: String
        init(name: String, size: Int64, title: String, layer: Int, kind: String) {
            self.name = name
            self.size = size
            self.title = title
            self.layer = layer
            self.kind = kind
        }
    }

    /// One rectangle to draw, in pixels.
    struct Rect: Equatable {
        var x: Double, y: Double, w: Double, h: Double
        var depth: Int
        var layer: Int
        var label: String?
        var title: String
        var kind: String
        /// A container's label sits in a strip along its top.
        var isContainer: Bool
    }

    /// The tree: layers, origins, directories, files.
    func treemapTree(maxNodes: Int = 2500) -> TreeNode {
        let total = max(totalBytes, 1)
        let threshold = max(total / Int64(maxNodes), 1)
        let root = TreeNode(name: "image", size: 0, title: reference, layer: -1, kind: "image")
        for l in layers where l.bytes > 0 {
            let ln = TreeNode(name: l.shortName, size: l.bytes,
                              title: "layer \(l.index + 1) \(l.shortName)" + (l.provenance.map { " — " + $0.name } ?? l.createdBy.map { " — " + $0 } ?? ""),
                              layer: l.index, kind: "layer")
            // Files by origin, then the directory tree of each origin's files.
            var byOrigin: [String: [ImageFiles.Entry]] = [:]
            let prov = l.provenance
            let index = prov?.originIndex() ?? [:]
            for e in files.layers[l.index] where e.kind == .file && e.size > 0 {
                let origin = prov?.origin(of: e.path, index: index) ?? ""
                byOrigin[origin, default: []].append(e)
            }
            for origin in byOrigin.keys.sorted() {
                let dir = Self.directoryTree(byOrigin[origin]!, layer: l.index, threshold: threshold)
                if origin.isEmpty {
                    ln.children += dir.children
                } else {
                    let on = TreeNode(name: origin, size: dir.size, title: "\(l.shortName): \(origin)", layer: l.index, kind: "origin")
                    on.children = dir.children
                    ln.children.append(on)
                }
            }
            root.children.append(ln)
            root.size += ln.size
        }
        return root
    }

    /// The directory tree of `entries` with small files gathered and single chains joined.
    static func directoryTree(_ entries: [ImageFiles.Entry], layer: Int, threshold: Int64) -> TreeNode {
        final class Dir {
            var dirs: [String: Dir] = [:]
            var files: [(String, Int64)] = []
            var size: Int64 = 0
            var count = 0
        }
        let top = Dir()
        for e in entries {
            var d = top
            let comps = e.path.split(separator: "/").map(String.init)
            top.size += e.size
            top.count += 1
            for c in comps.dropLast() {
                let next = d.dirs[c] ?? Dir()
                d.dirs[c] = next
                next.size += e.size
                next.count += 1
                d = next
            }
            d.files.append((comps.last ?? "", e.size))
        }
        func convert(_ d: Dir, name: String, path: String) -> TreeNode {
            let node = TreeNode(name: name, size: d.size, title: "/" + path, layer: layer, kind: "directory")
            if d.size < threshold && !path.isEmpty {
                node.name = name + "/"
                node.title = "/\(path)/ — \(d.count) file\(d.count == 1 ? "" : "s")"
                node.kind = "aggregate"
                return node
            }
            // Join a chain of directories with nothing else in them.
            if !path.isEmpty, d.files.isEmpty, d.dirs.count == 1, let (n, only) = d.dirs.first {
                let joined = convert(only, name: name + "/" + n, path: path + "/" + n)
                return joined
            }
            var small: (count: Int, size: Int64) = (0, 0)
            for n in d.dirs.keys.sorted() {
                node.children.append(convert(d.dirs[n]!, name: n, path: path.isEmpty ? n : path + "/" + n))
            }
            for (n, size) in d.files.sorted(by: { $0.0 < $1.0 }) {
                if size < threshold {
                    small.count += 1
                    small.size += size
                } else {
                    node.children.append(TreeNode(name: n, size: size, title: "/" + (path.isEmpty ? n : path + "/" + n),
                                                  layer: layer, kind: "file"))
                }
            }
            if small.count > 0 {
                // A directory of small files only is drawn as one box itself.
                if node.children.isEmpty && !path.isEmpty {
                    node.name = name + "/"
                    node.title = "/\(path)/ — \(small.count) small file\(small.count == 1 ? "" : "s")"
                    node.kind = "aggregate"
                    return node
                }
                node.children.append(TreeNode(name: "\(small.count) small file\(small.count == 1 ? "" : "s")", size: small.size,
                                              title: "/\(path)\(path.isEmpty ? "" : "/") — \(small.count) files under the threshold",
                                              layer: layer, kind: "aggregate"))
            }
            return node
        }
        return convert(top, name: "/", path: "")
    }

    /// Lays the tree out in a `width`×`height` box, outermost rectangles first.
    static func layout(_ root: TreeNode, width: Double, height: Double) -> [Rect] {
        var out: [Rect] = []
        func place(_ nodes: [TreeNode], in box: (x: Double, y: Double, w: Double, h: Double), depth: Int) {
            let items = nodes.filter { $0.size > 0 }.sorted { a, b in a.size != b.size ? a.size > b.size : a.name < b.name }
            guard !items.isEmpty, box.w >= 1, box.h >= 1 else { return }
            let total = Double(items.reduce(0) { $0 + $1.size })
            let scale = box.w * box.h / total
            for (node, r) in zip(items, squarify(items.map { Double($0.size) * scale }, box)) {
                guard r.w >= 1, r.h >= 1 else { continue }
                let isContainer = !node.children.isEmpty
                let strip = isContainer && r.h >= 34 && r.w >= 40 ? 16.0 : 0
                let labelled = strip > 0 || (!isContainer && r.w >= 36 && r.h >= 14)
                out.append(Rect(x: r.x, y: r.y, w: r.w, h: r.h, depth: depth, layer: node.layer,
                                label: labelled ? node.name : nil, title: node.title + " — " + formatBytes(node.size),
                                kind: node.kind, isContainer: isContainer))
                if isContainer, r.w >= 6, r.h >= 6 + strip {
                    place(node.children, in: (r.x + 2, r.y + strip + 1, r.w - 4, r.h - strip - 3), depth: depth + 1)
                }
            }
        }
        place(root.children, in: (0, 0, width, height), depth: 0)
        return out
    }

    /// Squarified rectangles for `areas` (sorted largest first) filling `box`.
    static func squarify(_ areas: [Double], _ box: (x: Double, y: Double, w: Double, h: Double)) -> [(x: Double, y: Double, w: Double, h: Double)] {
        var out: [(x: Double, y: Double, w: Double, h: Double)] = []
        var rect = box
        var row: [Double] = []
        func worst(_ row: [Double], _ side: Double) -> Double {
            let s = row.reduce(0, +)
            guard s > 0, let mx = row.max(), let mn = row.min(), mn > 0 else { return .infinity }
            return max(side * side * mx / (s * s), s * s / (side * side * mn))
        }
        func flush() {
            let s = row.reduce(0, +)
            // What rounding leaves of the box may be empty: nothing to draw there.
            guard s > 0, rect.w > 0, rect.h > 0 else {
                out += row.map { _ in (rect.x, rect.y, 0, 0) }
                row = []
                return
            }
            if rect.w >= rect.h {
                // A column on the left.
                let w = min(s / rect.h, rect.w)
                var y = rect.y
                for a in row {
                    let h = a / w
                    out.append((rect.x, y, w, h))
                    y += h
                }
                rect.x += w
                rect.w -= w
            } else {
                // A row along the top.
                let h = min(s / rect.w, rect.h)
                var x = rect.x
                for a in row {
                    let w = a / h
                    out.append((x, rect.y, w, h))
                    x += w
                }
                rect.y += h
                rect.h -= h
            }
            row = []
        }
        var i = 0
        while i < areas.count {
            let side = max(min(rect.w, rect.h), 1e-9)
            if row.isEmpty || worst(row + [areas[i]], side) <= worst(row, side) {
                row.append(areas[i])
                i += 1
            } else {
                flush()
            }
        }
        flush()
        return out
    }
}

/// `1.5 MB` (decimal units as `docker images` shows them), with no locale or
/// floating-point formatting, so the page's bytes never vary.
func formatBytes(_ n: Int64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"]
    var unit = 0
    var scaled = n * 10
    while scaled >= 10_000 && unit < units.count - 1 {
        scaled = (scaled + 500) / 1000
        unit += 1
    }
    if unit == 0 { return "\(n) B" }
    return "\(scaled / 10).\(scaled % 10) \(units[unit])"
}
