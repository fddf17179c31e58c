import Foundation
import KilnArchive
import Testing

@Suite struct TarReaderInteropTests {
    /// GNU tar's own format: a 150-character name goes into an `L` entry.
    @Test func readsGnuFormatLongName() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let longName = "d/" + String(repeating: "x", count: 148)
        try sh("mkdir -p src/d && printf 'gnu body' > src/\(longName) && ln -s \(longName.dropFirst(2)) src/d/sym", in: dir.path)
        try sh("tar --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1000 -cf gnu.tar -C src d", in: dir.path)
        let tar = try dir.read("gnu.tar")
        #expect(tar.contains(UInt8(ascii: "L")))
        let entries = try readTar(tar)
        #expect(entries.map(\.0.name) == ["d/", "d/sym", longName])
        #expect(entries[0].0.kind == .directory)
        #expect(entries[1].0.kind == .symlink)
        #expect(entries[1].0.linkName == String(longName.dropFirst(2)))
        #expect(entries[2].0.kind == .regular)
        #expect(entries[2].1 == Array("gnu body".utf8))
        #expect(entries[2].0.mtime == 1000)
    }

    /// pax format: a symlink target over 100 bytes goes into a `linkpath` record.
    @Test func readsPaxFormatLongLinkTarget() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let target = "/opt/" + String(repeating: "t", count: 130)
        try sh("mkdir src && ln -s \(target) src/link && printf abc > src/file", in: dir.path)
        try sh("tar --format=pax --sort=name --pax-option=delete=atime,delete=ctime --owner=5:5 --group=6:6 -cf pax.tar -C src link file", in: dir.path)
        let entries = try readTar(try dir.read("pax.tar"))
        #expect(entries.map(\.0.name) == ["link", "file"])
        #expect(entries[0].0.kind == .symlink)
        #expect(entries[0].0.linkName == target)
        #expect(entries[0].0.xattrs.isEmpty)
        #expect(entries[1].1 == Array("abc".utf8))
        #expect(entries[1].0.uid == 5 && entries[1].0.gid == 6)
    }

    @Test func readsBsdtarArchives() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let longName = String(repeating: "b", count: 120) + "/" + String(repeating: "c", count: 120) + "/" + String(repeating: "e", count: 60)
        try sh("mkdir -p src/\(longName.split(separator: "/").dropLast().joined(separator: "/")) && printf bsd > src/\(longName) && printf one > src/a && ln src/a src/hard && mkfifo src/fifo", in: dir.path)
        for format in ["pax", "ustar", "gnutar"] {
            let archive = "bsd-\(format).tar"
            let members = format == "ustar" ? "a hard fifo" : "a hard fifo \(longName)"
            try sh("bsdtar --format \(format) --uid 0 --gid 0 -cf \(archive) -C src \(members)", in: dir.path)
            let entries = try readTar(try dir.read(archive))
            let names = entries.map(\.0.name)
            #expect(names.starts(with: ["a", "hard", "fifo"]), "\(format): \(names)")
            #expect(entries[0].1 == Array("one".utf8))
            #expect(entries[1].0.kind == .hardlink && entries[1].0.linkName == "a", "\(format)")
            #expect(entries[2].0.kind == .fifo)
            if format != "ustar" {
                #expect(names.last == longName, "\(format)")
                #expect(entries.last?.1 == Array("bsd".utf8))
            }
        }
    }

    /// TarWriter output as GNU tar and bsdtar list it.
    @Test func tarWriterOutputIsListedByTarAndBsdtar() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let longName = "top/" + (0..<6).map { _ in String(repeating: "n", count: 50) }.joined(separator: "/") + "/file.txt"
        #expect(longName.utf8.count > 256)
        let target = "/usr/share/" + String(repeating: "s", count: 109)
        #expect(target.utf8.count == 120)
        let body = sampleData(70_000, seed: 4)
        let entries: [(TarHeader, [UInt8])] = [
            (TarHeader(name: "top/", kind: .directory, mode: 0o755, uid: 3_000_000, gid: 3_000_001, mtime: 1_600_000_000), []),
            (TarHeader(name: longName, kind: .regular, mode: 0o640, uid: 3_000_000, gid: 3_000_001, size: Int64(body.count), mtime: 1_600_000_000), body),
            (TarHeader(name: "top/link", kind: .symlink, mode: 0o777, mtime: 1_600_000_000, linkName: target), []),
            (TarHeader(name: "top/hard", kind: .hardlink, mode: 0o640, mtime: 1_600_000_000, linkName: longName), []),
        ]
        let tar = try makeTar(entries)
        try dir.write("w.tar", tar)

        let gnu = try sh("tar --numeric-owner -tvf w.tar", in: dir.path).split(separator: "\n").map(String.init)
        #expect(gnu.count == 4)
        #expect(gnu[0].hasPrefix("drwxr-xr-x 3000000/3000001") && gnu[0].hasSuffix(" top/"))
        #expect(gnu[1].hasPrefix("-rw-r----- 3000000/3000001 ") && gnu[1].contains(" 70000 ") && gnu[1].hasSuffix(" " + longName))
        #expect(gnu[2].hasPrefix("lrwxrwxrwx 0/0") && gnu[2].hasSuffix(" top/link -> " + target))
        #expect(gnu[3].hasPrefix("hrw-r----- 0/0") && gnu[3].hasSuffix(" top/hard link to " + longName))

        let bsd = try sh("bsdtar --numeric-owner -tvf w.tar", in: dir.path).split(separator: "\n").map(String.init)
        #expect(bsd.count == 4)
        // bsdtar: mode, links, uid, gid, size, date (3 fields), name.
        let fields = bsd.map { $0.split(separator: " ").map(String.init) }
        #expect(fields[0].prefix(5) == ["drwxr-xr-x", "0", "3000000", "3000001", "0"] && bsd[0].hasSuffix(" top/"))
        #expect(fields[1].prefix(5) == ["-rw-r-----", "0", "3000000", "3000001", "70000"] && bsd[1].hasSuffix(" " + longName))
        #expect(bsd[2].hasSuffix(" top/link -> " + target))
        #expect(bsd[3].hasSuffix(" top/hard link to " + longName))

        // GNU tar extracts the body intact; and we read back what we wrote.
        try sh("mkdir x && tar -xf w.tar -C x", in: dir.path)
        #expect(try dir.read("x/" + longName) == body)
        let back = try readTar(tar)
        #expect(back.map(\.0) == entries.map(\.0))
        #expect(back[1].1 == body)
    }
}

