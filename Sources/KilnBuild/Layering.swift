/// How a build's files are split into layers (dockerTools' buildLayeredImage).
public enum LayeringStrategy: Sendable, Hashable {
    /// Everything in one layer.
    case single
    /// The largest groups of files get layers of their own: files are grouped by the
    /// set of content items that provide them (a closure's own files, the libraries
    /// several closures share, …), the largest groups first (nixpkgs' auto-layer idea).
    case auto
    /// The same groups ranked by how many content items share them, most shared first
    /// (the classic popularity contest: widely used libraries low in the stack).
    case popularity
    /// Paths matching each list of globs in its own layer, in order; the rest after them.
    case explicit([[String]])
    /// Each Debian package its own layer; for the other contents it acts as `auto`.
    case packages
}

/// The layers of one build, bottom to top, as file trees.
public struct LayerPlan: Sendable {
    public var layers: [FileTree]
}

extension FileTree {
    /// Splits the tree into at most `budget` layers (budget ≥ 1).
    ///
    /// - Parameters:
    ///   - provenance: for each path, the indices of the content items that provide it.
    ///     Paths no item provides (users, extraCommands, generated files) go to a last
    ///     "customisation" layer of their own, as dockerTools does.
    ///
    /// Directories with something below them are not placed themselves: each layer gets
    /// the ancestors of what it holds, with the same metadata, so it unpacks alone and
    /// every layer agrees on them. The same inputs always give the same split.
    public func split(provenance: [String: Set<Int>], strategy: LayeringStrategy, budget: Int) throws -> LayerPlan {
        precondition(budget >= 1)
        if strategy == .single || budget == 1 { return LayerPlan(layers: [self]) }
        let ordered = FileTree.sortedPaths(nodes.keys)
        // Directories with descendants are ancestors, not members.
        var hasChildren = Set<String>()
        for p in ordered {
            if let slash = p.lastIndex(of: "/") { hasChildren.insert(String(p[..<slash])) }
        }
        let members = ordered.filter { !(nodes[$0]!.isDirectory && hasChildren.contains($0)) }

        var groups: [[String]] = []
        var custom: [String] = []
        switch strategy {
        case .single:
            return LayerPlan(layers: [self])
        case .explicit(let globLists):
            let globs = globLists.map { $0.map(Glob.init) }
            var buckets = [[String]](repeating: [], count: globs.count)
            var rest: [String] = []
            for p in members {
                if let i = globs.firstIndex(where: { g in g.contains { $0.matches(p) } }) { buckets[i].append(p) } else { rest.append(p) }
            }
            groups = buckets.filter { !$0.isEmpty } + (rest.isEmpty ? [] : [rest])
            guard groups.count <= budget else {
                throw BuildError("layers: \(groups.count) layers are needed but maxLayers leaves room for \(budget)")
            }
            return LayerPlan(layers: groups.map(subtree))
        case .auto, .packages, .popularity:
            var byKey: [[Int]: [String]] = [:]
            for p in members {
                let key = (provenance[p] ?? []).sorted()
                if key.isEmpty { custom.append(p) } else { byKey[key, default: []].append(p) }
            }
            struct Group { var key: [Int]; var paths: [String]; var size: Int64 }
            var all = byKey.map { key, paths in
                Group(key: key, paths: paths, size: paths.reduce(0) { $0 + size(of: $1) })
            }
            func keyOrder(_ a: Group, _ b: Group) -> Bool { a.key.lexicographicallyPrecedes(b.key) }
            switch strategy {
            case .popularity:
                all.sort { a, b in
                    a.key.count != b.key.count ? a.key.count > b.key.count
                        : a.size != b.size ? a.size > b.size : keyOrder(a, b)
                }
            default:
                all.sort { a, b in a.size != b.size ? a.size > b.size : keyOrder(a, b) }
            }
            let room = budget - (custom.isEmpty ? 0 : 1)
            var own: [Group]
            var rest: [String] = []
            if room <= 0 {
                own = []
                rest = all.flatMap(\.paths)
            } else if all.count <= room {
                own = all
            } else {
                own = Array(all.prefix(room - 1))
                rest = all.dropFirst(room - 1).flatMap(\.paths)
            }
            // Bottom to top: most shared first (they change least), then by key.
            own.sort { a, b in a.key.count != b.key.count ? a.key.count > b.key.count : keyOrder(a, b) }
            groups = own.map(\.paths)
            if !rest.isEmpty { groups.append(FileTree.sortedPaths(rest)) }
            if !custom.isEmpty {
                if groups.count < budget { groups.append(custom) } else { groups[groups.count - 1] += custom }
            }
            return LayerPlan(layers: groups.map(subtree))
        }
    }

    private func size(of path: String) -> Int64 {
        if case .file(let src) = nodes[path]?.content { return src.size }
        return 0
    }

    /// The given paths plus their ancestors, with this tree's metadata.
    func subtree(_ paths: [String]) -> FileTree {
        var t = FileTree()
        for p in FileTree.sortedPaths(paths) {
            var ancestors: [String] = []
            var cur = Substring(p)
            while let slash = cur.lastIndex(of: "/") {
                cur = cur[..<slash]
                ancestors.append(String(cur))
            }
            for a in ancestors.reversed() where t.nodes[a] == nil {
                if let n = nodes[a] { t.insert(a, n) }
            }
            t.insert(p, nodes[p]!)
        }
        return t
    }
}
