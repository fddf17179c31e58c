#if canImport(Glibc)
import Glibc
#endif

/// The little of an ELF file that dependency resolution needs: its identity (class, byte
/// order, machine) and its dynamic section (`DT_NEEDED`, `DT_SONAME`, `DT_RPATH`,
/// `DT_RUNPATH`, `DT_FLAGS_1`) plus the program interpreter (`PT_INTERP`).
///
/// Only the ELF header, the program headers, the interpreter string, the dynamic
/// section and the strings it points at are read (with `pread`), never the whole file.
public struct ELFFile: Sendable, Equatable {
    public enum Class: UInt8, Sendable { case elf32 = 1, elf64 = 2 }
    public enum DataEncoding: UInt8, Sendable { case littleEndian = 1, bigEndian = 2 }

    public var elfClass: Class
    public var dataEncoding: DataEncoding
    /// `e_ident[EI_OSABI]`.
    public var osABI: UInt8
    /// `e_type` (2 = ET_EXEC, 3 = ET_DYN).
    public var type: UInt16
    /// `e_machine` (62 = EM_X86_64, 183 = EM_AARCH64, 3 = EM_386, …).
    public var machine: UInt16
    /// `e_flags` (ABI details on ARM, MIPS, RISC-V).
    public var flags: UInt32
    /// The `PT_INTERP` path, if any.
    public var interpreter: String?
    /// True when the file has a `PT_DYNAMIC` segment; static executables have none.
    public var isDynamic: Bool
    /// `DT_NEEDED` entries in file order.
    public var needed: [String]
    public var soname: String?
    /// The raw `DT_RPATH` string (colon-separated, tokens unexpanded). When several are
    /// present the last one wins, as in glibc.
    public var rpath: String?
    /// The raw `DT_RUNPATH` string.
    public var runpath: String?
    /// `DT_FLAGS_1` (0 when absent).
    public var flags1: UInt64

    public static let EM_386: UInt16 = 3
    public static let EM_ARM: UInt16 = 40
    public static let EM_PPC: UInt16 = 20
    public static let EM_PPC64: UInt16 = 21
    public static let EM_S390: UInt16 = 22
    public static let EM_X86_64: UInt16 = 62
    public static let EM_AARCH64: UInt16 = 183
    public static let EM_RISCV: UInt16 = 243
    public static let EM_LOONGARCH: UInt16 = 258
    public static let DF_1_NODEFLIB: UInt64 = 0x800

    public enum ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        case notRegularFile
        case notELF
        case malformed(String)
        case io(String)

