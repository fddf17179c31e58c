#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

/// A `.deb` binary package, deb(5): an ar archive whose members are, in this
/// order, `debian-binary` (the format version, "2.0\n"), `control.tar[.gz|.xz|.zst]`
/// (the control files and maintainer scripts) and `data.tar[.gz|.xz|.zst]` (the
/// file system). Members whose names start with `_` may come between them and
/// are ignored, as is anything after `data.tar`.
///
/// `init` reads only the ar headers, `debian-binary` and the control member (kept
/// in memory: it is small, and capped); the data member is streamed by `openData`,
/// read in place from the file, never extracted or buffered whole.
public struct DebArchive: Sendable {
    /// The most bytes the control member may have, compressed or not (real
    /// packages have a few KiB; the largest, with long md5sums, a few MiB).
    public static let controlLimit: Int64 = 64 << 20

    public let path: String
    /// The files of `control.tar` by bare name (`control`, `md5sums`, `conffiles`,
    /// `postinst`, `triggers`, …), with the `./` prefix removed; directories skipped.
    public let controlMembers: [String: [UInt8]]
    /// The data member's compression: "none", "gz", "xz" or "zst".
    public let dataCompression: String
    /// The compressed size of the data member, in bytes.
    public let dataSize: Int64
    /// The data member's name (`data.tar.xz`) and where its bytes start in the file.
    private let dataMember: String
    private let dataOffset: Int64

    /// Reads the ar index, checks `debian-binary`, and reads `control.tar` fully.
    /// - Throws: `DebError`.
    public init(path: String) throws {
        self.path = path
        let file = try DebFile(path: path)
        let members = try ArMember.index(of: file)

        // deb(5): "debian-binary" first; only "_"-prefixed extras before each of
        // control.tar and data.tar; whatever follows data.tar is ignored (the index
        // stops there).
        guard let first = members.first, first.name == "debian-binary" else {
            throw DebError.missingMember(path: path, name: "debian-binary")
        }
        try Self.checkVersion(file.read(first), path: path)
        var rest = members.dropFirst().filter { !$0.name.hasPrefix("_") }[...]
        guard let control = rest.popFirst(), !control.name.hasPrefix("data.tar") else {
            throw DebError.missingMember(path: path, name: "control.tar")
        }
        guard control.name.hasPrefix("control.tar") else { throw DebError.unexpectedMember(path: path, name: control.name) }
        guard let data = rest.popFirst() else { throw DebError.missingMember(path: path, name: "data.tar") }
        guard data.name.hasPrefix("data.tar") else { throw DebError.unexpectedMember(path: path, name: data.name) }

        guard let controlCompression = Self.compression(of: control.name, base: "control.tar") else {
            throw DebError.unsupportedCompression(path: path, member: control.name)
        }
        guard let dataCompression = Self.compression(of: data.name, base: "data.tar") else {
            throw DebError.unsupportedCompression(path: path, member: data.name)
        }
        controlMembers = try Self.readControl(file, control, compression: controlCompression, path: path)
        self.dataCompression = dataCompression
        dataSize = data.size
        dataMember = data.name
        dataOffset = data.offset
    }

    /// `controlMembers["control"]` as text (Debian Policy §5.1: control files are
    /// UTF-8; invalid sequences become U+FFFD rather than hiding the whole file).
    public var control: String? {
        controlMembers["control"].map { String(decoding: $0, as: UTF8.self) }
    }

    /// The maintainer scripts present (Debian Policy §6, plus debconf's `config`), sorted.
    public var maintainerScripts: [String] {
        ["config", "postinst", "postrm", "preinst", "prerm"].filter { controlMembers[$0] != nil }
    }

    /// A stream of the decompressed `data.tar`: the member's byte range read in
    /// place from the file, through its decompressor. Corruption surfaces while
    /// reading (gzip's CRC-32, xz's and zstd's checks) as `DebError.corruptMember`;
    /// more than `limit` decompressed bytes as `DebError.tooLarge`. The checksums
    /// at the end of a stream are only verified once it is read to its end: after
    /// `TarReader.next()` returns nil, call `skipTrailingData()`.
    ///
    /// Each call opens the file anew, so several readers are independent.
    public func openData(limit: Int64? = nil) throws -> ByteReader {
        let file = try DebFile(path: path)
        // The file may have been replaced since `init` read its index.
        guard file.size >= dataOffset + dataSize else { throw DebError.truncated(path: path, member: dataMember) }
        let member = ArMember(name: dataMember, offset: dataOffset, size: dataSize)
        return MemberErrors(Self.decoder(dataCompression, MemberReader(file, member), limit: limit), path: path, member: dataMember)
    }

