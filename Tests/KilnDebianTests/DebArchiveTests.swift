import Foundation
import KilnArchive
import Testing
@testable import KilnDebian

private let haveDpkgDeb = FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-deb")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/tar")

// MARK: - Helpers (private to this file)

/// A scratch directory removed by `remove()`.
private struct Scratch {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-deb-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ bytes: [UInt8], mode: Int = 0o644) throws {
        let p = file(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
        // chmod, not the umask-filtered create mode: setuid bits included.
        guard chmod(p, mode_t(mode)) == 0 else { throw CocoaError(.fileWriteNoPermission) }
    }
    func read(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: file(name)))) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private struct CommandFailed: Error, CustomStringConvertible {
    let command: String, status: Int32, stderr: String
    var description: String { "`\(command)` exited \(status): \(stderr)" }
}

/// Runs `command` with /bin/sh in `cwd`; returns stdout; throws on a non-zero exit.
@discardableResult
private func shell(_ command: String, in cwd: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    p.currentDirectoryURL = URL(fileURLWithPath: cwd)
    let errPath = cwd + "/.stderr-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let out = Pipe()
    p.standardOutput = out
    p.standardError = errHandle
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    try errHandle.close()
    guard p.terminationStatus == 0 else {
        throw CommandFailed(command: command, status: p.terminationStatus,
                            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }
    return String(decoding: data, as: UTF8.self)
}

private func sha256(_ bytes: [UInt8]) -> String {
    let h = HashingWriter(nil)
    try! h.write(bytes)
    return h.digest.hex
}

/// Deterministic bytes that do not compress.
private func noise(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    return (0..<count).map { _ in
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27
        return UInt8(truncatingIfNeeded: (x &* 0x2545F4914F6CDD1D) >> 56)
    }
}

/// One entry of a data.tar as both `tar -tv` and we can describe it.
private struct Entry: Equatable, CustomStringConvertible {
    var name: String
    var perms: String      // `ls -l` style, with the type letter GNU tar prints (h for hard links)
    var owner: String      // "uid/gid"
    var size: Int64
    var link: String       // symlink or hard-link target, "" otherwise
    var description: String { "\(perms) \(owner) \(size) \(name)\(link.isEmpty ? "" : " -> \(link)")" }
}

private func permString(_ h: TarHeader) -> String {
    let type: Character = switch h.kind {
    case .directory: "d"
    case .symlink: "l"
    case .hardlink: "h"
    case .charDevice: "c"
    case .blockDevice: "b"
    case .fifo: "p"
    case .regular: "-"
    }
    let m = h.mode
    func rwx(_ shift: UInt32, special: UInt32, on: Character, off: Character) -> String {
        let r: Character = m & (4 << shift) != 0 ? "r" : "-"
        let w: Character = m & (2 << shift) != 0 ? "w" : "-"
        let x = m & (1 << shift) != 0
        let xc: Character = m & special != 0 ? (x ? on : off) : (x ? "x" : "-")
        return String([r, w, xc])
    }
    return String(type) + rwx(6, special: 0o4000, on: "s", off: "S") + rwx(3, special: 0o2000, on: "s", off: "S")
        + rwx(0, special: 0o1000, on: "t", off: "T")
}

/// `tar -tv --numeric-owner` lines: "perms uid/gid size date time name[ -> target| link to target]".
private func parseTarListing(_ text: String) -> [Entry] {
    text.split(separator: "\n").map { line in
        let f = line.split(separator: " ", omittingEmptySubsequences: true)
        var rest = f[5...].joined(separator: " ")
        var link = ""
        if let r = rest.range(of: " link to ") {
            link = String(rest[r.upperBound...]); rest = String(rest[..<r.lowerBound])
        } else if let r = rest.range(of: " -> ") {
            link = String(rest[r.upperBound...]); rest = String(rest[..<r.lowerBound])
        }
        return Entry(name: rest, perms: String(f[0]), owner: String(f[1]), size: Int64(f[2])!, link: link)
    }
}

/// Reads every entry of a data.tar stream, with the SHA-256 of each body, then
/// drains the stream so the decompressor checks its trailer.
private func listData(_ reader: ByteReader) throws -> [(Entry, String)] {
    let tar = TarReader(reader)
    var out: [(Entry, String)] = []
    while let h = try tar.next() {
        let sink = BufferWriter()
        try tar.copyBody(to: sink)
        out.append((Entry(name: h.name, perms: permString(h), owner: "\(h.uid)/\(h.gid)", size: h.size, link: h.linkName),
                    sha256(sink.bytes)))
    }
    try tar.skipTrailingData()
    return out
}

private let controlText = """
    Package: kiln-test
    Version: 1.2-3
    Architecture: all
    Maintainer: Kiln Tests <kiln@example.invalid>
    Depends: libc6 (>= 2.34), base-files | dash
    Recommends: ca-certificates
    Description: a package built by the KilnDebian tests
     It has a conffile, a postinst, setuid, links and a directory.

    """
private let postinst = "#!/bin/sh\nset -e\necho configured kiln-test\n"

/// Builds a package tree under `dir/pkg` and a .deb of it with `dpkg-deb -Z<compression>`.
private func buildDeb(_ dir: Scratch, compression: String) throws -> String {
    try dir.write("pkg/DEBIAN/control", Array(controlText.utf8))
    try dir.write("pkg/DEBIAN/conffiles", Array("/etc/kiln-test.conf\n".utf8))
    try dir.write("pkg/DEBIAN/postinst", Array(postinst.utf8), mode: 0o755)
    try dir.write("pkg/etc/kiln-test.conf", Array("setting = 1\n".utf8))
    try dir.write("pkg/usr/bin/kiln-tool", noise(70_000, seed: 1), mode: 0o755)
    try dir.write("pkg/usr/sbin/kiln-suid", noise(5_000, seed: 2), mode: 0o4755)
    try dir.write("pkg/usr/share/doc/kiln-test/notes.txt",
                  Array(String(repeating: "kiln builds images without a daemon.\n", count: 20_000).utf8))
    try shell("""
        chmod 0755 pkg pkg/DEBIAN && mkdir -p pkg/var/lib/kiln-test/empty && chmod 0750 pkg/var/lib/kiln-test/empty && \
        ln -s kiln-tool pkg/usr/bin/kiln-link && ln pkg/usr/bin/kiln-tool pkg/usr/bin/kiln-hard && \
        (cd pkg && find etc usr -type f ! -path 'usr/bin/kiln-hard' | sort | xargs md5sum > DEBIAN/md5sums) && \
        dpkg-deb --root-owner-group -Z\(compression) --build pkg kiln-test.deb >/dev/null
        """, in: dir.path)
    return dir.file("kiln-test.deb")
}

/// A common-format ar archive of `members` (GNU-style names with a trailing "/").
private func arArchive(_ members: [(String, [UInt8])], gnuNames: Bool = false) -> [UInt8] {
    func field(_ s: String, _ width: Int) -> [UInt8] {
        Array(s.utf8) + [UInt8](repeating: 0x20, count: width - s.utf8.count)
    }
    var out = Array("!<arch>\n".utf8)
    for (name, data) in members {
        out += field(gnuNames ? name + "/" : name, 16) + field("0", 12) + field("0", 6) + field("0", 6)
            + field("100644", 8) + field(String(data.count), 10) + Array("`\n".utf8)
        out += data
        if data.count % 2 == 1 { out.append(0x0a) }
    }
    return out
}

/// A gzip-compressed control.tar holding `./control` (and `.`), made with KilnArchive.
private func controlTarGz(_ files: [String: String] = ["control": controlText]) throws -> [UInt8] {
    let sink = BufferWriter()
    let gz = GzipWriter(sink)
    let tar = TarWriter(gz)
    try tar.writeHeader(TarHeader(name: "./", kind: .directory, mode: 0o755))
    for (name, text) in files.sorted(by: { $0.key < $1.key }) {
        let body = Array(text.utf8)
        try tar.writeHeader(TarHeader(name: "./" + name, kind: .regular, mode: 0o644, size: Int64(body.count)))
        try body.withUnsafeBytes { try tar.writeBody($0) }
    }
    try tar.close()
    return sink.bytes
}

/// An uncompressed data.tar with one file.
private func dataTar(_ body: [UInt8]) throws -> [UInt8] {
    let sink = BufferWriter()
    let tar = TarWriter(sink)
    try tar.writeHeader(TarHeader(name: "./hello", kind: .regular, mode: 0o644, size: Int64(body.count)))
    try body.withUnsafeBytes { try tar.writeBody($0) }
    try tar.close()
    return sink.bytes
}

private func debError(_ body: () throws -> Void) -> DebError? {
    do { try body() } catch let e as DebError { return e } catch { Issue.record("not a DebError: \(error)") }
    return nil
}

// MARK: - Tests

@Suite struct DebArchiveTests {
    /// Packages built by the real dpkg-deb with each compression it offers: the
    /// control members are the files packed, and the data stream has the same
    /// bytes as `dpkg-deb --fsys-tarfile` and the same entries as `tar -tv` lists,
    /// matching the files on disk.
    @Test(.enabled(if: haveDpkgDeb), arguments: [("xz", "xz"), ("zstd", "zst"), ("gzip", "gz"), ("none", "none")])
    func readsPackagesBuiltByDpkgDeb(_ option: String, _ expected: String) throws {
        let dir = try Scratch()
        defer { dir.remove() }
        let deb = try buildDeb(dir, compression: option)
        let archive = try DebArchive(path: deb)

        #expect(archive.path == deb)
        #expect(archive.controlMembers.keys.sorted() == ["conffiles", "control", "md5sums", "postinst"])
        #expect(archive.control == controlText)
        #expect(archive.control?.contains("Depends: libc6 (>= 2.34), base-files | dash") == true)
        #expect(archive.controlMembers["conffiles"] == Array("/etc/kiln-test.conf\n".utf8))
        #expect(archive.controlMembers["postinst"] == Array(postinst.utf8))
        #expect(archive.controlMembers["md5sums"] == (try dir.read("pkg/DEBIAN/md5sums")))
        #expect(archive.maintainerScripts == ["postinst"])
        #expect(archive.dataCompression == expected)

        // The data member's size as binutils' ar reports it.
        let arListing = try shell("ar tv kiln-test.deb", in: dir.path)
        let dataLine = try #require(arListing.split(separator: "\n").first { $0.hasSuffix(" data.tar" + (expected == "none" ? "" : "." + expected)) })
        let fields = dataLine.split(separator: " ", omittingEmptySubsequences: true)
        #expect(archive.dataSize == Int64(fields[2]))

        // Byte for byte what dpkg-deb itself extracts.
        let fsysDigest = try shell("dpkg-deb --fsys-tarfile kiln-test.deb | sha256sum", in: dir.path).prefix(64)
        let hasher = HashingWriter(nil)
        try archive.openData().copy(to: hasher)
        #expect(hasher.digest.hex == String(fsysDigest))

        // Entry by entry what tar lists…
        let listed = try listData(archive.openData())
        let tarListing = parseTarListing(try shell("dpkg-deb --fsys-tarfile kiln-test.deb | tar -tv --numeric-owner", in: dir.path))
        #expect(listed.map(\.0) == tarListing)
        let names = Set(listed.map(\.0.name))
        for name in ["./etc/kiln-test.conf", "./usr/bin/kiln-tool", "./usr/bin/kiln-hard", "./usr/bin/kiln-link",
                     "./usr/sbin/kiln-suid", "./var/lib/kiln-test/empty/", "./usr/share/doc/kiln-test/notes.txt"] {
            #expect(names.contains(name), "\(name) missing")
        }

        // …and what was packed: modes, owners (root, --root-owner-group), link
        // targets, sizes and contents.
        for (entry, digest) in listed {
            let onDisk = dir.file("pkg/" + entry.name.dropFirst(2))
            let attrs = try FileManager.default.attributesOfItem(atPath: onDisk)
            #expect(entry.owner == "0/0")
            switch entry.perms.first {
            case "-":
                #expect(entry.size == (attrs[.size] as? NSNumber)?.int64Value)
                #expect(digest == sha256(try dir.read("pkg/" + entry.name.dropFirst(2))), "\(entry.name)")
            case "h":
                // dpkg-deb stores the first name of a hard-linked file in sorted order.
                #expect(Set([entry.name, entry.link]) == ["./usr/bin/kiln-hard", "./usr/bin/kiln-tool"])
            case "l":
                #expect(entry.link == (try FileManager.default.destinationOfSymbolicLink(atPath: onDisk)))
            default:
                #expect(entry.perms.first == "d")
            }
            let mode = (attrs[.posixPermissions] as? NSNumber)?.intValue ?? -1
            if entry.perms.first != "l" {
                #expect(entry.perms.dropFirst() == permString(TarHeader(name: "", kind: .regular, mode: UInt32(mode))).dropFirst(),
                        "\(entry.name)")
            }
        }
        #expect(listed.first { $0.0.name == "./usr/sbin/kiln-suid" }?.0.perms == "-rwsr-xr-x")
        #expect(listed.first { $0.0.name == "./var/lib/kiln-test/empty/" }?.0.perms == "drwxr-x---")
    }

    @Test(.enabled(if: haveDpkgDeb)) func openDataHonoursTheLimit() throws {
        let dir = try Scratch()
        defer { dir.remove() }
        let archive = try DebArchive(path: buildDeb(dir, compression: "xz"))
        let error = debError { try archive.openData(limit: 10_000).copy(to: NullWriter()) }
        #expect(error?.description.contains("exceeds the limit of 10000 bytes") == true)
        #expect(error?.description.contains("kiln-test.deb") == true)
        #expect(error?.description.contains("data.tar.xz") == true)
        // Each call opens a fresh stream from the start.
        #expect(try archive.openData().copy(to: NullWriter()) == archive.openData().copy(to: NullWriter()))
    }

    @Test(.enabled(if: haveDpkgDeb)) func truncatedPackagesAreRejected() throws {
        let dir = try Scratch()
        defer { dir.remove() }
        let bytes = try dir.read(String(buildDeb(dir, compression: "xz").split(separator: "/").last!))
        let dataHeader = try #require(bytes.indices.first { bytes[$0...].starts(with: Array("data.tar.xz".utf8)) })
        let cases: [(Int, String)] = [
            (3, "not a Debian package"),
            (8, "no 'debian-binary' member"),
            (30, "ends inside member 'debian-binary'"),
            (8 + 60 + 2, "ends inside member 'debian-binary'"),
            (dataHeader - 200, "ends inside member 'control.tar.xz'"),
            (dataHeader + 20, "ends inside member 'data.tar.xz'"),
            ((dataHeader + bytes.count) / 2, "ends inside member 'data.tar.xz'"),
            (bytes.count - 1, "ends inside member 'data.tar.xz'"),
        ]
        for (cut, message) in cases {
            try dir.write("cut.deb", Array(bytes.prefix(cut)))
            let error = debError { _ = try DebArchive(path: dir.file("cut.deb")) }
            #expect(error?.description.contains(message) == true, "cut at \(cut): \(error.map(\.description) ?? "no error")")
            #expect(error?.description.hasPrefix(dir.file("cut.deb")) == true)
        }
    }

    @Test func filesThatAreNotPackagesAreRejected() throws {
        let dir = try Scratch()
        defer { dir.remove() }
        try dir.write("text.deb", Array("Package: kiln-test\n".utf8))
        try dir.write("empty.deb", [])
        try dir.write("tar.deb", try dataTar([1, 2, 3]))
        for name in ["text.deb", "empty.deb", "tar.deb"] {
            let error = debError { _ = try DebArchive(path: dir.file(name)) }
            #expect(error?.description == "\(dir.file(name)): not a Debian package (no ar archive magic '!<arch>')")
        }
        let missing = debError { _ = try DebArchive(path: dir.file("absent.deb")) }
        #expect(missing?.description.contains("absent.deb: cannot open") == true)
        // An ar archive, but a static library rather than a package.
        try dir.write("lib.a", arArchive([("foo.o", [1, 2, 3])]))
        #expect(debError { _ = try DebArchive(path: dir.file("lib.a")) }?.description.contains("no 'debian-binary' member") == true)
        // A broken ar header.
        var bad = arArchive([("debian-binary", Array("2.0\n".utf8))])
        bad[8 + 58] = UInt8(ascii: "x")
        try dir.write("bad.deb", bad)
        #expect(debError { _ = try DebArchive(path: dir.file("bad.deb")) }?.description.contains("malformed ar member header at offset 8") == true)
    }

    /// deb(5) rules checked on hand-made archives: GNU "name/" members, "_"
    /// members between the required ones, trailing members, version 2.x only,
    /// the required order, and the compressions.
    @Test func memberRules() throws {
        let dir = try Scratch()
        defer { dir.remove() }
        let payload = Array("hello from a hand-made package\n".utf8)
        let control = try controlTarGz(["control": controlText, "preinst": "#!/bin/sh\n", "config": "#!/bin/sh\n", "triggers": "interest foo\n"])
        let data = try dataTar(payload)
        func open(_ members: [(String, [UInt8])], gnu: Bool = false) throws -> DebArchive {
            try dir.write("t.deb", arArchive(members, gnuNames: gnu))
            return try DebArchive(path: dir.file("t.deb"))
        }
        func failure(_ members: [(String, [UInt8])]) -> String {
            debError { _ = try open(members) }?.description ?? "no error"
        }

        let ok = try open([("debian-binary", Array("2.0\n".utf8)), ("_extra", [1]), ("control.tar.gz", control),
                           ("_more", []), ("data.tar", data), ("trailing", [1, 2, 3])], gnu: true)
        #expect(ok.maintainerScripts == ["config", "preinst"])
        #expect(ok.controlMembers["triggers"] == Array("interest foo\n".utf8))
        #expect(ok.dataCompression == "none")
        #expect(ok.dataSize == Int64(data.count))
        let tar = TarReader(try ok.openData())
        #expect(try tar.next()?.name == "./hello")
        let body = BufferWriter()
        try tar.copyBody(to: body)
        #expect(body.bytes == payload)

        // A future minor version with more lines is fine; another major is not.
        #expect(try open([("debian-binary", Array("2.1\nextra\n".utf8)), ("control.tar.gz", control), ("data.tar", data)]).dataCompression == "none")
        #expect(failure([("debian-binary", Array("3.0\n".utf8)), ("control.tar.gz", control), ("data.tar", data)])
            .contains("unsupported Debian package format version '3.0'"))
        #expect(failure([("debian-binary", Array("!<arch>\n".utf8)), ("control.tar.gz", control), ("data.tar", data)])
            .contains("unsupported Debian package format version"))

        let binary = ("debian-binary", Array("2.0\n".utf8))
        #expect(failure([binary, ("control.tar.gz", control)]).hasSuffix("Debian package has no 'data.tar' member"))
        #expect(failure([binary, ("data.tar", data)]).hasSuffix("Debian package has no 'control.tar' member"))
        #expect(failure([binary]).hasSuffix("Debian package has no 'control.tar' member"))
        #expect(failure([("control.tar.gz", control), binary, ("data.tar", data)]).contains("no 'debian-binary' member"))
        #expect(failure([binary, ("md5sums", []), ("control.tar.gz", control), ("data.tar", data)]).contains("unexpected member 'md5sums'"))
        #expect(failure([binary, ("control.tar.gz", control), ("extra", []), ("data.tar", data)]).contains("unexpected member 'extra'"))
        for name in ["data.tar.bz2", "data.tar.lzma"] {
            #expect(failure([binary, ("control.tar.gz", control), (name, data)])
                == "\(dir.file("t.deb")): member '\(name)' uses an unsupported compression (supported: none, gz, xz, zst)")
        }
        #expect(failure([binary, ("control.tar.bz2", control), ("data.tar", data)]).contains("member 'control.tar.bz2' uses an unsupported compression"))
        // The control tarball must hold "control", and must be what its name says.
        #expect(failure([binary, ("control.tar.gz", try controlTarGz(["postinst": "x"])), ("data.tar", data)])
            .contains("no 'control.tar.gz/control' member"))
        #expect(failure([binary, ("control.tar.xz", control), ("data.tar", data)]).contains("member 'control.tar.xz' is corrupt"))
        var corruptControl = control
        corruptControl[corruptControl.count - 6] ^= 0xff   // the gzip CRC-32
        #expect(failure([binary, ("control.tar.gz", corruptControl), ("data.tar", data)]).contains("member 'control.tar.gz' is corrupt: gzip CRC mismatch"))
    }

    /// A flipped byte in the middle of a compressed data member is caught while
    /// reading `openData()` (the xz Block check, zstd's frame checksum or block
    /// structure, gzip's CRC-32): reading never ends normally with garbage.
    @Test(.enabled(if: haveDpkgDeb), arguments: ["xz", "zstd", "gzip"])
    func corruptDataMemberThrowsWhileReading(_ option: String) throws {
        let dir = try Scratch()
        defer { dir.remove() }
        var bytes = try dir.read(String(buildDeb(dir, compression: option).split(separator: "/").last!))
        let archive = try DebArchive(path: dir.file("kiln-test.deb"))
        let dataStart = bytes.count - Int(archive.dataSize) - Int(archive.dataSize & 1)
        for i in 0..<4 { bytes[dataStart + Int(archive.dataSize) / 2 + i * 97] ^= 0x5a }
        try dir.write("corrupt.deb", bytes)
        // The index and control member are intact: opening works…
        let corrupt = try DebArchive(path: dir.file("corrupt.deb"))
        #expect(corrupt.control == controlText)
        // …the data stream does not.
        do {
            _ = try listData(corrupt.openData())
            Issue.record("a corrupted data.tar (\(option)) was read without an error")
        } catch let error as DebError {
            #expect(error.description.hasPrefix(dir.file("corrupt.deb") + ": member 'data.tar."), "\(error)")
        } catch {
            // The garbage reached the tar parser before the checksum: still an error.
            #expect(error is ArchiveError, "\(error)")
        }
    }
}
