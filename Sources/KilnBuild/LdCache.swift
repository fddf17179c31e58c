#if canImport(Glibc)
import Glibc
#endif

/// glibc's `/etc/ld.so.cache`: library names mapped to the paths `ldconfig` found them at.
///
/// Both layouts are read: the current one (`glibc-ld.so.cache1.1`, offsets relative to
/// its header, byte order recorded in the header) and the old one (`ld.so-1.7.0`), alone
/// or followed by the new one as older `ldconfig`s wrote it. When the cache file is
/// missing, the directories listed in `/etc/ld.so.conf` (with its `include`s) stand in
/// for it, which is what `ldconfig` would have put in it. A cache that cannot be parsed
/// is ignored, as `ld.so` ignores it.
struct LdCache: Sendable {
    struct Entry: Sendable, Equatable {
        var flags: Int32
        var key: String
        var value: String
        var hwcap: UInt64
    }

    var entries: [Entry] = []
    /// Used only when there is no cache file: directories from `ld.so.conf`.
    var fallbackDirectories: [String] = []
    /// False when neither a cache nor `ld.so.conf` was found.
    var present = false

    init() {}

    /// Parses a cache image. Throws when the bytes are not a cache this code understands.
    init(bytes b: [UInt8]) throws {
        let oldMagic = Array("ld.so-1.7.0".utf8)
        let newMagic = Array("glibc-ld.so.cache1.1".utf8)
        if b.starts(with: newMagic) {
            entries = try LdCache.parseNew(b, at: 0)
        } else if b.starts(with: oldMagic) {
            guard b.count >= 16 else { throw BuildError("truncated ld.so cache") }
            let nlibs = Int(b.elfU32(12, false))
            let entriesEnd = 16 + nlibs * 12
            guard nlibs < 1 << 24, entriesEnd <= b.count else { throw BuildError("truncated ld.so cache") }
            let newStart = (entriesEnd + 7) & ~7
            if newStart + newMagic.count <= b.count, b[newStart...].starts(with: newMagic) {
                entries = try LdCache.parseNew(b, at: newStart)
            } else {
                // Old layout only (native byte order): strings follow the entries.
                for i in 0..<nlibs {
                    let o = 16 + i * 12
                    let flags = Int32(bitPattern: b.elfU32(o, false))
                    guard let k = LdCache.string(b, entriesEnd + Int(b.elfU32(o + 4, false))),
                          let v = LdCache.string(b, entriesEnd + Int(b.elfU32(o + 8, false))) else {
                        throw BuildError("bad string offset in ld.so cache")
                    }
                    entries.append(Entry(flags: flags, key: k, value: v, hwcap: 0))
                }
            }
        } else {
            throw BuildError("not an ld.so cache")
        }
        present = true
    }

    private static func parseNew(_ b: [UInt8], at base: Int) throws -> [Entry] {
        let headerSize = 48, entrySize = 24
        guard base + headerSize <= b.count else { throw BuildError("truncated ld.so cache") }
        let be: Bool
        switch b[base + 28] {
        case 0: be = false  // unknown: ldconfig wrote it for this (little-endian) host
        case 2: be = false
        case 3: be = true
        default: throw BuildError("ld.so cache with invalid byte order flag")
        }
        let nlibs = Int(b.elfU32(base + 20, be))
        guard nlibs < 1 << 24, base + headerSize + nlibs * entrySize <= b.count else {
            throw BuildError("truncated ld.so cache")
        }
        var out: [Entry] = []
        out.reserveCapacity(nlibs)
        for i in 0..<nlibs {
            let o = base + headerSize + i * entrySize
            let flags = Int32(bitPattern: b.elfU32(o, be))
            guard let k = string(b, base + Int(b.elfU32(o + 4, be))),
                  let v = string(b, base + Int(b.elfU32(o + 8, be))) else {
                throw BuildError("bad string offset in ld.so cache")
            }
            out.append(Entry(flags: flags, key: k, value: v, hwcap: b.elfU64(o + 16, be)))
        }
        return out
    }

    private static func string(_ b: [UInt8], _ off: Int) -> String? {
        guard off >= 0, off < b.count, let nul = b[off...].firstIndex(of: 0) else { return nil }
        return String(decoding: b[off..<nul], as: UTF8.self)
    }

