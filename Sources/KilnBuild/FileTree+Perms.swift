#if canImport(Glibc)
import Glibc
#endif

extension FileTree {
    /// Applies overrides in order (a later one wins) to the tar headers' metadata;
    /// nothing on disk changes, so no root is needed (nix2container's `perms`).
    /// Returns the patterns that matched nothing, which are almost always typos.
    public mutating func apply(_ overrides: [Spec.Permission]) -> [Spec.Permission] {
        var unmatched: [Spec.Permission] = []
        let all = paths
        for o in overrides {
            let pattern = Glob(o.path)
            var hit = false
            for p in all where pattern.matches(p) {
                hit = true
                update(p) { n in
                    if let m = o.mode { n.mode = m }
                    if let u = o.uid { n.uid = u }
                    if let g = o.gid { n.gid = g }
                }
            }
            if !hit { unmatched.append(o) }
        }
        return unmatched
    }
}

/// Shell-style globs over image paths: `*`, `?` and `[…]` within one component
/// (fnmatch), `**` for any number of components (at least one when it ends the pattern).
public struct Glob: Sendable {
    let parts: [String]

    public init(_ pattern: String) {
        parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init).filter { $0 != "." }
    }

    /// `path` is relative to the image root, without a leading `/`.
    public func matches(_ path: String) -> Bool {
        let comps = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        return match(parts[...], comps[...])
    }

    private func match(_ p: ArraySlice<String>, _ c: ArraySlice<String>) -> Bool {
        guard let first = p.first else { return c.isEmpty }
        if first == "**" {
            let rest = p.dropFirst()
            // A trailing `**` means "everything below" (as in .gitignore): at least one
            // component, so `/data/**` does not touch `/data` itself.
            if rest.isEmpty { return !c.isEmpty }
            var i = c.startIndex
            while true {
                if match(rest, c[i...]) { return true }
                if i == c.endIndex { return false }
                i += 1
            }
        }
        guard let comp = c.first, fnmatch(first, comp, FNM_PERIOD) == 0 else { return false }
        return match(p.dropFirst(), c.dropFirst())
    }
}
