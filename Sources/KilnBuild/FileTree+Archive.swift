#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

extension FileTree {
    /// Unpacks a `.tar`, `.tar.gz` or `.tar.zst` at `imagePath` (the seed's mergeDrvs
    /// untars such inputs). Only file bodies touch the disk, under content-free names in
    /// `staging`; paths stay data, so a hostile name can never write outside the build.
    /// Modes come from the archive; owners are 0 unless `perms` says otherwise.
    public mutating func addArchive(_ archivePath: String, at imagePath: String, staging: Staging, xattrs: Bool, key: String) throws {
        let reader: ByteReader
        do {
            reader = try Compression.openDecompressed(path: archivePath)
        } catch {
            throw BuildError("\(key): \(archivePath): \(error)")
        }
        let tar = TarReader(reader)
        let dir = staging.newPath("archive")
        guard mkdir(dir, 0o700) == 0 else { throw BuildError("cannot create \(dir): \(String(cString: strerror(errno)))") }
        let root = FileTree.normalize(imagePath)
        // Archive path → staged body and a synthetic identity, for hard links.
        var staged: [String: (path: String, size: Int64, id: FileIdentity)] = [:]
        let device = UInt64.max - UInt64(UInt32.random(in: 0...UInt32.max))
        var index: UInt64 = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        do {
            while let h = try tar.next() {
                index += 1
                var name = h.name
                while name.hasPrefix("/") { name.removeFirst() }
                if FileTree.escapesRoot(name) {
                    throw BuildError("\(key): \(archivePath): entry \"\(h.name)\" points outside the archive root")
                }
                let rel = FileTree.normalize(name)
                if rel.isEmpty { continue }  // "./" itself
                let dest = root.isEmpty ? rel : root + "/" + rel
                var node: FileNode
                switch h.kind {
                case .directory:
                    node = FileNode(.directory, mode: h.mode)
                case .regular:
                    let body = "\(dir)/\(index)"
                    let file = try FileWriter(creating: body, mode: 0o600)
                    let out = HashingWriter(file)
                    var left = h.size
                    while left > 0 {
                        let n = try tar.readBody(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), left))]))
                        if n == 0 { throw BuildError("\(key): \(archivePath): entry \"\(h.name)\" is truncated") }
                        try out.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                        left -= Int64(n)
                    }
                    staging.recordContent(body, digest: out.digest)
                    let id = FileIdentity(device: device, inode: index)
                    staged[rel] = (body, h.size, id)
                    node = FileNode(.file(.host(path: body, size: h.size, identity: id)), mode: h.mode)
                case .hardlink:
                    var target = h.linkName
                    while target.hasPrefix("/") { target.removeFirst() }
                    guard let t = staged[FileTree.normalize(target)] else {
                        throw BuildError("\(key): \(archivePath): hard link \"\(h.name)\" points to \"\(h.linkName)\", which is not a file earlier in the archive")
                    }
                    staged[rel] = t
                    node = FileNode(.file(.host(path: t.path, size: t.size, identity: t.id)), mode: h.mode)
                case .symlink:
                    node = FileNode(.symlink(h.linkName), mode: 0o777)
                case .charDevice:
                    node = FileNode(.charDevice(major: h.devMajor, minor: h.devMinor), mode: h.mode)
                case .blockDevice:
                    node = FileNode(.blockDevice(major: h.devMajor, minor: h.devMinor), mode: h.mode)
                case .fifo:
                    node = FileNode(.fifo, mode: h.mode)
                }
                if xattrs { node.xattrs = h.xattrs }
                if node.isDirectory, let old = nodes[dest], old.isDirectory {
                    update(dest) { $0.mode = node.mode; $0.xattrs = node.xattrs }
                } else {
                    insert(dest, node)
                }
            }
        } catch let e as BuildError {
            throw e
        } catch {
            throw BuildError("\(key): \(archivePath): \(error)")
        }
    }
}
