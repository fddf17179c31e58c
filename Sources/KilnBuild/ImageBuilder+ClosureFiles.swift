import KilnArchive

extension ImageBuilder {
    /// The files of a `closure:` or `swift:` item at their host paths (normal form, no
    /// leading `/`), for the SBOM to name the packages that own them (SBOM.swift,
    /// `HostPackages`); nil for the other kinds of item. For a platform built from its
    /// sysroot, the paths are inside the sysroot, whose dpkg database names the owners.
    ///
    /// A closure without `target` places every file at the path it was found under, so
    /// the item's paths are the host's. With a `target`, `isolate: true` (files below
    /// `/opt/kiln/…`, a generated launcher) or a `swift:` product (the executable from
    /// `.build`, its libraries, its resource bundles), the image paths differ from the
    /// host's: the host path each file's bytes are read from is what dpkg knows.
    func hostFilesForSBOM(_ item: ContentItem, tree: FileTree) -> [String]? {
        switch item.kind {
        case .closure where item.target == nil && !item.isolate:
            return tree.paths.filter { !(tree[$0]?.isDirectory ?? true) }.sorted()
        case .closure, .swift:
            // Closures of a sysroot's platform are read below it (`platformClosureResolver`).
            let root = item.kind == .closure ? (try? platformClosureResolver())?.prefix ?? "" : ""
            var paths = Set<String>()
            for node in tree.nodes.values {
                guard case .file(.host(let path, _, _)) = node.content else { continue }
                paths.insert(FileTree.normalize(!root.isEmpty && path.hasPrefix(root + "/") ? String(path.dropFirst(root.count)) : path))
            }
            return paths.sorted()
        default:
            return nil
        }
    }
}