@Suite struct TarReaderFormatTests {
    @Test func skipsUnreadBodiesAndExposesRawFields() throws {
        let tar = try makeTar([
            (TarHeader(name: "a", kind: .regular, size: 1000), sampleData(1000)),
            (TarHeader(name: "b", kind: .regular, size: 3), [1, 2, 3]),
        ])
        let tr = TarReader(BufferReader(tar))
        #expect(try tr.next()?.name == "a")
        var small = [UInt8](repeating: 0, count: 10)
        #expect(try small.withUnsafeMutableBytes { try tr.readBody(into: $0) } == 10)
        let b = try tr.next()
        #expect(b?.name == "b")
        #expect(tr.raw?.name == Array("b".utf8))
        #expect(tr.raw?.typeflag == UInt8(ascii: "0"))
        let sink = BufferWriter()
        try tr.copyBody(to: sink)
        #expect(sink.bytes == [1, 2, 3])
        #expect(try tr.next() == nil)
        #expect(try tr.next() == nil)
        #expect(tr.offset == Int64(tar.count))
    }

    /// v7-style headers: typeflag NUL is a file, or a directory with a trailing slash.
    @Test func oldStyleTypeflag() throws {
        var tar = try makeTar([
            (TarHeader(name: "dir/", kind: .directory, mode: 0o755), []),
            (TarHeader(name: "dir/file", kind: .regular, size: 2), [9, 9]),
        ])
        for block in [0, 512] {
            tar[block + 156] = 0
            for i in 257..<512 { tar[block + i] = 0 } // drop the ustar magic too: a v7 header
            fixChecksum(&tar, block: block)
        }
        let tr = TarReader(BufferReader(tar))
        #expect(try tr.next()?.kind == .directory)
        #expect(tr.raw?.typeflag == UInt8(ascii: "5"))
        let f = try tr.next()
        #expect(f?.kind == .regular && f?.size == 2)
        #expect(tr.raw?.typeflag == UInt8(ascii: "0"))
    }

