import Foundation
import KilnArchive
import KilnImage
import KilnOCI
import Testing
@testable import KilnBuild

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory, removed when the value goes.
final class BaseSafetyScratch {
    let path: String
    init() {
        var template = Array("/tmp/kiln-basesafety-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = String(cString: p!)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func sh(_ script: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-ec", script]
        p.currentDirectoryURL = URL(fileURLWithPath: path)
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "failed: \(script)")
    }
}

/// A small merged-/usr base as a flattened Rootfs: `lib -> usr/lib`, `bin -> usr/bin`,
/// `/tmp` 1777, `usr/lib/x86_64-linux-gnu/{libc.so.6,other}`, `etc/os-release`, and
/// `var/run -> /run` (an absolute symlink).
private func makeBase(_ s: BaseSafetyScratch) throws -> Rootfs {
    try s.sh("""
        mkdir -p root/usr/lib/x86_64-linux-gnu root/usr/bin root/etc root/tmp root/run root/var
        printf 'base libc' > root/usr/lib/x86_64-linux-gnu/libc.so.6
        printf 'other' > root/usr/lib/x86_64-linux-gnu/other
        printf 'ID=test\\n' > root/etc/os-release
        printf '#!/bin/sh\\n' > root/usr/bin/sh && chmod 755 root/usr/bin/sh
        chmod 1777 root/tmp
        ln -s usr/lib root/lib && ln -s usr/bin root/bin && ln -s /run root/var/run
        tar --sort=name --owner=0 --group=0 --numeric-owner -C root -cf base.tar .
        """)
    let fs = try Rootfs(spoolDirectory: s.path + "/spool")
    try fs.apply(tarStream: try FileReader(path: s.path + "/base.tar"), what: "base")
    return fs
}

private func file(_ bytes: String, mode: UInt32 = 0o644) -> FileNode {
    FileNode(.file(.inline(Array(bytes.utf8))), mode: mode)
}

@Suite struct PathResolutionTests {
    let links: [String: String] = ["lib": "usr/lib", "abs": "/usr/lib", "up": "../../..", "loop": "loop",
                                   "usr/lib/self": "."]
    func kind(_ p: String) -> ViewKind? {
        if let t = links[p] { return .symlink(t) }
        return ["usr", "usr/lib"].contains(p) ? .directory : nil
    }

    @Test func parentsAreFollowedRelativeAndAbsolute() throws {
        #expect(try FileTree.resolve("lib/x86_64-linux-gnu/foo", followFinal: false, kind: kind) == "usr/lib/x86_64-linux-gnu/foo")
        #expect(try FileTree.resolve("abs/foo", followFinal: false, kind: kind) == "usr/lib/foo")
        #expect(try FileTree.resolve("usr/lib/self/self/x", followFinal: false, kind: kind) == "usr/lib/x")
    }

    @Test func theFinalComponentOnlyWhenAsked() throws {
        #expect(try FileTree.resolve("lib", followFinal: false, kind: kind) == "lib")
        #expect(try FileTree.resolve("lib", followFinal: true, kind: kind) == "usr/lib")
    }

    @Test func dotDotNeverLeavesTheRoot() throws {
        #expect(try FileTree.resolve("up/etc/passwd", followFinal: false, kind: kind) == "etc/passwd")
    }

    @Test func permsPatternsGoThroughSymlinksUpToTheirFirstGlob() throws {
        #expect(try FileTree.resolvePattern("/lib/x86_64-linux-gnu/*.so", kind: kind) == "/usr/lib/x86_64-linux-gnu/*.so")
        #expect(try FileTree.resolvePattern("/lib/foo.txt", kind: kind) == "/usr/lib/foo.txt")
        #expect(try FileTree.resolvePattern("/lib", kind: kind) == "/lib")
        #expect(try FileTree.resolvePattern("/**/lib/x", kind: kind) == "/**/lib/x")
    }

    @Test func loopsAreAnError() {
        #expect(throws: BuildError.self) { try FileTree.resolve("loop/x", followFinal: false, kind: kind) }
    }
}

