import KilnArchive
import KilnOCI

/// The files of an image layer by layer, read from each layer's tar in one streaming
/// pass (nothing spooled): what `kiln inspect --files` lists and `kiln report` measures.
/// Paths are entry names made relative and cleaned (`./a//b/` is `a/b`), applied
/// lexically, as the OCI image-spec's changesets are written (layer.md): `.wh.NAME`
/// deletes NAME and what is below it from the layers below, `DIR/.wh..wh..opq` every
/// child of DIR from the layers below. Unlike `Rootfs` (used to flatten and export),
/// entries are not placed through symlinks of lower layers; for a report that is what
/// the tars say.
public struct ImageFiles: Sendable {
    public enum Kind: String, Sendable, Codable { case file, hardlink, symlink, device, fifo, directory }

    /// One entry of one layer.
    public struct Entry: Sendable, Codable, Equatable {
        public var path: String
        public var kind: Kind
        public var size: Int64
        public var mode: UInt32
        public var uid: Int
        public var gid: Int
        /// A symlink's or hard link's target.
        public var target: String?
        /// A regular file's content digest (when the listing hashed).
        public var digest: Digest?
        /// The layer (0-based, bottom first).
        public var layer: Int
    }

    /// A file shipped in a layer and not in the image: replaced or deleted by `by`.
    public struct Waste: Sendable, Codable, Equatable {
        public enum Why: String, Sendable, Codable { case overwritten, removed }
        public var entry: Entry
        public var by: Int
        public var why: Why
        /// Overwritten by identical bytes.
        public var identical: Bool
    }

    /// Every entry of each layer (whiteouts excluded), in tar order.
    public var layers: [[Entry]]
    /// What the image holds: one entry per path, in byte order of paths.
    public var visible: [Entry]
    /// Regular files shipped for nothing, bottom layer first.
    public var wasted: [Waste]

    /// Reads every layer of `image` (their blobs must be readable: a registry image's
    /// fetched). With `hashing`, regular files' digests are computed on the way.
    public static func read(_ image: SourceImage, hashing: Bool, limits: RootfsLimits = RootfsLimits()) throws -> ImageFiles {
        var layers: [[Entry]] = []
        var whiteouts: [[String]] = []
        var opaque: [[String]] = []
        var total = 0
        for (i, layer) in image.layers.enumerated() {
            let what = "layer \(i + 1) of \(image.layers.count) (\(layer.descriptor.digest))"
            let listed = try list(layer, index: i, hashing: hashing, limits: limits, what: what)
            total += listed.entries.count
            guard total <= limits.maxEntries else {
                throw ImageError.invalid("\(what): more than \(limits.maxEntries) entries in the image (the limit)")
            }
            layers.append(listed.entries)
            whiteouts.append(listed.whiteouts)
            opaque.append(listed.opaque)
        }
        return apply(layers: layers, whiteouts: whiteouts, opaque: opaque)
    }

