#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnOCI

/// `closure:` with `isolate: true`: a host program added to any base, of any libc
/// version, without touching the base's libraries.
///
/// The program, its dynamic loader and every library of its closure go below a private
/// directory, `/opt/kiln/<first 12 hex digits of the closure's digest>/`, each at the
/// path it was found under on the host (so every `DT_NEEDED` name is found by its own
/// name). The digest covers each file's path and sha256, so two different closures never
/// share a directory and the same closure always gets the same one.
///
/// The program is started through its bundled loader, ld.so(8)'s "command" form:
/// `LOADER --library-path DIRS [--inhibit-cache] [--argv0 ARGV0] PROGRAM ARGS…`, by a
/// launcher at the target path (default: the program's own path). A `#!` line carries
/// one argument and a symlink none, and the ELF interpreter path of a copy cannot carry
/// the library path, so the launcher is a program of its own: for x86-64 a tiny static
/// ELF that only calls execve(2) (`IsolatedLauncher`), so the image needs no shell; for
/// other machines a two-line `/bin/sh` script, and then the image must have a `/bin/sh`
/// (checked at build time). `--argv0` (glibc 2.33+) keeps the name the program was
/// started by; `--inhibit-cache` keeps the base's `/etc/ld.so.cache` (of another glibc)
/// out of the search. Both are passed only when the bundled loader lists them in its
/// `--help`.
struct IsolatedClosure {
    /// The private directory, normal form (`opt/kiln/0123456789ab`).
    var directory: String
    /// The launcher's path, normal form.
    var launcher: String
    var tree: FileTree
    /// The launcher is a `/bin/sh` script (machines other than x86-64).
    var needsShell: Bool

    static func make(of path: String, target: String?, xattrs: Bool, resolver: ClosureResolver = ClosureResolver()) throws -> IsolatedClosure {
        let closure = try resolver.closure(of: path, target: nil)
        guard let program = closure.placements.first else { throw BuildError("closure: \(path): nothing to add") }
        // Each file once, by the path it is found under.
        var seen = Set<String>()
        let files = closure.placements.filter { seen.insert($0.path).inserted }
        var h = SHA256Hasher()
        for f in files.sorted(by: { Array($0.path.utf8).lexicographicallyPrecedes(Array($1.path.utf8)) }) {
            h.update(Array("\(f.path)\t\(try fileDigest(resolver.prefix + f.canonical))\n".utf8))
        }
        let dir = "opt/kiln/" + String(h.finalize().hex.prefix(12))
        var tree = FileTree()
        for f in files {
            tree.insert(dir + "/" + FileTree.normalize(f.path), try FileNode.host(resolver.prefix + f.canonical, xattrs: xattrs))
        }
        var t = target ?? program.path
        if t.hasSuffix("/") { t += program.path.split(separator: "/").last.map(String.init) ?? "" }
        let launcher = FileTree.normalize(t)
        guard !launcher.isEmpty else { throw BuildError("closure: target must name a file, not the image root") }

        let programPath = "/" + dir + "/" + FileTree.normalize(program.path)
        // execve(2)'s arguments: BEFORE, then the launcher's argv[0] when `argv0`, AFTER,
        // then the launcher's other arguments.
        var before: [String], after: [String] = [], argv0 = false
        let elf = try ELFFile(path: resolver.prefix + program.canonical)
        if let interp = elf.interpreter, let loader = files.first(where: { $0.path == "/" + FileTree.normalize(interp) }) {
            var dirs: [String] = []
            for f in files where f.path != program.path && f.path != loader.path {
                let d = "/" + dir + "/" + FileTree.normalize(f.path).split(separator: "/").dropLast().joined(separator: "/")
                if !dirs.contains(d) { dirs.append(d) }
            }
            let options = loaderOptions(resolver.prefix + loader.canonical)
            before = ["/" + dir + "/" + FileTree.normalize(loader.path), "--library-path", dirs.joined(separator: ":")]
            if options.contains("--inhibit-cache") { before.append("--inhibit-cache") }
            if options.contains("--argv0") {
                before.append("--argv0")
                argv0 = true
            }
            after = [programPath]
        } else {
            // A static program needs no loader.
            before = [programPath]
        }
        let bytes: [UInt8]
        let needsShell = elf.machine != IsolatedLauncher.machineX86_64
        if needsShell {
            let words = before.map(quote) + (argv0 ? ["\"$0\""] : []) + after.map(quote)
            bytes = Array(("#!/bin/sh\nexec " + words.joined(separator: " ") + " \"$@\"\n").utf8)
        } else {
            bytes = IsolatedLauncher.x86_64(before: before, argv0: argv0, after: after)
        }
        tree.insert(launcher, FileNode(.file(.inline(bytes)), mode: 0o755))
        return IsolatedClosure(directory: dir, launcher: launcher, tree: tree, needsShell: needsShell)
    }

    /// The options a glibc loader lists in its `--help` (nothing for another loader).
    static func loaderOptions(_ loader: String) -> Set<String> {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: loader)
        p.arguments = ["--help"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return [] }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        return Set(["--argv0", "--inhibit-cache"].filter { text.contains($0) })
    }

    /// `s` as one word of a `/bin/sh` command line.
    static func quote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The sha256 of a file's bytes.
    static func fileDigest(_ path: String) throws -> Digest {
        let r = try FileReader(path: path)
        var h = SHA256Hasher()
        let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while true {
            let n = try r.read(into: buf)
            if n == 0 { break }
            h.update(UnsafeRawBufferPointer(rebasing: buf[..<n]))
        }
        return h.finalize()
    }
}

extension ImageBuilder {
    /// An isolated closure's launcher that is a `/bin/sh` script (`shellLaunchers`: the
    /// items whose launchers are) needs a `/bin/sh` in the image.
    func checkLaunchers(_ tree: FileTree, below: ImageView, shellLaunchers: [Int]) throws {
        guard let i = shellLaunchers.first else { return }
        func kind(_ p: String) -> ViewKind? { tree[p].map(ViewKind.init) ?? below.kind(at: p) }
        let sh = try FileTree.resolve("bin/sh", followFinal: true, kind: kind)
        guard kind(sh) == .file else {
            let item = spec.contents[i]
            throw BuildError("\(item.location): contents[\(i)].isolate: the launcher of \(item.path) is a /bin/sh script, and the image has no /bin/sh (build on a base that has one, or add one)")
        }
    }
}
