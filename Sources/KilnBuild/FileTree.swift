#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// Where a regular file's bytes come from. Nothing is read until the layer is written.
public enum FileSource: Sendable, Equatable {
    /// A file on the host (or in Kiln's staging area). `identity` is its device and
    /// inode when it has several links, so hard links can be kept in the layer.
    case host(path: String, size: Int64, identity: FileIdentity?)
    /// Bytes Kiln generates (for instance `/etc/passwd`).
    case inline([UInt8])

    public var size: Int64 {
        switch self {
        case .host(_, let size, _): return size
        case .inline(let b): return Int64(b.count)
        }
    }
}

public struct FileIdentity: Sendable, Hashable {
    public var device: UInt64
    public var inode: UInt64
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// One node of a layer's file tree: what it is plus the metadata the tar header carries.
public struct FileNode: Sendable, Equatable {
    public enum Content: Sendable, Equatable {
        case directory
        case file(FileSource)
        case symlink(String)
        /// A hard link to another path of the same layer (made by `FileTree.entries`).
        case hardlink(String)
        case charDevice(major: UInt32, minor: UInt32)
        case blockDevice(major: UInt32, minor: UInt32)
        case fifo
    }

    public var content: Content
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    public var xattrs: [String: [UInt8]]
    /// The node's own modification time, kept from its source (a Debian package's
    /// data.tar, as dpkg keeps it); nil means the layer's `mtime`.
    public var mtime: Int64? = nil

    public init(_ content: Content, mode: UInt32, uid: Int = 0, gid: Int = 0, xattrs: [String: [UInt8]] = [:]) {
        self.content = content
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.xattrs = xattrs
    }

    public var isDirectory: Bool { content == .directory }

    public static func directory(mode: UInt32 = 0o755) -> FileNode { FileNode(.directory, mode: mode) }
}

/// A layer's contents as data, before any byte is read: paths (relative to the
/// image root, no leading or trailing `/`) mapped to nodes. Merging contents,
/// `perms`, `users` and hard-link detection all operate on this value.
public struct FileTree: Sendable, Equatable {
    public internal(set) var nodes: [String: FileNode] = [:]
    /// Directories that exist only because something below them was inserted; merging
    /// a tree does not let them overwrite the metadata of a directory already there.
    public internal(set) var implicitDirectories: Set<String> = []

    public init() {}

    public subscript(path: String) -> FileNode? { nodes[path] }

    public var paths: [String] { Array(nodes.keys) }

    /// Inserts `node` at `path` with later-wins semantics: a directory over a directory
    /// keeps the children and takes the new metadata; anything else replaces what was
    /// there, subtree included. Missing parents are created as 0755 directories, and a
    /// non-directory parent is replaced by a directory.
    public mutating func insert(_ path: String, _ node: FileNode) {
        insert(normalized: FileTree.normalize(path), node)
    }

    /// `insert` for a path already in normal form (no leading, trailing or double `/`,
    /// no `.` or `..`), such as one built from directory entries: skips normalising.
    mutating func insert(normalized p: String, _ node: FileNode) {
        precondition(!p.isEmpty, "cannot insert the root")
        ensureParents(of: p)
        if let old = nodes[p] {
            if old.isDirectory && !node.isDirectory { removeSubtree(p) }
        }
        nodes[p] = node
        implicitDirectories.remove(p)
    }

    /// Merges `other` over this tree in order, later wins, as if its nodes were
    /// inserted one by one (parents first); its implicit directories only fill gaps.
    public mutating func merge(_ other: FileTree) {
        if nodes.isEmpty {
            self = other
            return
        }
        for p in FileTree.sortedPaths(other.nodes.keys) {
            if other.implicitDirectories.contains(p), nodes[p]?.isDirectory == true { continue }
            insert(p, other.nodes[p]!)
            if other.implicitDirectories.contains(p) { implicitDirectories.insert(p) }
        }
    }

    /// Removes `path` and everything below it.
    public mutating func removeSubtree(_ path: String) {
        let p = FileTree.normalize(path)
        nodes[p] = nil
        implicitDirectories.remove(p)
        let prefix = p + "/"
        for k in nodes.keys where k.hasPrefix(prefix) {
            nodes[k] = nil
            implicitDirectories.remove(k)
        }
    }

    public mutating func update(_ path: String, _ body: (inout FileNode) -> Void) {
        guard var n = nodes[path] else { return }
        body(&n)
        nodes[path] = n
    }

    private mutating func ensureParents(of p: String) {
        var idx = p.startIndex
        while let slash = p[idx...].firstIndex(of: "/") {
            let parent = String(p[..<slash])
            if let existing = nodes[parent] {
                if !existing.isDirectory {
                    nodes[parent] = .directory()
                    implicitDirectories.insert(parent)
                }
            } else {
                nodes[parent] = .directory()
                implicitDirectories.insert(parent)
            }
            idx = p.index(after: slash)
        }
    }

    /// `/a//b/./c/` → `a/b/c`. `..` is resolved lexically and never climbs above the root;
    /// callers that must reject escapes check with `FileTree.escapesRoot` first.
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { _ = parts.popLast(); continue }
            parts.append(c)
        }
        return parts.joined(separator: "/")
    }

    /// True when a relative path climbs above its starting directory (`../x`, `a/../../x`).
    public static func escapesRoot(_ path: String) -> Bool {
        var depth = 0
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." { depth -= 1; if depth < 0 { return true } } else { depth += 1 }
        }
        return false
    }
}