@Suite struct ResolvedMergeTests {
    @Test func aFileBelowABaseSymlinkGoesThroughIt() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        var item = FileTree()
        item.insert("lib/x86_64-linux-gnu/foo.txt", file("foo"))
        item.insert("var/run/app.pid", file("1"))
        var tree = FileTree()
        let placed = try tree.mergeResolving(item, below: ImageView(base: base))
        #expect(placed["lib/x86_64-linux-gnu/foo.txt"] == "usr/lib/x86_64-linux-gnu/foo.txt")
        #expect(tree["usr/lib/x86_64-linux-gnu/foo.txt"] != nil)
        #expect(tree["run/app.pid"] != nil)
        // The base's symlinks are never turned into directories.
        #expect(tree["lib"] == nil && tree["var/run"] == nil)
    }

    @Test func aDirectoryOnASymlinkToADirectoryGoesIntoIt() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        var item = FileTree()
        item.insert("lib", .directory(mode: 0o700))
        item.insert("lib/extra", file("x"))
        var tree = FileTree()
        try tree.mergeResolving(item, below: ImageView(base: base))
        #expect(tree["lib"] == nil)
        #expect(tree["usr/lib"]?.mode == 0o700)
        #expect(tree["usr/lib/extra"] != nil)
    }

    @Test func aFileOnASymlinkReplacesTheSymlinkItself() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        var item = FileTree()
        item.insert("lib", file("not a directory"))
        var tree = FileTree()
        try tree.mergeResolving(item, below: ImageView(base: base))
        #expect(tree["lib"]?.content == .file(.inline(Array("not a directory".utf8))))
    }

    @Test func aSymlinkAnEarlierItemProvidesIsFollowedByLaterOnes() throws {
        var first = FileTree()
        first.insert("lib", FileNode(.symlink("usr/lib"), mode: 0o777))
        first.insert("usr/lib/a", file("a"))
        var second = FileTree()
        second.insert("lib/b", file("b"))
        var tree = FileTree()
        try tree.mergeResolving(first, below: ImageView())
        try tree.mergeResolving(second, below: ImageView())
        #expect(tree["lib"]?.content == .symlink("usr/lib"))
        #expect(tree["usr/lib/b"] != nil && tree["usr/lib/a"] != nil)
    }

    @Test func anArchiveMemberBelowASymlinkOfTheSameArchiveGoesThroughIt() throws {
        let s = BaseSafetyScratch()
        try s.sh("""
            python3 - <<'PY'
            import io, tarfile
            with tarfile.open('a.tar', 'w') as t:
                d = tarfile.TarInfo('usr/lib'); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
                l = tarfile.TarInfo('lib'); l.type = tarfile.SYMTYPE; l.linkname = 'usr/lib'; t.addfile(l)
                f = tarfile.TarInfo('lib/foo'); f.size = 3; t.addfile(f, io.BytesIO(b'foo'))
            PY
            """)
        var tree = FileTree()
        try tree.addArchive(s.path + "/a.tar", at: "/", staging: try Staging(), xattrs: false, key: "contents[0].archive")
        #expect(tree["lib"]?.content == .symlink("usr/lib"))
        #expect(tree["usr/lib/foo"] != nil)
    }

    @Test func aPackageSymlinkBelowIsFollowed() throws {
        var packages = FileTree()
        packages.insert("sbin", FileNode(.symlink("usr/sbin"), mode: 0o777))
        packages.insert("usr/sbin", .directory())
        var item = FileTree()
        item.insert("sbin/tool", file("t", mode: 0o755))
        var tree = FileTree()
        try tree.mergeResolving(item, below: ImageView(base: nil, trees: [packages]))
        #expect(tree["usr/sbin/tool"] != nil && tree["sbin"] == nil)
    }
}

@Suite struct ConflictTests {
    func builder(_ s: BaseSafetyScratch, items: String, extra: String = "") throws -> ImageBuilder {
        let spec = try Spec.parse(text: "name: t/x\nfromImage: oci:\(s.path)/none\n\(extra)contents:\n\(items)", path: s.path + "/image.yaml")
        return ImageBuilder(spec: spec, staging: try Staging())
    }