    @Test func base256NumbersAndSignedChecksum() throws {
        var tar = try makeTar([(TarHeader(name: "big", kind: .regular, size: 5, uname: "é"), Array("12345".utf8))])
        // GNU base-256: size 5 and uid 5_000_000 as binary big-endian numbers.
        let size: [UInt8] = [0x80] + [UInt8](repeating: 0, count: 10) + [5]
        let uid: [UInt8] = [0x80, 0, 0, 0, 0, 0x4c, 0x4b, 0x40]
        for (i, c) in size.enumerated() { tar[124 + i] = c }
        for (i, c) in uid.enumerated() { tar[108 + i] = c }
        // Checksum as the signed sum (historic tars): bytes ≥ 0x80 count negative.
        for i in 148..<156 { tar[i] = 0x20 }
        let signed = tar[0..<512].reduce(0) { $0 + Int(Int8(bitPattern: $1)) }
        setOctal(&tar, block: 0, field: 148, length: 7, Int64(signed))
        let tr = TarReader(BufferReader(tar))
        let h = try tr.next()
        #expect(h?.size == 5 && h?.uid == 5_000_000 && h?.uname == "é")
        let sink = BufferWriter()
        try tr.copyBody(to: sink)
        #expect(sink.bytes == Array("12345".utf8))
        // A negative base-256 size is rejected.
        var negative = tar
        for i in 124..<136 { negative[i] = 0xff }
        negative[135] = 0xfb // -5
        fixChecksum(&negative, block: 0)
        let error = #expect(throws: ArchiveError.self) { try readTar(negative) }
        #expect(error?.text.contains("negative size") == true)
    }

    @Test func singleZeroBlockThenEndIsAccepted() throws {
        let tar = try makeTar([(TarHeader(name: "a", kind: .regular, size: 1), [1])])
        #expect(try readTar(Array(tar.dropLast(512))).count == 1)
        // GNU tar's 10 KiB record padding after the end marker is not read...
        let padded = tar + [UInt8](repeating: 0, count: 8192)
        let tr = TarReader(BufferReader(padded))
        while try tr.next() != nil {}
        #expect(tr.offset == Int64(tar.count))
        // ...unless asked for.
        #expect(try tr.skipTrailingData() == 8192)
        #expect(tr.offset == Int64(padded.count))
    }

    @Test func tarWriterEdgeFieldsRoundTrip() throws {
        let entries: [(TarHeader, [UInt8])] = [
            (TarHeader(name: "owner", kind: .regular, mode: 0o7755, uid: -1, gid: 2_097_152, size: 1, mtime: -100,
                       uname: String(repeating: "u", count: 40), gname: String(repeating: "g", count: 33),
                       xattrs: ["user.a": [0, 1, 2], "security.selinux": Array("system_u:object_r:bin_t:s0\0".utf8)]), [42]),
            (TarHeader(name: "dev/sda", kind: .blockDevice, mode: 0o660, devMajor: 8, devMinor: 1_048_575), []),
            (TarHeader(name: String(repeating: "é", count: 60), kind: .fifo, mtime: 0o77777777777 + 1), []),
        ]
        let back = try readTar(try makeTar(entries))
        #expect(back.map(\.0) == entries.map(\.0))
        #expect(back[0].1 == [42])
    }

    @Test func paxRecordsOverrideUstarFields() throws {
        let tar = try paxGlobalHeader([("path", "pax/name"), ("linkpath", "pax/target"), ("mtime", "-1.5"), ("size", "0"),
                                       ("gid", "4000000"), ("uname", "who"), ("SCHILY.xattr.user.k", "v"),
                                       ("SCHILY.xattr.user.empty", "")], typeflag: "x", name: "./PaxHeaders/x")
            + makeTar([(TarHeader(name: "ustar", kind: .symlink, gid: 1, mtime: 7, linkName: "old"), [])])
        let tr = TarReader(BufferReader(tar))
        let h = try #require(try tr.next())
        #expect(h.name == "pax/name" && h.linkName == "pax/target" && h.kind == .symlink)
        #expect(h.mtime == -2 && h.gid == 4_000_000 && h.uname == "who")
        #expect(h.xattrs == ["user.k": Array("v".utf8), "user.empty": []])
        // Go drops the empty xattr.
        #expect(tr.raw?.xattrs == [TarRawHeader.Xattr(key: Array("user.k".utf8), value: Array("v".utf8))])
        #expect(try tr.next() == nil)
    }
}

@Suite struct TarReaderRejectionTests {
    static func sample() throws -> [UInt8] {
        try makeTar([
            (TarHeader(name: "first.txt", kind: .regular, size: 600), sampleData(600)),
            (TarHeader(name: "second.txt", kind: .regular, size: 10), sampleData(10)),
        ])
    }

