import Foundation
import Testing
@testable import KilnBuild

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

private func ctSh(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

@discardableResult
private func ctMustRun(_ args: [String]) throws -> String {
    let r = try ctSh(args)
    if r.status != 0 { Issue.record("\(args.joined(separator: " ")) failed: \(r.err)") }
    return r.out
}

/// A fresh directory under /tmp, by its real path.
private func ctTempDir() -> String {
    var template = Array("/tmp/kiln-closure-XXXXXX".utf8CString)
    let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    precondition(p != nil)
    return ctRealPath(String(cString: p!))
}

private func ctRealPath(_ path: String) -> String {
    guard let r = realpath(path, nil) else { return path }
    defer { free(r) }
    return String(cString: r)
}

private func ctWrite(_ path: String, _ text: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
}

private func ctLstatKind(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

private func ctIdentity(_ path: String) -> FileIdentity? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
}

private let ctHaveCC = FileManager.default.isExecutableFile(atPath: "/usr/bin/cc")

/// True when `path` is an executable ELF file (a script or a missing program is not).
private func ctIsELFProgram(_ path: String) -> Bool {
    FileManager.default.isExecutableFile(atPath: path) && (try? ELFFile(path: path)) != nil
}

/// True when cc can link a static program (libc.a is installed); tried once.
private let ctCanLinkStatically: Bool = {
    guard ctHaveCC else { return false }
    let dir = ctTempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    guard (try? ctWrite(dir + "/probe.c", "int main(void) { return 0; }\n")) != nil,
          let r = try? ctSh(["cc", "-static", "-o", dir + "/probe", dir + "/probe.c"]) else { return false }
    return r.status == 0
}()

/// True when the host has glibc at the Debian path and a /bin/sh that needs only libc.so.6.
private var ctHostHasPlainShell: Bool {
    ctRealPath("/lib/x86_64-linux-gnu/libc.so.6").hasSuffix("/libc.so.6")
        && (try? ELFFile(path: ctRealPath("/bin/sh")).needed) == ["libc.so.6"]
}

/// Follows `path` through the tree's own nodes (symlinks included), as the image would.
private func ctResolveInTree(_ tree: FileTree, _ path: String) -> (String, FileNode)? {
    var pending: [Substring] = path.split(separator: "/").reversed()
    var current: [Substring] = []
    var hops = 0
    while let c = pending.popLast() {
        if c == "." { continue }
        if c == ".." { _ = current.popLast(); continue }
        let p = (current + [c]).joined(separator: "/")
        guard let node = tree[p] else { return nil }
        if case .symlink(let t) = node.content {
            hops += 1
            if hops > 40 { return nil }
            if t.hasPrefix("/") { current = [] }
            pending.append(contentsOf: t.split(separator: "/").reversed())
            continue
        }
        current.append(c)
    }
    let p = current.joined(separator: "/")
    return tree[p].map { (p, $0) }
}

/// Every node of the tree is what the host has at the same path, and every given path
/// resolves in the tree to a regular file with the host file's contents.
private func ctCheckTreeMirrorsHost(_ tree: FileTree, paths: [String], prefix: String = "") {
    for p in tree.paths {
        let host = prefix + "/" + p
        guard let kind = ctLstatKind(host), let node = tree[p] else {
            Issue.record("\(p) is in the tree but not on the host")
            continue
        }
        switch node.content {
        case .symlink(let t):
            #expect(kind == S_IFLNK, "\(p) should be a symlink")
            #expect(t == (try? FileNode.readLink(host)), "\(p) target")
        case .directory:
            #expect(kind == S_IFDIR, "\(p) should be a directory")
        case .file(.host(let src, _, _)):
            #expect(kind == S_IFREG, "\(p) should be a regular file")
            #expect(src == host)
        default:
            Issue.record("unexpected node at \(p): \(node)")
        }
    }
    for path in paths {
        guard let (p, node) = ctResolveInTree(tree, path) else {
            Issue.record("\(path) does not resolve in the tree")
            continue
        }
        guard case .file(.host(let src, _, _)) = node.content else {
            Issue.record("\(path) resolves to \(p), not a regular file")
            continue
        }
        // Resolve on the host inside the same root (absolute symlinks stay in it).
        let hostReal = (try? PathWalker(prefix: prefix).walk(path, followFinal: true).canonical).map { prefix + $0 }
        #expect(hostReal != nil && ctIdentity(src) == ctIdentity(hostReal!), "\(path) resolves to a different file")
    }
}

private func ctLddPaths(_ program: String) throws -> [String] {
    let out = try ctMustRun(["ldd", program])
    var paths: [String] = []
    for raw in out.split(separator: "\n") {
        let line = raw.trimmingCharacters(in: .whitespaces)
        var candidate: Substring
        if let arrow = line.range(of: "=>") {
            candidate = line[arrow.upperBound...].drop(while: { $0 == " " })
        } else {
            candidate = Substring(line)
        }
        if let paren = candidate.range(of: " (") { candidate = candidate[..<paren.lowerBound] }
        if candidate.hasPrefix("/") { paths.append(String(candidate)) }
    }
    return paths
}

private func ctErrorMessage(_ body: () throws -> Void) -> String? {
    do { try body() } catch let e as BuildError { return e.message } catch { return "\(error)" }
    return nil
}

/// Builds `libtiny.so` in `dir/lib` and `dir/bin/app` linked to it with the given rpath.
private func ctBuildApp(in dir: String, rpath: String, newDtags: Bool = true, lib: String = "tiny") throws -> String {
    try FileManager.default.createDirectory(atPath: dir + "/lib", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
    try ctWrite(dir + "/\(lib).c", "int \(lib)(void) { return 42; }\n")
    try ctWrite(dir + "/main.c", "int \(lib)(void);\nint main(void) { return \(lib)() == 42 ? 0 : 1; }\n")
    try ctMustRun(["cc", "-shared", "-fPIC", "-o", dir + "/lib/lib\(lib).so", dir + "/\(lib).c"])
    try ctMustRun(["cc", "-o", dir + "/bin/app", dir + "/main.c", "-L", dir + "/lib", "-l\(lib)",
                 "-Wl,-rpath,\(rpath)", newDtags ? "-Wl,--enable-new-dtags" : "-Wl,--disable-new-dtags"])
    return dir + "/bin/app"
}

// MARK: - Tests

@Suite("Closure")
struct ClosureTests {
    @Test func elfHeaderOfBash() throws {
        let elf = try ELFFile(path: "/bin/bash")
        #expect(elf.elfClass == .elf64)
        #expect(elf.dataEncoding == .littleEndian)
        #expect(elf.machine == ELFFile.EM_X86_64)
        #expect(elf.interpreter == "/lib64/ld-linux-x86-64.so.2")
        #expect(elf.isDynamic)
        #expect(elf.needed.contains("libc.so.6"))
        let libc = try ELFFile(path: "/lib/x86_64-linux-gnu/libc.so.6")
        #expect(libc.soname == "libc.so.6")
        #expect(libc.needed == ["ld-linux-x86-64.so.2"])
    }

    @Test func ldCacheHasLibc() throws {
        let cache = LdCache.load(prefix: "")
        #expect(cache.present)
        let libc = try ELFFile(path: "/lib/x86_64-linux-gnu/libc.so.6")
        let c = cache.candidates(for: "libc.so.6", flags: LdCache.expectedFlags(for: libc))
        #expect(c.first.map { ctRealPath($0) } == ctRealPath("/lib/x86_64-linux-gnu/libc.so.6"))
    }

    @Test func ldCacheSyntheticBigEndianAndOldPrefix() throws {
        // A one-entry new-format cache, big-endian, behind an empty old-format header.
        func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
        var new: [UInt8] = Array("glibc-ld.so.cache1.1".utf8)
        new += be32(1) + be32(0) + [3, 0, 0, 0] + be32(0) + [UInt8](repeating: 0, count: 12)
        let strings = Array("libx.so.1\0/opt/lib/libx.so.1\0".utf8)
        let base = 48 + 24
        new += be32(0x0a03) + be32(UInt32(base)) + be32(UInt32(base + 10)) + be32(0) + [UInt8](repeating: 0, count: 8)
        new += strings
        var old: [UInt8] = Array("ld.so-1.7.0".utf8) + [0] + [0, 0, 0, 0]
        old += new
        for bytes in [new, old] {
            let c = try LdCache(bytes: bytes)
            #expect(c.entries == [LdCache.Entry(flags: 0x0a03, key: "libx.so.1", value: "/opt/lib/libx.so.1", hwcap: 0)])
            #expect(c.candidates(for: "libx.so.1", flags: 0x0a03) == ["/opt/lib/libx.so.1"])
            #expect(c.candidates(for: "libx.so.1", flags: 0x0303).isEmpty)
        }
        #expect(throws: BuildError.self) { try LdCache(bytes: Array("garbage".utf8)) }
    }

    @Test func binShClosure() throws {
        let paths = try ClosureResolver().resolve("/bin/sh")
        #expect(paths.contains("/bin/sh"))
        #expect(paths.contains("/lib64/ld-linux-x86-64.so.2"))
        #expect(paths.contains { $0.hasSuffix("/libc.so.6") })
        #expect(paths == paths.sorted())

        var tree = FileTree()
        try tree.addClosure(of: "/bin/sh", target: nil, xattrs: false)
        // Whatever the host's layout (merged /usr or not), the tree mirrors it.
        for p in ["bin", "lib", "lib64", "usr/bin/sh", "usr/lib64/ld-linux-x86-64.so.2"] {
            guard let kind = ctLstatKind("/" + p) else { continue }
            if kind == S_IFLNK {
                #expect(tree[p]?.content == .symlink(try FileNode.readLink("/" + p)), "\(p)")
            } else if kind == S_IFDIR {
                #expect(tree[p]?.isDirectory == true, "\(p)")
            }
        }
        if ctLstatKind("/usr/bin/dash") == S_IFREG, ctRealPath("/bin/sh") == "/usr/bin/dash" {
            guard case .file(.host(let src, _, _))? = tree["usr/bin/dash"]?.content else {
                Issue.record("usr/bin/dash should be a regular file")
                return
            }
            #expect(src == "/usr/bin/dash")
        }
        ctCheckTreeMirrorsHost(tree, paths: paths)
    }

    @Test(.enabled(if: ctIsELFProgram("/bin/bash"), "/bin/bash is not an ELF executable here"))
    func agreesWithLddOnBash() throws { try agreesWithLdd(program: "/bin/bash") }

    @Test(.enabled(if: ctIsELFProgram("/usr/bin/python3"), "/usr/bin/python3 is not an ELF executable here"))
    func agreesWithLddOnPython() throws { try agreesWithLdd(program: "/usr/bin/python3") }

    @Test(.enabled(if: ctIsELFProgram("/usr/bin/git"), "/usr/bin/git is not an ELF executable here"))
    func agreesWithLddOnGit() throws { try agreesWithLdd(program: "/usr/bin/git") }

    /// The closure holds every library ldd lists for `program`, and the tree mirrors the host.
    private func agreesWithLdd(program: String) throws {
        let expected = try ctLddPaths(program)
        #expect(!expected.isEmpty)
        let got = try ClosureResolver().resolve(program)
        for p in expected {
            #expect(got.contains(p), "ldd finds \(p) for \(program); resolve gave \(got)")
        }
        var tree = FileTree()
        try tree.addClosure(of: program, target: nil, xattrs: false)
        ctCheckTreeMirrorsHost(tree, paths: got)
    }

    @Test(.enabled(if: ctHaveCC, "no C compiler at /usr/bin/cc"), arguments: [true, false])
    func originRpath(newDtags: Bool) throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let app = try ctBuildApp(in: dir, rpath: "$ORIGIN/../lib", newDtags: newDtags)
        let elf = try ELFFile(path: app)
        if newDtags {
            #expect(elf.runpath == "$ORIGIN/../lib" && elf.rpath == nil)
        } else {
            #expect(elf.rpath == "$ORIGIN/../lib" && elf.runpath == nil)
        }
        #expect(try ctSh([app]).status == 0)
        let paths = try ClosureResolver().resolve(app)
        #expect(paths.contains(dir + "/lib/libtiny.so"))
        #expect(paths.contains(app))
        #expect(paths.contains("/lib64/ld-linux-x86-64.so.2"))
        for p in try ctLddPaths(app) {
            #expect(paths.contains(ctRealPath(p)) || paths.contains(p), "ldd: \(p)")
        }

        var tree = FileTree()
        try tree.addClosure(of: app, target: nil, xattrs: false)
        let rel = String(dir.dropFirst())
        #expect(tree[rel + "/bin/app"].map { if case .file = $0.content { true } else { false } } == true)
        #expect(tree[rel + "/lib/libtiny.so"] != nil)
        ctCheckTreeMirrorsHost(tree, paths: paths)
    }

    @Test(.enabled(if: ctHaveCC, "no C compiler at /usr/bin/cc")) func targetMovesOriginLibraries() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let app = try ctBuildApp(in: dir, rpath: "$ORIGIN/../lib")
        var tree = FileTree()
        try tree.addClosure(of: app, target: "/opt/x/bin/app", xattrs: false)
        guard case .file(.host(let src, _, _))? = tree["opt/x/bin/app"]?.content else {
            Issue.record("program not at its target")
            return
        }
        #expect(src == app)
        guard case .file(.host(let lib, _, _))? = tree["opt/x/lib/libtiny.so"]?.content else {
            Issue.record("$ORIGIN library did not move with the program: \(tree.paths.sorted())")
            return
        }
        #expect(lib == dir + "/lib/libtiny.so")
        #expect(tree[String(dir.dropFirst()) + "/bin/app"] == nil)
        #expect(tree["lib64"] != nil)

        // A target ending in "/" keeps the file name.
        var t2 = FileTree()
        try t2.addClosure(of: app, target: "/srv/", xattrs: false)
        #expect(t2["srv/app"] != nil)
    }

    @Test(.enabled(if: ctHaveCC, "no C compiler at /usr/bin/cc")) func missingLibraryIsNamed() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let app = try ctBuildApp(in: dir, rpath: dir + "/lib", lib: "gone")
        try FileManager.default.removeItem(atPath: dir + "/lib/libgone.so")
        let msg = ctErrorMessage { _ = try ClosureResolver().resolve(app) }
        #expect(msg?.hasPrefix("closure: libgone.so needed by \(app) not found (searched: RUNPATH \(dir)/lib, ld.so cache, /lib/x86_64-linux-gnu") == true, "\(msg ?? "no error")")
        var tree = FileTree()
        #expect(throws: BuildError.self) { try tree.addClosure(of: app, target: nil, xattrs: false) }
    }

    @Test(.enabled(if: ctHaveCC, "no C compiler at /usr/bin/cc")) func wrongMachineIsSkipped() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let app = try ctBuildApp(in: dir, rpath: "\(dir)/bad:\(dir)/lib")
        try FileManager.default.createDirectory(atPath: dir + "/bad", withIntermediateDirectories: true)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/lib/libtiny.so")))
        bytes[18] = 183  // e_machine = EM_AARCH64
        bytes[19] = 0
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/bad/libtiny.so"))
        let paths = try ClosureResolver().resolve(app)
        #expect(paths.contains(dir + "/lib/libtiny.so"))
        #expect(!paths.contains(dir + "/bad/libtiny.so"))

        // With only the wrong one available, the error says it was skipped.
        try FileManager.default.removeItem(atPath: dir + "/lib/libtiny.so")
        let msg = ctErrorMessage { _ = try ClosureResolver().resolve(app) }
        #expect(msg?.contains("skipped for a different ELF class or machine: \(dir)/bad/libtiny.so") == true, "\(msg ?? "no error")")
    }

    @Test(.enabled(if: ctCanLinkStatically, "cc -static fails here (no cc or no libc.a)"))
    func staticProgramHasNoDependencies() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ctWrite(dir + "/s.c", "int main(void) { return 0; }\n")
        let r = try ctSh(["cc", "-static", "-o", dir + "/s", dir + "/s.c"])
        #expect(r.status == 0, "\(r)")
        #expect(try ClosureResolver().resolve(dir + "/s") == [dir + "/s"])
    }

    @Test func nonELFIsAnError() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ctWrite(dir + "/script", "#!/bin/sh\necho hi\n")
        let msg = ctErrorMessage { _ = try ClosureResolver().resolve(dir + "/script") }
        #expect(msg == "closure: \(dir)/script is not an ELF file")
        let missing = ctErrorMessage { _ = try ClosureResolver().resolve(dir + "/nope") }
        #expect(missing?.contains("\(dir)/nope: no such file or directory") == true, "\(missing ?? "no error")")
    }

    @Test func keepsSymlinkChainsAndDetectsLoops() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/real/sub", withIntermediateDirectories: true)
        try ctWrite(dir + "/real/sub/file", "x")
        try fm.createSymbolicLink(atPath: dir + "/abs", withDestinationPath: dir + "/real")   // absolute
        try fm.createSymbolicLink(atPath: dir + "/real/link", withDestinationPath: "sub/file") // relative
        try fm.createSymbolicLink(atPath: dir + "/rel", withDestinationPath: "abs/../real/./link")
        var tree = FileTree()
        try tree.addHostPathKeepingSymlinks(dir + "/rel", xattrs: false)
        let r = String(dir.dropFirst())
        #expect(tree[r + "/rel"]?.content == .symlink("abs/../real/./link"))
        #expect(tree[r + "/abs"]?.content == .symlink(dir + "/real"))
        #expect(tree[r + "/real/link"]?.content == .symlink("sub/file"))
        #expect(tree[r + "/real/sub/file"].map { if case .file = $0.content { true } else { false } } == true)
        ctCheckTreeMirrorsHost(tree, paths: [dir + "/rel"])

        try fm.createSymbolicLink(atPath: dir + "/a", withDestinationPath: "b")
        try fm.createSymbolicLink(atPath: dir + "/b", withDestinationPath: "a")
        let msg = ctErrorMessage { try tree.addHostPathKeepingSymlinks(dir + "/a", xattrs: false) }
        #expect(msg?.contains("too many levels of symbolic links") == true, "\(msg ?? "no error")")
    }

    /// A sysroot: absolute symlinks and the default directories are taken inside it, and
    /// with no ld.so.cache there the directories of its ld.so.conf are searched.
    @Test(.enabled(if: ctHostHasPlainShell, "needs /lib/x86_64-linux-gnu/libc.so.6 and a /bin/sh needing only libc.so.6"))
    func sysroot() throws {
        let libc = ctRealPath("/lib/x86_64-linux-gnu/libc.so.6")
        let ldso = ctRealPath("/lib64/ld-linux-x86-64.so.2")
        let dash = ctRealPath("/bin/sh")
        let root = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/usr/lib/x86_64-linux-gnu", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/usr/bin", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/opt/libs", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/etc/ld.so.conf.d", withIntermediateDirectories: true)
        try fm.createSymbolicLink(atPath: root + "/lib", withDestinationPath: "usr/lib")
        try fm.createSymbolicLink(atPath: root + "/lib64", withDestinationPath: "/lib/x86_64-linux-gnu")
        try fm.copyItem(atPath: ldso, toPath: root + "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
        try fm.copyItem(atPath: libc, toPath: root + "/opt/libs/libc.so.6")
        try fm.copyItem(atPath: dash, toPath: root + "/usr/bin/dash")
        try ctWrite(root + "/etc/ld.so.conf", "include ld.so.conf.d/*.conf\n")
        try ctWrite(root + "/etc/ld.so.conf.d/x.conf", "# custom\n/opt/libs\n")

        let resolver = ClosureResolver(root: root)
        let paths = try resolver.resolve("/usr/bin/dash")
        #expect(paths == ["/lib64/ld-linux-x86-64.so.2", "/opt/libs/libc.so.6", "/usr/bin/dash"])

        var tree = FileTree()
        try tree.addClosure(of: "/usr/bin/dash", target: nil, xattrs: false, resolver: resolver)
        #expect(tree["lib64"]?.content == .symlink("/lib/x86_64-linux-gnu"))
        #expect(tree["lib"]?.content == .symlink("usr/lib"))
        ctCheckTreeMirrorsHost(tree, paths: paths, prefix: root)
    }
    /// ld.so's rules, checked against ld.so itself: a program's DT_RPATH also serves its
    /// libraries' needs, its DT_RUNPATH does not; a library's $ORIGIN is the directory it
    /// was found in, even through a symlink.
    @Test(.enabled(if: ctHaveCC, "no C compiler at /usr/bin/cc")) func rpathInheritanceAndLibraryOrigin() throws {
        let dir = ctTempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for d in ["a", "b/lib", "deps"] { try fm.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
        try ctWrite(dir + "/foo.c", "int foo(void) { return 1; }\n")
        try ctWrite(dir + "/bar.c", "int foo(void);\nint bar(void) { return foo(); }\n")
        try ctWrite(dir + "/main.c", "int bar(void);\nint main(void) { return bar() == 1 ? 0 : 1; }\n")
        try ctMustRun(["cc", "-shared", "-fPIC", "-o", dir + "/deps/libfoo.so", dir + "/foo.c"])
        try ctMustRun(["cc", "-shared", "-fPIC", "-o", dir + "/a/libbar.so", dir + "/bar.c", "-L", dir + "/deps", "-lfoo"])
        for (flag, inherited) in [("--disable-new-dtags", true), ("--enable-new-dtags", false)] {
            let app = dir + "/app" + flag
            try ctMustRun(["cc", "-o", app, dir + "/main.c", "-L", dir + "/a", "-lbar", "-Wl,-rpath-link,\(dir)/deps",
                         "-Wl,-rpath,\(dir)/a:\(dir)/deps", "-Wl,\(flag)"])
            let ldd = try ctSh(["ldd", app]).out
            #expect(ldd.contains("libfoo.so => not found") == !inherited, "\(ldd)")
            if inherited {
                #expect(try ClosureResolver().resolve(app).contains(dir + "/deps/libfoo.so"))
            } else {
                let msg = ctErrorMessage { _ = try ClosureResolver().resolve(app) }
                #expect(msg?.hasPrefix("closure: libfoo.so needed by \(dir)/a/libbar.so not found (searched: ld.so cache,") == true, "\(msg ?? "no error")")
            }
        }

        // b/libbaz.so -> ../a/libbaz.so, whose RUNPATH is $ORIGIN/lib: ld.so looks in b/lib.
        try ctMustRun(["cc", "-shared", "-fPIC", "-o", dir + "/a/libbaz.so", dir + "/bar.c", "-L", dir + "/deps", "-lfoo",
                     "-Wl,-rpath,$ORIGIN/lib", "-Wl,--enable-new-dtags"])
        try fm.createSymbolicLink(atPath: dir + "/b/libbaz.so", withDestinationPath: "../a/libbaz.so")
        try fm.copyItem(atPath: dir + "/deps/libfoo.so", toPath: dir + "/b/lib/libfoo.so")
        try ctWrite(dir + "/main2.c", "int bar(void);\nint main(void) { return bar() == 1 ? 0 : 1; }\n")
        let app2 = dir + "/app2"
        try ctMustRun(["cc", "-o", app2, dir + "/main2.c", "-L", dir + "/b", "-lbaz", "-Wl,-rpath-link,\(dir)/deps",
                     "-Wl,-rpath,\(dir)/b", "-Wl,--enable-new-dtags"])
        #expect(try ctSh([app2]).status == 0)
        let got = try ClosureResolver().resolve(app2)
        for p in try ctLddPaths(app2) { #expect(got.contains(p), "ldd: \(p); got \(got)") }
        #expect(got.contains(dir + "/b/lib/libfoo.so"))
        var tree = FileTree()
        try tree.addClosure(of: app2, target: nil, xattrs: false)
        #expect(tree[String(dir.dropFirst()) + "/b/libbaz.so"]?.content == .symlink("../a/libbaz.so"))
        ctCheckTreeMirrorsHost(tree, paths: got)
    }
}