    @Test func identicalFilesAreLeftOutAndDirectoriesAsInTheBaseToo() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - source: ./x\n")
        var tree = FileTree()
        tree.insert("usr/lib/x86_64-linux-gnu/libc.so.6", file("base libc"))
        tree.insert("lib", FileNode(.symlink("usr/lib"), mode: 0o777))
        tree.insert("usr/lib/x86_64-linux-gnu/new", file("new"))
        let prov: [String: Set<Int>] = Dictionary(uniqueKeysWithValues: tree.paths.map { ($0, [0]) })
        ImageBuilder.adoptBaseDirectories(&tree, base: base)
        try b.settleAgainstBase(&tree, provenance: prov, base: base)
        #expect(tree["usr/lib/x86_64-linux-gnu/libc.so.6"] == nil)
        #expect(tree["lib"] == nil)
        #expect(tree["usr/lib/x86_64-linux-gnu/new"] != nil)

        var same = FileTree()
        same.insert("etc/os-release", file("ID=test\n"))
        try b.settleAgainstBase(&same, provenance: ["etc/os-release": [0]], base: base)
        #expect(same.paths.isEmpty, "an all-identical item leaves nothing, not even its parents: \(same.paths)")
    }

    @Test func aDifferentFileIsAnErrorNamingFivePathsTheItemAndTheWayOut() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - source: ./a\n  - source: ./b\n")
        var tree = FileTree()
        var prov: [String: Set<Int>] = [:]
        for name in ["libc.so.6", "other"] {
            tree.insert("usr/lib/x86_64-linux-gnu/" + name, file("host " + name))
            prov["usr/lib/x86_64-linux-gnu/" + name] = [1]
        }
        for name in ["etc/os-release", "usr/bin/sh", "tmp", "lib", "var/run"] {
            tree.insert(name, file("x"))
            prov[name] = [1]
        }
        do {
            try b.settleAgainstBase(&tree, provenance: prov, base: base)
            Issue.record("no error")
        } catch let e as BuildError {
            #expect(e.message.hasPrefix(s.path + "/image.yaml:5: contents[1] would replace 7 files of the base"), "\(e.message)")
            #expect(e.message.contains("/etc/os-release, /lib, /tmp, /usr/bin/sh, /usr/lib/x86_64-linux-gnu/libc.so.6 and 2 more"), "\(e.message)")
            #expect(e.message.contains("onConflict: replace") && e.message.contains("onConflict: keep"))
        }
    }

    @Test func aModeOrOwnerDifferenceIsAConflictToo() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - source: ./a\n")
        var tree = FileTree()
        tree.insert("etc/os-release", file("ID=test\n", mode: 0o600))
        #expect(throws: BuildError.self) { try b.settleAgainstBase(&tree, provenance: ["etc/os-release": [0]], base: base) }
    }

    @Test func replaceKeepsTheItemsAndKeepKeepsTheBases() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - {source: ./a, onConflict: replace}\n  - {source: ./b, onConflict: keep}\n")
        var tree = FileTree()
        tree.insert("etc/os-release", file("ID=mine\n"))
        tree.insert("usr/lib/x86_64-linux-gnu/other", file("mine"))
        try b.settleAgainstBase(&tree, provenance: ["etc/os-release": [0], "usr/lib/x86_64-linux-gnu/other": [0, 1]], base: base)
        #expect(tree["etc/os-release"] != nil)
        // The last item that brings a path decides.
        #expect(tree["usr/lib/x86_64-linux-gnu/other"] == nil)

        let all = try builder(s, items: "  - source: ./a\n", extra: "onConflict: replace\n")
        var t2 = FileTree()
        t2.insert("etc/os-release", file("ID=mine\n"))
        try all.settleAgainstBase(&t2, provenance: ["etc/os-release": [0]], base: base)
        #expect(t2["etc/os-release"] != nil)
    }

    @Test func directoriesTakeTheBasesModeAndAreNeverConflicts() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - source: ./a\n")
        var tree = FileTree()
        tree.insert("tmp", .directory(mode: 0o755))
        tree.insert("tmp/mine", file("m"))
        ImageBuilder.adoptBaseDirectories(&tree, base: base)
        try b.settleAgainstBase(&tree, provenance: ["tmp": [0], "tmp/mine": [0]], base: base)
        #expect(tree["tmp"]?.mode == 0o1777)
        #expect(tree["tmp/mine"] != nil)
    }

    @Test func pathsNoItemBroughtAreNotChecked() throws {
        let s = BaseSafetyScratch()
        let base = try makeBase(s)
        let b = try builder(s, items: "  - source: ./a\n")
        var tree = FileTree()
        tree.insert("etc/os-release", file("generated by Kiln\n"))
        try b.settleAgainstBase(&tree, provenance: [:], base: base)
        #expect(tree["etc/os-release"] != nil)
    }
}