        public var description: String {
            switch self {
            case .notRegularFile: return "not a regular file"
            case .notELF: return "not an ELF file"
            case .malformed(let why): return "malformed ELF file: \(why)"
            case .io(let why): return why
            }
        }
    }

    /// True when `other` could be loaded into the same process as `self`: same class,
    /// byte order and machine (what glibc's `open_verify` checks).
    public func isCompatible(with other: ELFFile) -> Bool {
        elfClass == other.elfClass && dataEncoding == other.dataEncoding && machine == other.machine
    }

    /// Parses the file at `path` (symlinks are followed by `open`).
    public init(path: String) throws(ParseError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .io("cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .notRegularFile }
        try self.init(reader: ELFReader(fd: fd, size: UInt64(st.st_size)))
    }

    private init(reader r: ELFReader) throws(ParseError) {
        // e_ident
        guard r.size >= 16 else { throw .notELF }
        let ident = try r.bytes(at: 0, count: 16)
        guard ident[0] == 0x7f, ident[1] == 0x45, ident[2] == 0x4c, ident[3] == 0x46 else { throw .notELF }
        guard let cls = Class(rawValue: ident[4]) else { throw .malformed("unknown ELF class \(ident[4])") }
        guard let enc = DataEncoding(rawValue: ident[5]) else { throw .malformed("unknown data encoding \(ident[5])") }
        elfClass = cls
        dataEncoding = enc
        osABI = ident[7]
        let is64 = cls == .elf64
        let be = enc == .bigEndian

        let ehsize = is64 ? 64 : 52
        guard r.size >= UInt64(ehsize) else { throw .malformed("truncated ELF header") }
        let eh = try r.bytes(at: 0, count: ehsize)
        type = eh.elfU16(16, be)
        machine = eh.elfU16(18, be)
        let phoff: UInt64
        let shoff: UInt64
        let phentsize: Int
        var phnum: Int
        if is64 {
            phoff = eh.elfU64(32, be)
            shoff = eh.elfU64(40, be)
            flags = eh.elfU32(48, be)
            phentsize = Int(eh.elfU16(54, be))
            phnum = Int(eh.elfU16(56, be))
        } else {
            phoff = UInt64(eh.elfU32(28, be))
            shoff = UInt64(eh.elfU32(32, be))
            flags = eh.elfU32(36, be)
            phentsize = Int(eh.elfU16(42, be))
            phnum = Int(eh.elfU16(44, be))
        }
        if phnum == 0xffff {
            // PN_XNUM: the real count is in section header 0's sh_info.
            guard shoff != 0 else { throw .malformed("PN_XNUM without section headers") }
            let sh = try r.bytes(at: shoff, count: is64 ? 64 : 40)
            phnum = Int(sh.elfU32(is64 ? 44 : 28, be))
        }

        interpreter = nil
        isDynamic = false
        needed = []
        soname = nil
        rpath = nil
        runpath = nil
        flags1 = 0
        guard phnum > 0 else { return }
        let minEnt = is64 ? 56 : 32
        guard phentsize >= minEnt else { throw .malformed("program header entries of \(phentsize) bytes") }
        guard phnum <= 65_536 else { throw .malformed("\(phnum) program headers") }
        let ph = try r.bytes(at: phoff, count: phnum * phentsize)

        struct Segment { var type: UInt32; var offset: UInt64; var vaddr: UInt64; var filesz: UInt64 }
        var segments: [Segment] = []
        for i in 0..<phnum {
            let o = i * phentsize
            if is64 {
                segments.append(Segment(type: ph.elfU32(o, be), offset: ph.elfU64(o + 8, be),
                                        vaddr: ph.elfU64(o + 16, be), filesz: ph.elfU64(o + 32, be)))
            } else {
                segments.append(Segment(type: ph.elfU32(o, be), offset: UInt64(ph.elfU32(o + 4, be)),
                                        vaddr: UInt64(ph.elfU32(o + 8, be)), filesz: UInt64(ph.elfU32(o + 16, be))))
            }
        }
        let PT_LOAD: UInt32 = 1, PT_DYNAMIC: UInt32 = 2, PT_INTERP: UInt32 = 3

        if let interp = segments.first(where: { $0.type == PT_INTERP }) {
            guard interp.filesz > 0, interp.filesz <= 4096 else { throw .malformed("PT_INTERP of \(interp.filesz) bytes") }
            var b = try r.bytes(at: interp.offset, count: Int(interp.filesz))
            if let nul = b.firstIndex(of: 0) { b.removeSubrange(nul...) }
            interpreter = String(decoding: b, as: UTF8.self)
        }

        guard let dyn = segments.first(where: { $0.type == PT_DYNAMIC }) else { return }
        isDynamic = true
        let entSize = is64 ? 16 : 8
        // The dynamic section is a few hundred bytes; anything past a mebibyte is not sane.
        let dynSize = Int(min(dyn.filesz, 1 << 20)) / entSize * entSize
        let d = try r.bytes(at: dyn.offset, count: dynSize)
        var neededOffsets: [UInt64] = []
        var sonameOffset: UInt64?, rpathOffset: UInt64?, runpathOffset: UInt64?
        var strtab: UInt64?, strsz: UInt64?
        var o = 0
        while o + entSize <= d.count {
            let tag: Int64
            let val: UInt64
            if is64 {
                tag = Int64(bitPattern: d.elfU64(o, be))
                val = d.elfU64(o + 8, be)
            } else {
                tag = Int64(Int32(bitPattern: d.elfU32(o, be)))
                val = UInt64(d.elfU32(o + 4, be))
            }
            o += entSize
            switch tag {
            case 0: o = d.count  // DT_NULL
            case 1: neededOffsets.append(val)  // DT_NEEDED
            case 5: strtab = val  // DT_STRTAB
            case 10: strsz = val  // DT_STRSZ
            case 14: sonameOffset = val  // DT_SONAME
            case 15: rpathOffset = val  // DT_RPATH
            case 29: runpathOffset = val  // DT_RUNPATH
            case 0x6fff_fffb: flags1 = val  // DT_FLAGS_1
            default: break
            }
        }
        guard !neededOffsets.isEmpty || sonameOffset != nil || rpathOffset != nil || runpathOffset != nil else { return }
        guard let strtabAddr = strtab else { throw .malformed("dynamic section without DT_STRTAB") }
        // DT_STRTAB is a virtual address: map it to a file offset through the PT_LOAD segment holding it.
        guard let load = segments.first(where: {
            $0.type == PT_LOAD && strtabAddr >= $0.vaddr && strtabAddr - $0.vaddr < $0.filesz
        }) else { throw .malformed("DT_STRTAB 0x\(String(strtabAddr, radix: 16)) is in no PT_LOAD segment") }
        // Offsets come from the file: a hostile one must not overflow (the fuzzer found one).
        let (strOffset, overflow) = load.offset.addingReportingOverflow(strtabAddr - load.vaddr)
        guard !overflow else { throw .malformed("DT_STRTAB 0x\(String(strtabAddr, radix: 16)) maps past the end of any file") }
        let limit = min(strsz ?? UInt64.max, load.filesz - (strtabAddr - load.vaddr))
        func string(_ off: UInt64) throws(ParseError) -> String {
            guard off < limit else { throw .malformed("string offset \(off) past the string table") }
            let (at, overflow) = strOffset.addingReportingOverflow(off)
            guard !overflow else { throw .malformed("string offset \(off) past the end of any file") }
            return try r.cString(at: at, max: Int(min(limit - off, 1 << 20)))
        }
        needed = []
        for n in neededOffsets { needed.append(try string(n)) }
        if let s = sonameOffset { soname = try string(s) }
        if let s = rpathOffset { rpath = try string(s) }
        if let s = runpathOffset { runpath = try string(s) }
    }
}

