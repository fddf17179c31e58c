#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// The members of a tar file by name, read in place with `pread`: an OCI archive or a
/// docker-archive is never extracted. One level of symlink between members is followed,
/// as containers/image does for docker-archives.
public final class TarIndex: LayoutFiles, @unchecked Sendable {
    public let path: String
    private let fd: Int32
    private var members: [String: (offset: Int64, size: Int64)] = [:]
    private var links: [String: String] = [:]

    public convenience init(path: String) throws {
        try self.init(reading: try FileReader(path: path), path: path)
    }

    /// Indexes the tar readable through `reader`, which must stand at the file's start.
    /// The index keeps its own duplicate of the descriptor, so the file may already be
    /// unlinked (a decompressed archive's private temporary file); `path` only names the
    /// archive in messages.
    init(reading reader: FileReader, path: String) throws {
        self.path = path
        fd = dup(reader.fd)
        guard fd >= 0 else { throw ArchiveError.io("cannot duplicate the descriptor of", path: path, errno: errno) }
        let tar = TarReader(reader)
        do {
            while let h = try tar.next() {
                let name = TarIndex.clean(h.name)
                guard members[name] == nil && links[name] == nil else {
                    throw ImageError.invalid("\(path): duplicate member \"\(name)\"")
                }
                switch h.kind {
                case .regular: members[name] = (tar.offset, h.size)
                case .symlink, .hardlink:
                    let base = h.kind == .symlink && name.contains("/") ? String(name[..<name.lastIndex(of: "/")!]) + "/" : ""
                    links[name] = TarIndex.clean(h.linkName.hasPrefix("/") || h.kind == .hardlink ? h.linkName : base + h.linkName)
                default: break
                }
            }
        } catch let e as ImageError {
            throw e
        } catch {
            throw ImageError.invalid("\(path): \(error)")
        }
    }

    deinit { close(fd) }

    static func clean(_ name: String) -> String {
        var parts: [Substring] = []
        for c in name.split(separator: "/") where c != "." {
            if c == ".." { _ = parts.popLast() } else { parts.append(c) }
        }
        return parts.joined(separator: "/")
    }

    func lookup(_ name: String) throws -> (offset: Int64, size: Int64) {
        let n = TarIndex.clean(name)
        if let m = members[n] { return m }
        if let target = links[n], let m = members[target] { return m }
        throw ImageError.notFound("\(path): no member \"\(n)\"")
    }

    public func open(_ name: String) throws -> ByteReader {
        let m = try lookup(name)
        return FileRangeReader(fd: fd, path: "\(path):\(name)", offset: m.offset, length: m.size)
    }

    public func size(_ name: String) throws -> Int64 { try lookup(name).size }
}