    /// One layer's entries, whiteouts and opaque directories, its blob checked against
    /// its descriptor and diffID.
    static func list(_ layer: any StoredLayer, index: Int, hashing: Bool, limits: RootfsLimits,
                     what: String) throws -> (entries: [Entry], whiteouts: [String], opaque: [String]) {
        let blob = HashingReader(try layer.openBlob())
        let plain: ByteReader
        do { plain = try Compression.decompressing(blob, limit: limits.maxLayerSize) } catch {
            throw ImageError.invalid("\(what): \(error)")
        }
        let hashed = HashingReader(plain)
        let tar = TarReader(hashed, maxEntrySize: limits.maxLayerSize)
        // One buffer for every file's bytes (most are small: no allocation per file).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var entries: [Entry] = []
        var whiteouts: [String] = []
        var opaque: [String] = []
        do {
            while let h = try tar.next() {
                let path = clean(h.name)
                let slash = path.lastIndex(of: "/")
                let name = slash.map { path[path.index(after: $0)...] } ?? path[...]
                if name.hasPrefix(".wh.") {
                    let parent = slash.map { String(path[..<$0]) } ?? ""
                    if name == ".wh..wh..opq" {
                        opaque.append(parent)
                    } else {
                        whiteouts.append(parent.isEmpty ? String(name.dropFirst(4)) : parent + "/" + name.dropFirst(4))
                    }
                    continue
                }
                if path.isEmpty { continue }
                let kind: Kind
                switch h.kind {
                case .regular: kind = .file
                case .hardlink: kind = .hardlink
                case .symlink: kind = .symlink
                case .charDevice, .blockDevice: kind = .device
                case .fifo: kind = .fifo
                case .directory: kind = .directory
                }
                var digest: Digest?
                if hashing, kind == .file {
                    var hasher = SHA256Hasher()
                    while true {
                        let n = try tar.readBody(into: buffer)
                        if n == 0 { break }
                        hasher.update(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                    }
                    digest = hasher.finalize()
                }
                entries.append(Entry(path: path, kind: kind, size: kind == .file ? h.size : 0, mode: h.mode & 0o7777,
                                     uid: h.uid, gid: h.gid,
                                     target: kind == .symlink || kind == .hardlink ? h.linkName : nil,
                                     digest: digest, layer: index))
            }
            try tar.skipTrailingData()
            try hashed.drain()
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError.invalid("\(what): \(error)")
        }
        try layer.verify(blob: blob, uncompressed: hashed.digest, what: what)
        return (entries, whiteouts, opaque)
    }

    /// A tar entry name as a relative path without `.` or empty components.
    static func clean(_ name: String) -> String {
        // The usual name (`usr/bin/ls`, `usr/bin/`) needs no splitting.
        var plain = Substring(name)
        if plain.hasSuffix("/") { plain = plain.dropLast() }
        if !plain.hasPrefix("/"), !plain.hasPrefix("./"), plain != ".", !plain.contains("//"), !plain.contains("/./"),
           !plain.hasSuffix("/.") {
            return String(plain)
        }
        return name.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }.joined(separator: "/")
    }

    /// Applies the layers in order, recording what each one hides of those below.
    static func apply(layers: [[Entry]], whiteouts: [[String]], opaque: [[String]]) -> ImageFiles {
        var state: [String: Entry] = [:]
        var children: [String: Set<String>] = [:]
        var wasted: [Waste] = []
        func parent(_ p: String) -> String { p.lastIndex(of: "/").map { String(p[..<$0]) } ?? "" }
        func remove(_ p: String, by layer: Int, replacing: Entry?) {
            if let kids = children.removeValue(forKey: p) {
                for k in kids { remove(k, by: layer, replacing: nil) }
            }
            guard let old = state.removeValue(forKey: p) else { return }
            children[parent(p)]?.remove(p)
            if old.kind == .file {
                let same = replacing.map { $0.kind == .file && $0.digest != nil && $0.digest == old.digest } ?? false
                wasted.append(Waste(entry: old, by: layer, why: replacing == nil ? .removed : .overwritten, identical: same))
            }
        }
        for (l, entries) in layers.enumerated() {
            // Whiteouts hide what the layers below hold, wherever they sit in this tar.
            for w in whiteouts[l] { remove(w, by: l, replacing: nil) }
            for d in opaque[l] {
                for k in children[d] ?? [] where (state[k]?.layer ?? l) < l { remove(k, by: l, replacing: nil) }
            }
            for e in entries {
                if let old = state[e.path] {
                    // A directory over a directory only updates its metadata.
                    if old.kind == .directory && e.kind == .directory {
                        state[e.path] = e
                        continue
                    }
                    remove(e.path, by: l, replacing: e)
                }
                // Parents a layer's tar leaves out are implied.
                var p = parent(e.path)
                var child = e.path
                while true {
                    children[p, default: []].insert(child)
                    if p.isEmpty || state[p] != nil { break }
                    state[p] = Entry(path: p, kind: .directory, size: 0, mode: 0o755, uid: 0, gid: 0, target: nil, digest: nil, layer: l)
                    child = p
                    p = parent(p)
                }
                state[e.path] = e
            }
        }
        let visible = state.values.sorted { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return ImageFiles(layers: layers, visible: visible, wasted: wasted)
    }
}
