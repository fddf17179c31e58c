import Foundation
import KilnArchive
@testable import KilnImage
import KilnOCI
import Testing

/// A layer tar built in memory.
struct LayerTar {
    var entries: [(TarHeader, [UInt8])] = []

    mutating func dir(_ name: String, mode: UInt32 = 0o755, uid: Int = 0) {
        entries.append((TarHeader(name: name + "/", kind: .directory, mode: mode, uid: uid, gid: uid), []))
    }
    mutating func file(_ name: String, _ text: String, mode: UInt32 = 0o644, xattrs: [String: [UInt8]] = [:]) {
        let b = Array(text.utf8)
        entries.append((TarHeader(name: name, kind: .regular, mode: mode, size: Int64(b.count), mtime: 1234, xattrs: xattrs), b))
    }
    mutating func symlink(_ name: String, _ target: String) {
        entries.append((TarHeader(name: name, kind: .symlink, mode: 0o777, linkName: target), []))
    }
    mutating func hardlink(_ name: String, _ target: String) {
        entries.append((TarHeader(name: name, kind: .hardlink, mode: 0o644, linkName: target), []))
    }
    mutating func whiteout(_ name: String) { file(name, "") }

    var bytes: [UInt8] {
        let out = BufferWriter()
        let tw = TarWriter(out)
        for (h, b) in entries {
            try! tw.writeHeader(h)
            if !b.isEmpty { try! b.withUnsafeBytes { try tw.writeBody($0) } }
        }
        try! tw.close()
        return out.bytes
    }
}

/// A stored layer over bytes in memory, with digests that can be made to lie.
struct MemoryLayer: StoredLayer {
    var blob: [UInt8]
    var descriptor: Descriptor
    var diffID: Digest

    init(tar: [UInt8], compression: Compression = .none) {
        let out = BufferWriter()
        let w = compression.writer(out)
        try! tar.withUnsafeBytes { try w.write($0) }
        try! w.finish()
        blob = out.bytes
        descriptor = Descriptor(mediaType: layerMediaType(compression), digest: .sha256(blob), size: Int64(blob.count))
        diffID = .sha256(tar)
    }

    func openBlob() throws -> ByteReader { BufferReader(blob) }
}

func tempPath(_ hint: String) -> String {
    NSTemporaryDirectory() + "kiln-rootfs-test-\(hint)-\(UUID().uuidString)"
}

func model(_ layers: [LayerTar]) throws -> Rootfs {
    let fs = try Rootfs(spoolDirectory: tempPath("spool"))
    for (i, l) in layers.enumerated() { try fs.apply(tarStream: BufferReader(l.bytes), what: "layer \(i + 1)") }
    return fs
}

func tarListing(_ fs: Rootfs, mtime: Int64? = 0) throws -> [TarHeader] {
    let out = BufferWriter()
    try fs.writeTar(to: out, mtime: mtime)
    let r = TarReader(BufferReader(out.bytes))
    var hs: [TarHeader] = []
    while let h = try r.next() { hs.append(h) }
    return hs
}

@Suite struct RootfsTests {
    @Test func whiteoutsDeleteLowerFilesAndSubtrees() throws {
        var l1 = LayerTar()
        l1.dir("etc"); l1.file("etc/a", "a"); l1.file("etc/b", "b")
        l1.dir("opt"); l1.dir("opt/sub"); l1.file("opt/sub/x", "x")
        var l2 = LayerTar()
        l2.whiteout("etc/.wh.a")
        l2.whiteout(".wh.opt")
        l2.whiteout("etc/.wh.never-existed")
        let fs = try model([l1, l2])
        #expect(fs.paths == ["etc/", "etc/b"])
    }