@Suite struct IsolatedClosureTests {
    @Test func theProgramAndItsClosureGoIntoAPrivateDirectoryWithALauncher() throws {
        let iso = try IsolatedClosure.make(of: "/bin/ls", target: nil, xattrs: false)
        #expect(iso.directory.hasPrefix("opt/kiln/") && iso.directory.count == "opt/kiln/".count + 12)
        #expect(iso.launcher == "bin/ls")
        let outside = iso.tree.paths.filter { !$0.hasPrefix(iso.directory) && !"opt/kiln".hasPrefix($0) && $0 != "bin" && $0 != "bin/ls" }
        #expect(outside.isEmpty, "\(outside)")
        guard case .file(.inline(let bytes))? = iso.tree["bin/ls"]?.content else {
            Issue.record("no launcher")
            return
        }
        // On x86-64 a static ELF launcher (no shell needed), naming the bundled loader,
        // its library path and the program.
        #expect(!iso.needsShell)
        #expect(Array(bytes.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])
        let strings = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(strings.contains { $0.hasPrefix("/\(iso.directory)/") && $0.hasSuffix("ld-linux-x86-64.so.2") }, "\(strings)")
        #expect(strings.contains("--library-path"))
        #expect(strings.contains("/\(iso.directory)/bin/ls") || strings.contains("/\(iso.directory)/usr/bin/ls"), "\(strings)")
        // The same closure, the same directory.
        #expect(try IsolatedClosure.make(of: "/bin/ls", target: "/usr/local/bin/", xattrs: false).directory == iso.directory)
    }

    /// Runs a launcher file with `args`; its exit status and output.
    func launch(_ bytes: [UInt8], _ args: [String], in s: BaseSafetyScratch) throws -> (Int32, String) {
        let path = s.path + "/launcher"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func theLauncherExecsTheLoaderWithItsArgumentsAndTheCallers() throws {
        let s = BaseSafetyScratch()
        let loader = "/lib64/ld-linux-x86-64.so.2"
        let elf = IsolatedLauncher.x86_64(before: [loader, "--library-path", "/lib/x86_64-linux-gnu", "--argv0"],
                                          argv0: true, after: ["/bin/echo"])
        #expect(try launch(elf, ["isolated", "echo"], in: s) == (0, "isolated echo\n"))
        #expect(try launch(elf, [], in: s) == (0, "\n"))
        // The caller's argv[0] reaches the program: `sh -c` without more arguments sets $0 to it.
        let sh = IsolatedLauncher.x86_64(before: [loader, "--argv0"], argv0: true, after: ["/bin/sh"])
        #expect(try launch(sh, ["-c", "echo $0"], in: s) == (0, s.path + "/launcher\n"))
        // A loader that is not there: 127, as a shell's exec.
        #expect(try launch(IsolatedLauncher.x86_64(before: ["/nonexistent"], argv0: false, after: []), [], in: s).0 == 127)
    }

    @Test func aProgramThatIsNotELFIsOneClearError() throws {
        let s = BaseSafetyScratch()
        try s.sh("printf '#!/bin/sh\\necho hi\\n' > script && chmod 755 script")
        do {
            _ = try IsolatedClosure.make(of: s.path + "/script", target: nil, xattrs: false)
            Issue.record("no error")
        } catch let e as BuildError {
            #expect(e.message == "closure: \(s.path)/script is not an ELF file")
        }
    }
}

/// An uncompressed layer tar on disk.
private struct TarFileLayer: StoredLayer {
    let path: String
    let descriptor: Descriptor
    let diffID: Digest
    init(_ path: String) throws {
        self.path = path
        let bytes = try FileReader(path: path).readAll(limit: 1 << 30)
        diffID = Digest.sha256(bytes)
        descriptor = Descriptor(mediaType: "application/vnd.oci.image.layer.v1.tar", digest: diffID, size: Int64(bytes.count))
    }
    func openBlob() throws -> ByteReader { try FileReader(path: path) }
    var localFile: String? { nil }
    var tarsum: String? { nil }
}

@Suite struct BaseListingTests {
    /// Two layers: the merged-/usr base, then one that whites out `etc/os-release`, makes
    /// `usr/lib/x86_64-linux-gnu` opaque (only `fresh` left) and adds a hard link.
    func layers(_ s: BaseSafetyScratch) throws -> [any StoredLayer] {
        _ = try makeBase(s)
        try s.sh("""
            mkdir -p up/etc up/usr/lib/x86_64-linux-gnu
            : > up/etc/.wh.os-release
            : > up/usr/lib/x86_64-linux-gnu/.wh..wh..opq
            printf fresh > up/usr/lib/x86_64-linux-gnu/fresh
            ln up/usr/lib/x86_64-linux-gnu/fresh up/usr/lib/x86_64-linux-gnu/fresh-link
            tar --sort=name --owner=0 --group=0 --numeric-owner -C up -cf up.tar .
            """)
        return [try TarFileLayer(s.path + "/base.tar"), try TarFileLayer(s.path + "/up.tar")]
    }

