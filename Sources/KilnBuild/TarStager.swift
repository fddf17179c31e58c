#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// Turns the entries of a tar stream into file nodes, for `archive:` items and Debian
/// packages alike: regular bodies are spooled into the staging area under content-free
/// names (their digests recorded for the layer cache), hard links point at the body of a
/// file earlier in the same stream, and nothing else touches the disk.
final class TarStager {
    private let dir: String
    private let staging: Staging
    /// A device number no real file has, so staged bodies are hard-link identities of
    /// their own.
    private let device = UInt64.max - UInt64(UInt32.random(in: 0...UInt32.max))
    private var index: UInt64 = 0
    private var staged: [String: (path: String, size: Int64, id: FileIdentity)] = [:]
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
    /// "archive" or "package": what error messages call the stream.
    private let container: String
    /// The prefix of error messages (`contents[2].archive: PATH`, `packages: NAME VERSION`).
    private let what: String

    init(staging: Staging, hint: String, container: String, what: String) throws {
        self.staging = staging
        self.container = container
        self.what = what
        dir = staging.newPath(hint)
        guard mkdir(dir, 0o700) == 0 else { throw BuildError("cannot create \(dir): \(String(cString: strerror(errno)))") }
    }

    deinit { buffer.deallocate() }

    /// The node for the entry `h` just read from `tar`, known later (to hard links) as `key`;
    /// `linkKey` is the key a hard link's target was stored under.
    func node(for h: TarHeader, from tar: TarReader, key: String, linkKey: String?) throws -> FileNode {
        index += 1
        switch h.kind {
        case .directory:
            return FileNode(.directory, mode: h.mode)
        case .regular:
            let body = "\(dir)/\(index)"
            let out = HashingWriter(try FileWriter(creating: body, mode: 0o600))
            var left = h.size
            while left > 0 {
                let n = try tar.readBody(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<Int(min(Int64(buffer.count), left))]))
                if n == 0 { throw BuildError("\(what): entry \"\(h.name)\" is truncated") }
                try out.write(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                left -= Int64(n)
            }
            staging.recordContent(body, digest: out.digest)
            let id = FileIdentity(device: device, inode: index)
            staged[key] = (body, h.size, id)
            return FileNode(.file(.host(path: body, size: h.size, identity: id)), mode: h.mode)
        case .hardlink:
            guard let linkKey, let t = staged[linkKey] else {
                throw BuildError("\(what): hard link \"\(h.name)\" points to \"\(h.linkName)\", which is not a file earlier in the \(container)")
            }
            staged[key] = t
            return FileNode(.file(.host(path: t.path, size: t.size, identity: t.id)), mode: h.mode)
        case .symlink:
            return FileNode(.symlink(h.linkName), mode: 0o777)
        case .charDevice:
            return FileNode(.charDevice(major: h.devMajor, minor: h.devMinor), mode: h.mode)
        case .blockDevice:
            return FileNode(.blockDevice(major: h.devMajor, minor: h.devMinor), mode: h.mode)
        case .fifo:
            return FileNode(.fifo, mode: h.mode)
        }
    }
}
