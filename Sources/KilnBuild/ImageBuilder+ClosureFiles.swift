import KilnArchive

extension ImageBuilder {
    /// The files of a `closure:` or `swift:` item at their host paths (normal form, no
    /// leading `/`), for the SBOM to name the host packages that own them (SBOM.swift,
    /// `HostPackages`); nil for the other kinds of item.
    ///
    /// A closure without `target` places every file at the path it was found under, so
    /// the item's paths are the host's. With a `target`, `isolate: true` (files below
    /// `/opt/kiln/…`, a generated launcher) or a `swift:` product (the executable from
    /// `.build`, its libraries, its resource bundles), the image paths differ from the
    /// host's: the host path each file's bytes are read from is what dpkg knows.
    static func closureFiles(_ item: ContentItem, tree: FileTree) -> [String]? {
        switch item.kind {
        case .closure where item.target == nil && !item.isolate:
            return tree.paths.filter { !(tree[$0]?.isDirectory ?? true) }.sorted()
        case .closure, .swift:
            var paths = Set<String>()
            for node in tree.nodes.values {
                if case .file(.host(let path, _, _)) = node.content { paths.insert(FileTree.normalize(path)) }
            }
            return paths.sorted()
        default:
            return nil
        }
    }
}