    @Test func theListingAnswersAsTheFlattenedRootDoes() throws {
        let s = BaseSafetyScratch()
        let l = try layers(s)
        let listing = try BaseListing.load(l, cacheRoot: nil, what: "base")
        let fs = try Rootfs(spoolDirectory: s.path + "/spool2")
        for (i, layer) in l.enumerated() { try fs.apply(layer, what: "layer \(i)") }
        for p in ["lib", "var/run", "tmp", "etc/os-release", "usr/lib/x86_64-linux-gnu/libc.so.6",
                  "usr/lib/x86_64-linux-gnu/fresh", "usr/lib/x86_64-linux-gnu/fresh-link", "usr/bin/sh", "nothing"] {
            #expect(listing.item(at: p) == fs.item(at: p), "\(p)")
            #expect(listing.metadata(at: p)?.mode == fs.metadata(at: p)?.mode, "\(p)")
            #expect(try listing.fileDigest(at: p) == fs.fileDigest(at: p), "\(p)")
        }
        #expect(listing.item(at: "etc/os-release") == nil)
        #expect(listing.item(at: "tmp") == .directory && listing.metadata(at: "tmp")?.mode == 0o1777)
    }

    @Test func eachLayersListingIsKeptByDiffIDAndReadBack() throws {
        let s = BaseSafetyScratch()
        let l = try layers(s)
        let cache = s.path + "/cache"
        #expect(!BaseListing.isCached(l, cacheRoot: cache))
        let first = try BaseListing.load(l, cacheRoot: cache, what: "base")
        #expect(BaseListing.isCached(l, cacheRoot: cache))
        // The layers are not read again: a listing from the cache alone answers the same.
        try s.sh("mv base.tar base.tar.gone && mv up.tar up.tar.gone")
        let again = try BaseListing.load(l, cacheRoot: cache, what: "base")
        for p in ["lib", "tmp", "usr/lib/x86_64-linux-gnu/fresh", "etc/os-release"] {
            #expect(again.item(at: p) == first.item(at: p))
            #expect(try again.fileDigest(at: p) == first.fileDigest(at: p))
        }
    }

    @Test func aLayerWhoseBytesDoNotMatchItsDiffIDIsRefused() throws {
        let s = BaseSafetyScratch()
        let l = try layers(s)
        try s.sh("printf x >> base.tar")
        #expect(throws: BuildError.self) { try BaseListing.load(l, cacheRoot: nil, what: "base") }
    }
}