    // MARK: Members

    /// deb(5): "the major number … if changed, the program should stop"; minor
    /// numbers and further lines must be accepted.
    private static func checkVersion(_ bytes: [UInt8], path: String) throws {
        let firstLine = bytes.prefix { $0 != UInt8(ascii: "\n") }
        let text = String(decoding: firstLine.prefix(64), as: UTF8.self)
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard bytes.count <= 4096, parts.count == 2, parts[0] == "2", !parts[1].isEmpty,
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw DebError.unsupportedVersion(path: path, version: text)
        }
    }

    /// The compression named by a member's suffix, as dpkg-deb chooses it; nil for
    /// those not supported (bzip2 and lzma, which dpkg-deb no longer builds).
    private static func compression(of name: String, base: String) -> String? {
        switch name.dropFirst(base.count) {
        case "": return "none"
        case ".gz": return "gz"
        case ".xz": return "xz"
        case ".zst": return "zst"
        default: return nil
        }
    }

    private static func decoder(_ compression: String, _ reader: ByteReader, limit: Int64?) -> ByteReader {
        switch compression {
        case "gz": return GzipReader(reader, limit: limit)
        case "xz": return XzReader(reader, limit: limit)
        case "zst": return ZstdReader(reader, limit: limit)
        default: return Compression.none.reader(reader, limit: limit)
        }
    }

    /// The regular files of the control tarball, by bare name. Reads the tar to
    /// its very end so the decompressor verifies its checksum.
    private static func readControl(_ file: DebFile, _ member: ArMember, compression: String, path: String) throws -> [String: [UInt8]] {
        guard member.size <= controlLimit else {
            throw DebError.tooLarge(path: path, member: member.name, limit: controlLimit)
        }
        let stream = MemberErrors(decoder(compression, MemberReader(file, member), limit: controlLimit), path: path, member: member.name)
        let tar = TarReader(stream, maxEntrySize: controlLimit)
        var files: [String: [UInt8]] = [:]
        do {
            while let header = try tar.next() {
                // Only plain files: the optional "." directory entry is skipped.
                guard header.kind == .regular else { continue }
                let name = bareName(header.name)
                guard !name.isEmpty else { continue }
                var body = [UInt8](repeating: 0, count: Int(header.size))
                var filled = 0
                try body.withUnsafeMutableBytes { buffer in
                    while filled < buffer.count {
                        let n = try tar.readBody(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
                        if n == 0 { break }
                        filled += n
                    }
                }
                files[name] = body
            }
            try tar.skipTrailingData()
        } catch let error as DebError {
            throw error
        } catch {
            throw DebError.corruptMember(path: path, member: member.name, reason: "\(error)")
        }
        guard files["control"] != nil else { throw DebError.missingMember(path: path, name: "\(member.name)/control") }
        return files
    }

    /// `./postinst` → `postinst`.
    private static func bareName(_ name: String) -> String {
        var s = Substring(name)
        while s.hasPrefix("./") { s = s.dropFirst(2) }
        while s.hasPrefix("/") { s = s.dropFirst() }
        return String(s)
    }
}

// MARK: - The ar container

/// One ar member: its name (trailing `/` removed) and the byte range of its data.
private struct ArMember {
    let name: String
    let offset: Int64
    let size: Int64

    static let magic = Array("!<arch>\n".utf8)
    static let headerSize: Int64 = 60