    @Test func opaqueDirectoryHidesLowerChildrenWhereverItAppears() throws {
        var l1 = LayerTar()
        l1.dir("d"); l1.file("d/old", "o"); l1.dir("d/sub"); l1.file("d/sub/deep", "x")
        var l2 = LayerTar()
        // The marker comes after entries of its own layer: they stay.
        l2.dir("d"); l2.file("d/new", "n"); l2.dir("d/sub"); l2.whiteout("d/.wh..wh..opq"); l2.file("d/later", "l")
        let fs = try model([l1, l2])
        #expect(fs.paths == ["d/", "d/later", "d/new", "d/sub/"])
    }

    @Test func laterLayersReplaceAndMergeDirectories() throws {
        var l1 = LayerTar()
        l1.dir("d", mode: 0o700); l1.file("d/f", "one"); l1.file("x", "file")
        var l2 = LayerTar()
        l2.dir("d", mode: 0o755); l2.file("d/f", "two"); l2.dir("x"); l2.file("x/inside", "i")
        let fs = try model([l1, l2])
        #expect(fs.paths == ["d/", "d/f", "x/", "x/inside"])
        #expect(try fs.contents(of: "/d/f") == Array("two".utf8))
        #expect(fs.metadata(at: "d")?.mode == 0o755)
    }

    @Test func tarOutputIsSortedNormalisedAndKeepsHardLinks() throws {
        var l1 = LayerTar()
        l1.dir("b"); l1.file("b/z", "zz", mode: 0o4755, xattrs: ["user.k": Array("v".utf8)])
        l1.hardlink("a-link", "b/z"); l1.symlink("s", "b/z"); l1.dir("b/a")
        let fs = try model([l1])
        let hs = try tarListing(fs)
        #expect(hs.map(\.name) == ["a-link", "b/", "b/a/", "b/z", "s"])
        #expect(hs[0].kind == .regular && hs[0].size == 2 && hs[0].mode == 0o4755)
        #expect(hs[3].kind == .hardlink && hs[3].linkName == "a-link")
        #expect(hs[0].xattrs["user.k"] == Array("v".utf8))
        #expect(hs.allSatisfy { $0.mtime == 0 })
        #expect(try tarListing(fs, mtime: nil)[0].mtime == 1234)
        // Same input, same bytes.
        let a = BufferWriter(), b = BufferWriter()
        try fs.writeTar(to: a, mtime: 0)
        try model([l1]).writeTar(to: b, mtime: 0)
        #expect(a.bytes == b.bytes)
    }

    @Test func replacingOneHardLinkedPathBreaksTheLink() throws {
        var l1 = LayerTar()
        l1.file("a", "shared"); l1.hardlink("b", "a")
        var l2 = LayerTar()
        l2.file("a", "new")
        let fs = try model([l1, l2])
        #expect(try fs.contents(of: "a") == Array("new".utf8))
        #expect(try fs.contents(of: "b") == Array("shared".utf8))
        #expect(try tarListing(fs).allSatisfy { $0.kind == .regular })
    }

