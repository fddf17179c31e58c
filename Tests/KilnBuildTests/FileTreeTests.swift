import Foundation
import Testing
import KilnArchive
@testable import KilnBuild

@Suite struct FileTreeTests {
    func file(_ s: String, mode: UInt32 = 0o644) -> FileNode { FileNode(.file(.inline(Array(s.utf8))), mode: mode) }

    @Test func laterEntriesWinAndParentsAreCreated() {
        var t = FileTree()
        t.insert("/a/b/c", file("1"))
        #expect(t["a"]?.isDirectory == true)
        #expect(t["a/b"]?.isDirectory == true)
        t.insert("a/b/c", file("2"))
        #expect(t["a/b/c"] == file("2"))
        // A file over a directory removes the subtree; a directory over one keeps children.
        t.insert("a/b", .directory(mode: 0o700))
        #expect(t["a/b/c"] != nil)
        #expect(t["a/b"]?.mode == 0o700)
        t.insert("a", file("x"))
        #expect(t["a/b/c"] == nil)
        #expect(t.paths == ["a"])
    }

    @Test func entriesAreSortedLikeTarSortNameWithParentsFirst() {
        var t = FileTree()
        for p in ["a-b", "a/z", "a/b/c", "B", "a.txt"] { t.insert(p, file(p)) }
        let names = t.entries(mtime: 5).map(\.header.name)
        #expect(names == ["B", "a/", "a/b/", "a/b/c", "a/z", "a-b", "a.txt"])
        #expect(t.entries(mtime: 5).allSatisfy { $0.header.mtime == 5 && $0.header.uid == 0 })
    }

    @Test func sharedInodesBecomeHardLinksToTheFirstPath() {
        var t = FileTree()
        let id = FileIdentity(device: 1, inode: 42)
        let n = FileNode(.file(.host(path: "/x", size: 3, identity: id)), mode: 0o644)
        t.insert("z/second", n)
        t.insert("a/first", n)
        var other = n
        other.mode = 0o600  // different metadata cannot share an inode
        t.insert("m/third", other)
        let e = t.entries(mtime: 0)
        let byName = Dictionary(uniqueKeysWithValues: e.map { ($0.header.name, $0.header) })
        #expect(byName["a/first"]?.kind == .regular)
        #expect(byName["z/second"]?.kind == .hardlink)
        #expect(byName["z/second"]?.linkName == "a/first")
        #expect(byName["m/third"]?.kind == .regular)
    }

    @Test func permsGlobsApplyAndReportUnmatchedPatterns() {
        var t = FileTree()
        t.insert("data/x/y.txt", file("y"))
        t.insert("data/z", file("z"))
        t.insert("bin/tool", file("t", mode: 0o755))
        let loc = SourceLocation(file: "s.yaml", line: 1)
        let unmatched = t.apply([
            Spec.Permission(path: "/data/**", mode: 0o600, uid: 5, location: loc),
            Spec.Permission(path: "/bin/*", mode: 0o4755, location: loc),
            Spec.Permission(path: "/nope/*", gid: 3, location: loc),
        ])
        #expect(unmatched.map(\.path) == ["/nope/*"])
        #expect(t["data/x/y.txt"]?.mode == 0o600 && t["data/x/y.txt"]?.uid == 5)
        #expect(t["data"]?.uid == 0)  // a trailing `**` matches below /data, not /data itself
        #expect(t["bin/tool"]?.mode == 0o4755)
    }

    @Test func usersWriteShadowFilesAndOwnedHomes() {
        var t = FileTree()
        let loc = SourceLocation(file: "s.yaml", line: 1)
        t.addUsers([Spec.User(name: "app", uid: 1000, gid: 1000, home: "/home/app", shell: "/bin/sh", location: loc)],
                   groups: [Spec.Group(name: "staff", gid: 50, members: ["app"], location: loc)])
        func text(_ p: String) -> String {
            guard case .file(.inline(let b))? = t[p]?.content else { return "" }
            return String(decoding: b, as: UTF8.self)
        }
        #expect(text("etc/passwd") == "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n")
        #expect(text("etc/group") == "root:x:0:\nstaff:x:50:app\napp:x:1000:\n")
        #expect(text("etc/shadow").hasPrefix("root:!:"))
        #expect(text("etc/gshadow").contains("staff:!::app"))
        #expect(t["home/app"]?.uid == 1000 && t["home/app"]?.isDirectory == true)
        #expect(t["etc/shadow"]?.mode == 0o640)
    }

    @Test func hostModesAreNormalised() throws {
        let dir = NSTemporaryDirectory() + "kiln-ft-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/d", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/d/exec", contents: Data("x".utf8), attributes: [.posixPermissions: 0o700])
        FileManager.default.createFile(atPath: dir + "/d/plain", contents: Data("y".utf8), attributes: [.posixPermissions: 0o600])
        try FileManager.default.createSymbolicLink(atPath: dir + "/d/link", withDestinationPath: "/etc/passwd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var t = FileTree()
        try t.addHost(dir + "/d", at: "/", xattrs: false)
        #expect(t["exec"]?.mode == 0o755)
        #expect(t["plain"]?.mode == 0o644)
        #expect(t["link"]?.content == .symlink("/etc/passwd"))
    }

    @Test func treeLayerSizeIsExactAndStreamIsDeterministic() throws {
        var t = FileTree()
        t.insert("a/" + String(repeating: "n", count: 150), file(String(repeating: "x", count: 1000)))
        t.insert("b", FileNode(.symlink(String(repeating: "t", count: 120)), mode: 0o777))
        let layer = try TreeLayer(tree: t, mtime: 1)
        let w1 = BufferWriter(), w2 = BufferWriter()
        try layer.writeTar(to: w1)
        try layer.writeTar(to: w2)
        #expect(Int64(w1.bytes.count) == layer.uncompressedSize)
        #expect(w1.bytes == w2.bytes)
        let r = TarReader(BufferReader(w1.bytes))
        var names: [String] = []
        while let h = try r.next() { names.append(h.name) }
        #expect(names == ["a/", "a/" + String(repeating: "n", count: 150), "b"])
    }
}