    /// The members from the start of the archive up to and including the first
    /// `data.tar*` (deb(5): later members are to be ignored, so are not even read).
    ///
    /// Common ar format: an 8-byte magic, then per member a 60-byte header (name 16,
    /// mtime 12, uid 6, gid 6, mode 8, size 10 as space-padded decimal, "`\n") and
    /// the data, padded with one byte to an even offset.
    static func index(of file: DebFile) throws -> [ArMember] {
        let path = file.path
        guard file.size >= Int64(magic.count), try file.read(at: 0, count: magic.count) == magic else {
            throw DebError.notADeb(path: path)
        }
        var members: [ArMember] = []
        var offset = Int64(magic.count)
        while offset < file.size {
            let available = Int(min(headerSize, file.size - offset))
            let header = try file.read(at: offset, count: available)
            let name = memberName(header.prefix(16))
            guard available == Int(headerSize) else {
                throw DebError.truncated(path: path, member: name.isEmpty ? "header at offset \(offset)" : name)
            }
            guard header[58] == UInt8(ascii: "`"), header[59] == UInt8(ascii: "\n") else {
                throw DebError.badHeader(path: path, offset: offset, reason: "missing the \"`\\n\" terminator")
            }
            guard let size = decimal(header[48..<58]) else {
                throw DebError.badHeader(path: path, offset: offset, reason: "size field is not a decimal number")
            }
            guard !name.isEmpty else { throw DebError.badHeader(path: path, offset: offset, reason: "empty member name") }
            let start = offset + headerSize
            guard size <= file.size - start else { throw DebError.truncated(path: path, member: name) }
            members.append(ArMember(name: name, offset: start, size: size))
            if name.hasPrefix("data.tar") { break }
            offset = start + size + (size & 1)
        }
        return members
    }

    /// A 16-byte name field: trailing spaces, then GNU ar's terminating `/`, removed.
    private static func memberName(_ field: ArraySlice<UInt8>) -> String {
        var bytes = field
        while bytes.last == UInt8(ascii: " ") { bytes.removeLast() }
        if bytes.last == UInt8(ascii: "/") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A space-padded decimal field (leading digits, then only spaces).
    private static func decimal(_ field: ArraySlice<UInt8>) -> Int64? {
        let digits = field.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard !digits.isEmpty, field.dropFirst(digits.count).allSatisfy({ $0 == UInt8(ascii: " ") }) else { return nil }
        return digits.reduce(Int64(0)) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
    }
}

/// An open `.deb`, closed when the last reader of it goes away.
private final class DebFile {
    let fd: Int32
    let path: String
    let size: Int64

    init(path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DebError.io(path: path, message: "cannot open: \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw DebError.io(path: path, message: "cannot stat: \(String(cString: strerror(e)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw DebError.io(path: path, message: "not a regular file")
        }
        self.fd = fd
        self.path = path
        self.size = Int64(st.st_size)
    }

    deinit { close(fd) }

    /// Up to `count` bytes at `offset` with `pread` (fewer only at the end of the file).
    func read(at offset: Int64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DebError.io(path: path, message: "cannot read: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            filled += n
        }
        out.removeLast(count - filled)
        return out
    }

    /// A whole small member (`debian-binary`).
    func read(_ member: ArMember) throws -> [UInt8] {
        let bytes = try read(at: member.offset, count: Int(min(member.size, 4097)))
        guard bytes.count == Int(min(member.size, 4097)) else { throw DebError.truncated(path: path, member: member.name) }
        return bytes
    }
}

/// Reads one member's byte range with `pread`, stopping at its end.
private final class MemberReader: ByteReader {
    private let file: DebFile
    private let name: String
    private var position: Int64
    private let end: Int64

    init(_ file: DebFile, _ member: ArMember) {
        self.file = file
        self.name = member.name
        self.position = member.offset
        self.end = member.offset + member.size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = Int(min(Int64(buffer.count), end - position))
        if want <= 0 { return 0 }
        while true {
            let n = pread(file.fd, buffer.baseAddress, want, off_t(position))
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw DebError.io(path: file.path, message: "cannot read: \(String(cString: strerror(errno)))") }
            // Shorter than the index said: the file shrank since it was opened.
            guard n > 0 else { throw DebError.truncated(path: file.path, member: name) }
            position += Int64(n)
            return n
        }
    }
}

/// Passes a member's decoded bytes through, turning the decoders' `ArchiveError`s
/// into `DebError`s that name the package file and member.
private final class MemberErrors: ByteReader {
    private let source: ByteReader
    private let path: String
    private let member: String

    init(_ source: ByteReader, path: String, member: String) {
        self.source = source
        self.path = path
        self.member = member
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            return try source.read(into: buffer)
        } catch let error as ArchiveError {
            switch error {
            case .tooLarge(_, let limit): throw DebError.tooLarge(path: path, member: member, limit: limit)
            case .io: throw DebError.io(path: path, message: "\(error)")
            default: throw DebError.corruptMember(path: path, member: member, reason: "\(error)")
            }
        }
    }
}