    static func error(_ tar: [UInt8], maxEntrySize: Int64 = TarReader.defaultMaxEntrySize) -> ArchiveError? {
        return #expect(throws: ArchiveError.self) {
            let tr = TarReader(BufferReader(tar), maxEntrySize: maxEntrySize)
            while try tr.next() != nil {
                try tr.copyBody(to: NullWriter())
            }
        }
    }

    @Test func badChecksum() throws {
        var tar = try Self.sample()
        tar[1536 + 3] ^= 1 // inside the second header's name
        let e = Self.error(tar)
        #expect(e?.text.contains("bad header checksum") == true)
        #expect(e?.text.contains("after entry 'first.txt'") == true)
    }

    @Test func truncatedArchives() throws {
        let tar = try Self.sample()
        let cases: [(Int, String)] = [
            (700, "the body of 'first.txt'"),           // inside a body
            (1200, "the body of 'first.txt'"),          // inside its padding
            (1536 + 100, "header block"),               // inside a header
            (2048 + 10, "the body of 'second.txt'"),
            (2560, "without the two zero blocks"),      // no end marker at all
            (0, "without the two zero blocks"),
        ]
        for (cut, message) in cases {
            let e = Self.error(Array(tar.prefix(cut)))
            #expect(e?.text.contains("truncated tar archive") == true, "cut \(cut): \(String(describing: e))")
            #expect(e?.text.contains(message) == true, "cut \(cut): \(String(describing: e))")
        }
        // A pax header with nothing after it.
        let orphan = try paxGlobalHeader([("path", "p")], typeflag: "x")
        #expect(Self.error(orphan)?.text.contains("not followed by its entry") == true)
        #expect(Self.error(orphan + [UInt8](repeating: 0, count: 1024))?.text.contains("followed by the end") == true)
    }

    @Test func absurdSizesAndHeaders() throws {
        var tar = try Self.sample()
        setOctal(&tar, block: 0, field: 124, length: 12, 0o77777777777)
        fixChecksum(&tar, block: 0)
        let e = Self.error(tar, maxEntrySize: 1 << 20)
        #expect(e?.text.contains("'first.txt'") == true && e?.text.contains("above the limit") == true)

        // A pax header body over 1 MiB.
        var pax = try paxGlobalHeader([("comment", "x")], typeflag: "x")
        setOctal(&pax, block: 0, field: 124, length: 12, 2 << 20)
        fixChecksum(&pax, block: 0)
        #expect(Self.error(pax + (try Self.sample()))?.text.contains("limit 1048576") == true)

        // Malformed pax records.
        let badPax = try paxGlobalHeader([("comment", "x")], typeflag: "x").enumerated().map { $0.offset == 512 ? UInt8(ascii: "9") : $0.element }
        #expect(Self.error(badPax + (try Self.sample()))?.text.contains("invalid pax header") == true)

        // A non-numeric mode field.
        var mode = try Self.sample()
        mode[100] = UInt8(ascii: "9")
        fixChecksum(&mode, block: 0)
        #expect(Self.error(mode)?.text.contains("invalid mode field") == true)

        // Data after a single zero block.
        let zeroThenData = [UInt8](repeating: 0, count: 512) + (try Self.sample())
        #expect(Self.error(zeroThenData)?.text.contains("zero block") == true)
    }

    @Test func unsupportedTypeflags() throws {
        for (flag, words) in [("S", "GNU sparse"), ("V", "volume label"), ("Q", "'Q'")] {
            var tar = try Self.sample()
            tar[512 * 0 + 156] = Character(flag).asciiValue!
            fixChecksum(&tar, block: 0)
            let e = Self.error(tar)
            #expect(e?.text.contains("unsupported tar entry type") == true && e?.text.contains(words) == true
                && e?.text.contains("'first.txt'") == true, "\(String(describing: e))")
        }
        // GNU's pax sparse format.
        let sparse = try paxGlobalHeader([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0")], typeflag: "x") + Self.sample()
        #expect(Self.error(sparse)?.text.contains("GNU sparse") == true)
    }

    @Test func failedReaderStaysFailed() throws {
        var tar = try Self.sample()
        tar[1536 + 3] ^= 1
        let tr = TarReader(BufferReader(tar))
        #expect(try tr.next()?.name == "first.txt")
        #expect(throws: ArchiveError.self) { try tr.next() }
        #expect(throws: ArchiveError.self) { try tr.next() }
    }
}