    /// Loads `<prefix>/etc/ld.so.cache`, or failing that `<prefix>/etc/ld.so.conf`.
    /// `prefix` is a sysroot ("" for the host); returned paths are inside it.
    static func load(prefix: String) -> LdCache {
        let path = prefix + "/etc/ld.so.cache"
        if let bytes = readSmallFile(path, limit: 256 << 20), let c = try? LdCache(bytes: bytes) {
            return c
        }
        var c = LdCache()
        var seen = Set<String>()
        var depth = 0
        c.fallbackDirectories = confDirectories(prefix: prefix, file: "/etc/ld.so.conf", seen: &seen, depth: &depth)
        c.present = !c.fallbackDirectories.isEmpty
        return c
    }

    /// The cache flags glibc's `ld.so` accepts for objects of this kind (`_DL_CACHE_DEFAULT_ID`),
    /// or nil when not known, in which case any ELF entry is tried and the file's header decides.
    static func expectedFlags(for elf: ELFFile) -> Int32? {
        let libc6: Int32 = 0x0003
        switch (elf.machine, elf.elfClass) {
        case (ELFFile.EM_X86_64, .elf64): return libc6 | 0x0300
        case (ELFFile.EM_X86_64, .elf32): return libc6 | 0x0800  // x32
        case (ELFFile.EM_386, _): return libc6
        case (ELFFile.EM_AARCH64, _): return libc6 | 0x0a00
        case (ELFFile.EM_PPC64, _): return libc6 | 0x0500
        case (ELFFile.EM_S390, .elf64): return libc6 | 0x0400
        default: return nil
        }
    }

    /// Candidate paths for `name`, best first. Entries with no hardware-capability
    /// requirement come before `glibc-hwcaps`/legacy-hwcap ones, so the image gets the
    /// baseline build of a library rather than one tuned for the build machine's CPU.
    func candidates(for name: String, flags expected: Int32?) -> [String] {
        if !fallbackDirectories.isEmpty {
            return fallbackDirectories.map { $0 == "/" ? "/" + name : $0 + "/" + name }
        }
        let matching = entries.filter { e in
            guard e.key == name else { return false }
            if let expected { return e.flags == expected }
            let type = e.flags & 0xff
            return type == 0x01 || type == 0x03  // FLAG_ELF, FLAG_ELF_LIBC6
        }
        return matching.filter { $0.hwcap == 0 }.map(\.value) + matching.filter { $0.hwcap != 0 }.map(\.value)
    }

    /// Directories named by an `ld.so.conf`-style file, following `include` globs.
    private static func confDirectories(prefix: String, file: String, seen: inout Set<String>, depth: inout Int) -> [String] {
        guard depth < 16, !seen.contains(file), let bytes = readSmallFile(prefix + file, limit: 1 << 20) else { return [] }
        seen.insert(file)
        depth += 1
        defer { depth -= 1 }
        let dir = file.split(separator: "/").dropLast().joined(separator: "/")
        var out: [String] = []
        for rawLine in String(decoding: bytes, as: UTF8.self).split(whereSeparator: { $0 == "\n" }) {
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            guard let first = words.first else { continue }
            if first == "include" {
                for pattern in words.dropFirst() {
                    let p = pattern.hasPrefix("/") ? String(pattern) : "/" + dir + "/" + pattern
                    for match in glob(prefix + p) {
                        let inRoot = String(match.dropFirst(prefix.count))
                        out += confDirectories(prefix: prefix, file: inRoot, seen: &seen, depth: &depth)
                    }
                }
            } else if first == "hwcap" {
                continue
            } else {
                for w in line.split(whereSeparator: { " \t\r:,".contains($0) }) {
                    // ldconfig accepts `dir=TYPE`.
                    var d = String(w.split(separator: "=", maxSplits: 1).first ?? w)
                    while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
                    if d.hasPrefix("/") && !out.contains(d) { out.append(d) }
                }
            }
        }
        return out
    }

    private static func glob(_ pattern: String) -> [String] {
        var g = glob_t()
        defer { globfree(&g) }
        guard Glibc.glob(pattern, 0, nil, &g) == 0 else { return [] }
        var out: [String] = []
        for i in 0..<Int(g.gl_pathc) {
            if let p = g.gl_pathv[i] { out.append(String(cString: p)) }
        }
        return out.sorted()
    }

    /// The whole file when it exists and is at most `limit` bytes.
    static func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size <= limit else { return nil }
        var buf = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < buf.count {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            done += n
        }
        return buf
    }
}