    @Test func hostileNamesAreRejected() throws {
        func rejects(_ build: (inout LayerTar) -> Void, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
            var l = LayerTar()
            build(&l)
            #expect(sourceLocation: sourceLocation) { try model([l]) } throws: { error in
                "\(error)".contains(message)
            }
        }
        rejects({ $0.file("../escape", "x") }, "contains \"..\"")
        rejects({ $0.file("a/../../escape", "x") }, "contains \"..\"")
        rejects({ $0.file("/etc/passwd", "x") }, "absolute name")
        rejects({ $0.file("f", "x"); $0.file("f/g", "y") }, "which is not a directory")
        rejects({ $0.file("f", "x"); $0.symlink("l", "f"); $0.file("l/g", "y") }, "\"l/g\" is below \"f\", which is not a directory")
        rejects({ $0.symlink("a", "b"); $0.symlink("b", "a"); $0.file("a/x", "y") }, "too many levels of symbolic links")
        rejects({ $0.symlink("self", "self/x"); $0.file("self/y", "y") }, "too many levels of symbolic links")
        rejects({ $0.file("dup", "1"); $0.file("./dup", "2") }, "duplicate entry")
        rejects({ $0.hardlink("h", "missing") }, "not in the image")
        rejects({ $0.dir("d"); $0.hardlink("h", "d") }, "directory")
        rejects({ $0.hardlink("h", "../../etc/shadow") }, "contains \"..\"")
    }

    /// Entries below symlinks land where the symlink leads inside the root, as umoci
    /// (go-securejoin) unpacks them.
    @Test func entriesBelowSymlinksResolveInsideTheRoot() throws {
        var l1 = LayerTar()
        l1.dir("etc"); l1.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n")
        l1.symlink("abs", "/etc"); l1.symlink("up", "../../.."); l1.symlink("rel", "usr/lib")
        l1.symlink("chain", "abs"); l1.symlink("dotdot", "etc/../../../opt")
        var l2 = LayerTar()
        l2.file("abs/passwd", "replaced\n")         // ROOT/etc/passwd, never the host's
        l2.file("up/x", "x")                        // `..` stops at the root: ROOT/x
        l2.file("up/up/etc/y", "y")                 // ROOT/etc/y
        l2.file("rel/libz.so", "z")                 // ROOT/usr/lib created on the way
        l2.file("chain/z", "c")                     // two symlinks: ROOT/etc/z
        l2.dir("dotdot/sub")                        // ROOT/opt/sub
        l2.hardlink("h", "abs/passwd")              // the target's parents resolved too
        l2.hardlink("hs", "abs")                    // a hard link to a symlink links the symlink
        let fs = try model([l1, l2])
        #expect(fs.paths == ["abs", "chain", "dotdot", "etc/", "etc/passwd", "etc/y", "etc/z", "h", "hs", "opt/", "opt/sub/",
                             "rel", "up", "usr/", "usr/lib/", "usr/lib/libz.so", "x"])
        #expect(try fs.contents(of: "etc/passwd") == Array("replaced\n".utf8))
        #expect(try fs.contents(of: "h") == Array("replaced\n".utf8))
        #expect(fs.item(at: "hs") == .symlink("/etc"))
        // Reading back: parents followed inside the root, the last symlink only by contents.
        #expect(fs.item(at: "abs") == .symlink("/etc"))
        #expect(fs.item(at: "up/up/abs/passwd") == .regular(size: 9))
        #expect(try fs.contents(of: "/chain/passwd") == Array("replaced\n".utf8))
        #expect(fs.metadata(at: "rel/libz.so")?.mode == 0o644)
        // A whiteout below a symlink removes what the symlink leads to.
        var l3 = LayerTar()
        l3.whiteout("abs/.wh.y")
        l3.whiteout("up/.wh.x")
        try fs.apply(tarStream: BufferReader(l3.bytes), what: "layer 3")
        #expect(fs.item(at: "etc/y") == nil && fs.item(at: "x") == nil)
        // Written out, every file is inside the directory, and the symlinks are data.
        let out = tempPath("resolved")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try fs.writeDirectory(at: out, mtime: 0)
        #expect(try String(contentsOfFile: out + "/etc/passwd", encoding: .utf8) == "replaced\n")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/abs") == "/etc")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/hs") == "/etc")
        #expect(FileManager.default.fileExists(atPath: out + "/usr/lib/libz.so"))
    }

    @Test func storedLayersAreCheckedAgainstTheirDigests() throws {
        var l = LayerTar()
        l.file("f", "data")
        let good = MemoryLayer(tar: l.bytes, compression: .gzip)
        try Rootfs(spoolDirectory: tempPath("ok")).apply(good, what: "layer")

        var badDiff = good
        badDiff.diffID = .sha256(Array("other".utf8))
        #expect { try Rootfs(spoolDirectory: tempPath("d")).apply(badDiff, what: "layer") } throws: { "\($0)".contains("diffID") && "\($0)".contains("digest mismatch") }

        var badBlob = good
        badBlob.descriptor.digest = .sha256(Array("other".utf8))
        #expect { try Rootfs(spoolDirectory: tempPath("b")).apply(badBlob, what: "layer") } throws: { "\($0)".contains("blob: digest mismatch") }

        var badSize = good
        badSize.descriptor.size += 1
        #expect { try Rootfs(spoolDirectory: tempPath("s")).apply(badSize, what: "layer") } throws: { "\($0)".contains("manifest says") }
    }

    @Test func decompressionBombsStopAtTheLimit() throws {
        var l = LayerTar()
        // Each entry is under the limit; together they are not.
        for i in 0..<4 { l.file("zeros\(i)", String(repeating: "\0", count: 1 << 20)) }
        let layer = MemoryLayer(tar: l.bytes, compression: .gzip)
        #expect(layer.blob.count < 64 << 10)
        let fs = try Rootfs(spoolDirectory: tempPath("bomb"), limits: RootfsLimits(maxLayerSize: 1 << 20))
        #expect { try fs.apply(layer, what: "layer") } throws: { "\($0)".contains("exceeds the limit of 1048576 bytes") }
        // An entry claiming more than the limit is refused from its header alone.
        var big = LayerTar()
        big.file("big", String(repeating: "\0", count: 2 << 20))
        #expect { try Rootfs(spoolDirectory: tempPath("big"), limits: RootfsLimits(maxLayerSize: 1 << 20)).apply(MemoryLayer(tar: big.bytes, compression: .gzip), what: "layer") } throws: { "\($0)".contains("above the limit") }
        // Raising the limit lets it through.
        try Rootfs(spoolDirectory: tempPath("ok"), limits: RootfsLimits(maxLayerSize: 8 << 20)).apply(layer, what: "layer")
    }

    @Test func truncatedAndCorruptStreamsFail() throws {
        var l = LayerTar()
        l.file("f", String(repeating: "abc", count: 10000))
        for c in [Compression.gzip, .zstd] {
            var cut = MemoryLayer(tar: l.bytes, compression: c)
            cut.blob.removeLast(cut.blob.count / 2)
            #expect(throws: (any Error).self) { try Rootfs(spoolDirectory: tempPath("t")).apply(cut, what: "layer") }
            var flipped = MemoryLayer(tar: l.bytes, compression: c)
            flipped.blob[flipped.blob.count / 2] ^= 0xff
            #expect(throws: (any Error).self) { try Rootfs(spoolDirectory: tempPath("c")).apply(flipped, what: "layer") }
        }
        var plain = l.bytes
        plain.removeLast(2000)
        #expect { try model([]).apply(tarStream: BufferReader(plain), what: "layer") } throws: { "\($0)".contains("truncated") }
    }

    @Test func directoryOutputIsCreatedFreshAndStaysInside() throws {
        var l = LayerTar()
        l.dir("etc"); l.file("etc/f", "hello", mode: 0o600); l.hardlink("etc/g", "etc/f")
        l.symlink("root-link", "/"); l.symlink("up", "../../..")
        l.dir("ro", mode: 0o555); l.file("ro/inside", "i")
        let fs = try model([l])
        let out = tempPath("dir")
        defer { try? FileManager.default.removeItem(atPath: out) }
        try fs.writeDirectory(at: out, mtime: 0)
        #expect(try String(contentsOfFile: out + "/etc/f", encoding: .utf8) == "hello")
        let a = try FileManager.default.attributesOfItem(atPath: out + "/etc/f")
        let b = try FileManager.default.attributesOfItem(atPath: out + "/etc/g")
        #expect(a[.systemFileNumber] as? Int == b[.systemFileNumber] as? Int)
        #expect((a[.posixPermissions] as? Int) == 0o600)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/root-link") == "/")
        #expect((try FileManager.default.attributesOfItem(atPath: out + "/ro")[.posixPermissions] as? Int) == 0o555)
        #expect((try FileManager.default.attributesOfItem(atPath: out + "/ro")[.modificationDate] as? Date) == Date(timeIntervalSince1970: 0))
        // An existing path is never written into.
        #expect { try fs.writeDirectory(at: out, mtime: 0) } throws: { "\($0)".contains("already exists") }
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: out + "/ro")
    }
}