/// Bounded positional reads from an open file.
private struct ELFReader {
    let fd: Int32
    let size: UInt64

    func bytes(at offset: UInt64, count: Int) throws(ELFFile.ParseError) -> [UInt8] {
        guard count >= 0, offset <= size, UInt64(count) <= size - offset else {
            throw .malformed("\(count) bytes at offset \(offset) run past the end of the file (\(size) bytes)")
        }
        var buf = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = buf.withUnsafeMutableBytes { p in
                pread(fd, p.baseAddress! + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io("read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw .malformed("unexpected end of file") }
            done += n
        }
        return buf
    }

    /// A NUL-terminated string of at most `max` bytes, read in small chunks.
    func cString(at offset: UInt64, max: Int) throws(ELFFile.ParseError) -> String {
        var out: [UInt8] = []
        var off = offset
        while out.count < max {
            let want = Swift.min(256, max - out.count, Int(Swift.min(UInt64(Int.max), size &- off)))
            guard off < size, want > 0 else { break }
            let chunk = try bytes(at: off, count: want)
            if let nul = chunk.firstIndex(of: 0) {
                out += chunk[..<nul]
                return String(decoding: out, as: UTF8.self)
            }
            out += chunk
            off += UInt64(want)
        }
        throw .malformed("unterminated string at offset \(offset)")
    }
}

extension Array where Element == UInt8 {
    @inline(__always) func elfU16(_ o: Int, _ be: Bool) -> UInt16 {
        be ? UInt16(self[o]) << 8 | UInt16(self[o + 1]) : UInt16(self[o + 1]) << 8 | UInt16(self[o])
    }
    @inline(__always) func elfU32(_ o: Int, _ be: Bool) -> UInt32 {
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(self[o + (be ? 3 - i : i)]) << (8 * UInt32(i)) }
        return v
    }
    @inline(__always) func elfU64(_ o: Int, _ be: Bool) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(self[o + (be ? 7 - i : i)]) << (8 * UInt64(i)) }
        return v
    }
}
