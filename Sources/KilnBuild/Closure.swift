#if canImport(Glibc)
import Glibc
#endif

/// Finds the shared libraries an ELF program needs, the way glibc's `ld.so` finds them
/// when the program runs, so that `closure:` can copy exactly those files into an image.
///
/// For each `DT_NEEDED` name, breadth first as `ld.so` loads them:
/// 1. an object already loaded under that name (or with that `DT_SONAME`) is reused —
///    the program interpreter counts as loaded from the start;
/// 2. a name containing `/` is used as is (after `$ORIGIN`-style expansion);
/// 3. otherwise `DT_RPATH` of the object that needs it, then of the object that loaded
///    that one, and so on up to the program (all skipped when the needing object has a
///    `DT_RUNPATH`; an object's `DT_RPATH` is ignored when it has a `DT_RUNPATH`);
/// 4. the needing object's own `DT_RUNPATH`;
/// 5. `/etc/ld.so.cache` (or the `ld.so.conf` directories when there is no cache);
/// 6. the default directories: the multiarch ones (`/lib/x86_64-linux-gnu`, …, first, as
///    Debian's `ld.so` has them), then `/lib64`, `/usr/lib64` for 64-bit objects, then
///    `/lib`, `/usr/lib`. Steps 5 and 6 are skipped for objects marked `DF_1_NODEFLIB`.
///
/// `LD_LIBRARY_PATH` is never consulted: a build must not depend on its environment.
/// Files whose ELF class, byte order or machine differ from the program's are skipped, as
/// `ld.so` skips them. `$ORIGIN` is the directory of the program's real path (the kernel
/// resolves it), and for a library the directory of the path it was found under (not
/// resolved: that is what glibc does). `$LIB` is `lib/<multiarch>` when the root has
/// that directory (Debian) and `lib64`/`lib` otherwise; `$PLATFORM` is the generic name
/// of the machine (`x86_64`, `i686`, `aarch64`), never a CPU-tuned one. Empty and
/// relative search-path entries, which depend on the working directory, are ignored, as
/// are the legacy hwcap and `glibc-hwcaps` subdirectories (an image is not tied to the
/// build machine's CPU).
public struct ClosureResolver: Sendable {
    /// The root the program runs under: `/` for the host, or a sysroot whose absolute
    /// symlinks, `etc/ld.so.cache` and library directories are all taken inside it.
    public let root: String
    /// `root` as a string prefix: "" for `/`.
    let prefix: String

    public init(root: String = "/") {
        var r = root
        if !r.hasPrefix("/") { r = closureCurrentDirectory() + "/" + r }
        let n = FileTree.normalize(r)
        self.root = "/" + n
        self.prefix = n.isEmpty ? "" : "/" + n
    }

    /// The program, its interpreter and every library it needs, as sorted, deduplicated
    /// absolute paths under which they are found (inside `root`). Paths are not resolved
    /// to real paths: `/lib64/ld-linux-x86-64.so.2` stays so; only `..` components are
    /// removed (physically, so `a/../b` means what it means on the file system).
    public func resolve(_ path: String) throws -> [String] {
        let c = try closure(of: path, target: nil)
        var seen = Set<String>()
        return c.placements.map(\.path).filter { seen.insert($0).inserted }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }

    // MARK: - Closure computation

    /// One file of the closure. `imagePath` is set when the file does not go at its own
    /// path: the program when a `target` is given, and libraries found through the
    /// program's `$ORIGIN`, which move with it.
    struct Placement: Equatable {
        var path: String
        var canonical: String
        var imagePath: String?
    }

    struct Closure {
        var placements: [Placement]
    }

    private struct Object {
        var elf: ELFFile
        var path: String
        var identity: FileIdentity
        var names: [String]
        var loader: Int?
        var origin: String?
        var imageOrigin: String?
    }

    private struct SearchDir {
        var dir: String
        var imageDir: String?
        var label: String
    }

    private struct Found {
        var path: String
        var canonical: String
        var identity: FileIdentity
        var elf: ELFFile
        var imagePath: String?
    }

    private enum Probe {
        case missing
        case mismatch
        case found(canonical: String, identity: FileIdentity, elf: ELFFile)
    }

    func closure(of path: String, target: String?) throws -> Closure {
        var run = Run(resolver: self)
        return try run.closure(of: path, target: target)
    }

    private struct Run {
        let resolver: ClosureResolver
        let walker: PathWalker
        var objects: [Object] = []
        var placements: [Placement] = []
        var parsed: [String: ELFFile] = [:]
        var cache: LdCache?
        var main: ELFFile!

        init(resolver: ClosureResolver) {
            self.resolver = resolver
            self.walker = PathWalker(prefix: resolver.prefix)
        }

        mutating func closure(of path: String, target: String?) throws -> Closure {
            var input = path
            if !input.hasPrefix("/") {
                guard resolver.prefix.isEmpty else { throw BuildError("closure: \(path) must be absolute when a root is given") }
                input = closureCurrentDirectory() + "/" + input
            }
            input = walker.clean(input)
            let real: PathWalker.Result
            do { real = try walker.walk(input, followFinal: true) } catch let e as PathWalker.Failure {
                throw BuildError("closure: \(e.message)")
            }
            let elf: ELFFile
            do { elf = try ELFFile(path: resolver.prefix + real.canonical) } catch {
                switch error {
                case .notELF: throw BuildError("closure: \(input) is not an ELF file")
                case .notRegularFile: throw BuildError("closure: \(input) is not a regular file")
                default: throw BuildError("closure: \(input): \(error)")
                }
            }
            main = elf
            var imagePath: String?
            var imageOrigin: String?
            if let target {
                var t = target.hasPrefix("/") ? target : "/" + target
                if t.hasSuffix("/") { t += closureBasename(input) }
                t = "/" + FileTree.normalize(t)
                guard t != "/" else { throw BuildError("closure: target must name a file, not the image root") }
                imagePath = t
                imageOrigin = closureDirname(t)
            }
            objects.append(Object(elf: elf, path: input, identity: try identity(real.canonical), names: [],
                                  loader: nil, origin: closureDirname(real.canonical), imageOrigin: imageOrigin))
            placements.append(Placement(path: input, canonical: real.canonical, imagePath: imagePath))

            if let interp = elf.interpreter {
                guard interp.hasPrefix("/") else {
                    throw BuildError("closure: \(input) has a relative program interpreter \(interp)")
                }
                switch try probe(interp, name: interp, neededBy: input) {
                case .missing:
                    throw BuildError("closure: program interpreter \(interp) of \(input) not found")
                case .mismatch:
                    throw BuildError("closure: program interpreter \(interp) of \(input) is for another machine or ELF class")
                case .found(let canonical, let id, let ielf):
                    // ld.so is mapped by the kernel and known under its path and its soname.
                    objects.append(Object(elf: ielf, path: interp, identity: id, names: [interp] + (ielf.soname.map { [$0] } ?? []),
                                          loader: nil, origin: closureDirname(interp), imageOrigin: nil))
                    placements.append(Placement(path: walker.clean(interp), canonical: canonical, imagePath: nil))
                }
            }

            // Breadth first, like _dl_map_object_deps. The interpreter's own needs are not
            // followed (ld.so has none; the kernel loads it alone).
            var queue = [0]
            var next = 0
            while next < queue.count {
                let li = queue[next]
                next += 1
                for name in objects[li].elf.needed {
                    if isLoaded(name) { continue }
                    let f = try search(name, loader: li)
                    placements.append(Placement(path: walker.clean(f.path), canonical: f.canonical, imagePath: f.imagePath))
                    if let same = objects.firstIndex(where: { $0.identity == f.identity }) {
                        objects[same].names.append(name)
                        continue
                    }
                    let origin = closureDirname(f.path)
                    objects.append(Object(elf: f.elf, path: f.path, identity: f.identity, names: [name], loader: li,
                                          origin: origin, imageOrigin: f.imagePath.map(closureDirname)))
                    queue.append(objects.count - 1)
                }
            }
            return Closure(placements: placements)
        }

        /// `_dl_name_match_p` plus the `DT_SONAME` check of `_dl_map_object`.
        func isLoaded(_ name: String) -> Bool {
            objects.contains { $0.names.contains(name) || $0.elf.soname == name || $0.path == name }
        }

        mutating func search(_ name: String, loader li: Int) throws -> Found {
            let needer = objects[li]
            var searched: [String] = []
            var skipped: [String] = []

            if name.contains("/") {
                guard case let (p, img)? = expand(name, of: needer).flatMap({ $0.0.hasPrefix("/") ? $0 : nil }) else {
                    throw BuildError("closure: \(name) needed by \(needer.path) is a relative path, which depends on the working directory")
                }
                switch try probe(p, name: name, neededBy: needer.path) {
                case .found(let canonical, let id, let elf):
                    return Found(path: p, canonical: canonical, identity: id, elf: elf, imagePath: img)
                case .mismatch:
                    throw BuildError("closure: \(p) needed by \(needer.path) is for another machine or ELF class")
                case .missing:
                    throw BuildError("closure: \(name) needed by \(needer.path) not found")
                }
            }

            func attempt(_ dirs: [SearchDir]) throws -> Found? {
                for d in dirs {
                    if !searched.contains(d.label) { searched.append(d.label) }
                    let p = closureJoin(d.dir, name)
                    switch try probe(p, name: name, neededBy: needer.path) {
                    case .missing: continue
                    case .mismatch: skipped.append(p)
                    case .found(let canonical, let id, let elf):
                        return Found(path: p, canonical: canonical, identity: id, elf: elf,
                                     imagePath: d.imageDir.map { closureJoin($0, name) })
                    }
                }
                return nil
            }

            if needer.elf.runpath == nil {
                var l: Int? = li
                var didMain = false
                while let i = l {
                    let o = objects[i]
                    if o.elf.runpath == nil, let rp = o.elf.rpath {
                        if let f = try attempt(searchPath(rp, of: o, kind: "RPATH")) { return f }
                        if i == 0 { didMain = true }
                    }
                    l = o.loader
                }
                let m = objects[0]
                if !didMain, m.elf.runpath == nil, let rp = m.elf.rpath {
                    if let f = try attempt(searchPath(rp, of: m, kind: "RPATH")) { return f }
                }
            }
            if let rp = needer.elf.runpath {
                if let f = try attempt(searchPath(rp, of: needer, kind: "RUNPATH")) { return f }
            }

            let noDefaults = needer.elf.flags1 & ELFFile.DF_1_NODEFLIB != 0
            let defaults = defaultDirectories()
            if cache == nil { cache = LdCache.load(prefix: resolver.prefix) }
            if let cache, cache.present {
                searched.append(cache.fallbackDirectories.isEmpty ? "ld.so cache" : "ld.so.conf directories")
                for p in cache.candidates(for: name, flags: LdCache.expectedFlags(for: main)) {
                    if noDefaults && defaults.contains(closureDirname(p)) { continue }
                    switch try probe(p, name: name, neededBy: needer.path) {
                    case .missing: continue
                    case .mismatch: skipped.append(p)
                    case .found(let canonical, let id, let elf):
                        return Found(path: p, canonical: canonical, identity: id, elf: elf, imagePath: nil)
                    }
                }
            }
            if !noDefaults {
                if let f = try attempt(defaults.map { SearchDir(dir: $0, imageDir: nil, label: $0) }) { return f }
            }

            var message = "closure: \(name) needed by \(needer.path) not found (searched: \(searched.joined(separator: ", ")))"
            if !skipped.isEmpty {
                message += "; skipped for a different ELF class or machine: \(skipped.joined(separator: ", "))"
            }
            throw BuildError(message)
        }

        /// A colon-separated `DT_RPATH`/`DT_RUNPATH` as directories, tokens expanded.
        func searchPath(_ s: String, of o: Object, kind: String) -> [SearchDir] {
            var out: [SearchDir] = []
            for element in s.split(separator: ":", omittingEmptySubsequences: true) {
                guard case let (dir, img)? = expand(String(element), of: o) else { continue }
                var d = dir
                while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
                guard d.hasPrefix("/") else { continue }
                out.append(SearchDir(dir: d, imageDir: img, label: "\(kind) \(d)"))
            }
            return out
        }

        /// Expands `$ORIGIN`, `$LIB`, `$PLATFORM` (also `${…}`); other `$` sequences stay.
        /// Returns nil when a token cannot be expanded (the element is dropped, as ld.so
        /// drops it), and the in-image spelling when `$ORIGIN` refers to a moved program.
        func expand(_ s: String, of o: Object) -> (String, String?)? {
            guard s.contains("$") else { return (s, nil) }
            var host = ""
            var image = ""
            var movedOrigin = false
            let chars = Array(s.unicodeScalars)
            var i = 0
            func isIdent(_ c: Unicode.Scalar) -> Bool {
                (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "_"
            }
            while i < chars.count {
                let c = chars[i]
                guard c == "$" else {
                    host.unicodeScalars.append(c)
                    image.unicodeScalars.append(c)
                    i += 1
                    continue
                }
                var token = ""
                var after = i + 1
                if after < chars.count && chars[after] == "{" {
                    var j = after + 1
                    while j < chars.count && chars[j] != "}" { j += 1 }
                    if j < chars.count {
                        token = String(String.UnicodeScalarView(chars[(after + 1)..<j]))
                        after = j + 1
                    }
                } else {
                    var j = after
                    while j < chars.count && isIdent(chars[j]) { j += 1 }
                    token = String(String.UnicodeScalarView(chars[after..<j]))
                    after = j
                }
                let value: String
                switch token {
                case "ORIGIN":
                    guard let origin = o.origin else { return nil }
                    host += origin
                    image += o.imageOrigin ?? origin
                    if o.imageOrigin != nil { movedOrigin = true }
                    i = after
                    continue
                case "LIB": value = libToken()
                case "PLATFORM":
                    guard let p = platformToken() else { return nil }
                    value = p
                default:
                    host += "$"
                    image += "$"
                    i += 1
                    continue
                }
                host += value
                image += value
                i = after
            }
            return (host, movedOrigin ? image : nil)
        }

        func multiarchTriplets() -> [String] {
            let is64 = main.elfClass == .elf64
            let le = main.dataEncoding == .littleEndian
            switch main.machine {
            case ELFFile.EM_X86_64: return [is64 ? "x86_64-linux-gnu" : "x86_64-linux-gnux32"]
            case ELFFile.EM_386: return ["i386-linux-gnu"]
            case ELFFile.EM_AARCH64: return [le ? "aarch64-linux-gnu" : "aarch64_be-linux-gnu"]
            case ELFFile.EM_ARM: return ["arm-linux-gnueabihf", "arm-linux-gnueabi"]
            case ELFFile.EM_PPC64: return [le ? "powerpc64le-linux-gnu" : "powerpc64-linux-gnu"]
            case ELFFile.EM_PPC: return ["powerpc-linux-gnu"]
            case ELFFile.EM_S390: return [is64 ? "s390x-linux-gnu" : "s390-linux-gnu"]
            case ELFFile.EM_RISCV: return [is64 ? "riscv64-linux-gnu" : "riscv32-linux-gnu"]
            case ELFFile.EM_LOONGARCH: return ["loongarch64-linux-gnu"]
            default: return []
            }
        }

        func defaultDirectories() -> [String] {
            var dirs: [String] = []
            for t in multiarchTriplets() { dirs += ["/lib/\(t)", "/usr/lib/\(t)"] }
            if main.elfClass == .elf64 { dirs += ["/lib64", "/usr/lib64"] }
            dirs += ["/lib", "/usr/lib"]
            return dirs
        }

        func libToken() -> String {
            if let t = multiarchTriplets().first, isDirectory("/lib/\(t)") || isDirectory("/usr/lib/\(t)") {
                return "lib/\(t)"
            }
            return main.elfClass == .elf64 ? "lib64" : "lib"
        }

        func platformToken() -> String? {
            switch main.machine {
            case ELFFile.EM_X86_64: return main.elfClass == .elf64 ? "x86_64" : nil
            case ELFFile.EM_386: return "i686"
            case ELFFile.EM_AARCH64: return "aarch64"
            default: return nil
            }
        }

        func isDirectory(_ path: String) -> Bool {
            guard let r = try? walker.walk(path, followFinal: true) else { return false }
            var st = stat()
            return stat(resolver.prefix + r.canonical, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
        }

        /// Looks at one candidate file as `open_verify` would: absent (go on), another
        /// class or machine (go on), or the one. A file that is not ELF stops the search
        /// with an error, as it makes `ld.so` fail.
        mutating func probe(_ path: String, name: String, neededBy: String) throws -> Probe {
            let canonical: String
            do { canonical = try walker.walk(path, followFinal: true).canonical } catch let e as PathWalker.Failure {
                switch e {
                case .notFound, .notDirectory, .permissionDenied: return .missing  // as open_path skips them
                default: throw BuildError("closure: \(e.message)")
                }
            }
            var st = stat()
            guard stat(resolver.prefix + canonical, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return .missing }
            let id = FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            let elf: ELFFile
            if let e = parsed[canonical] {
                elf = e
            } else {
                do { elf = try ELFFile(path: resolver.prefix + canonical) } catch {
                    let what = name == path ? "" : " (found for \(name) needed by \(neededBy))"
                    switch error {
                    case .notELF: throw BuildError("closure: \(path)\(what) is not an ELF file")
                    default: throw BuildError("closure: \(path)\(what): \(error)")
                    }
                }
                parsed[canonical] = elf
            }
            return elf.isCompatible(with: main) ? .found(canonical: canonical, identity: id, elf: elf) : .mismatch
        }

        func identity(_ canonical: String) throws -> FileIdentity {
            var st = stat()
            guard stat(resolver.prefix + canonical, &st) == 0 else {
                throw BuildError("closure: cannot read \(canonical): \(String(cString: strerror(errno)))")
            }
            return FileIdentity(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        }
    }
}

// MARK: - Placing files with their symlink chains

extension FileTree {
    /// Adds an ELF program and its shared-library closure (see `ClosureResolver`).
    ///
    /// Libraries and the interpreter go at the paths they are found under, with every
    /// symlink met on the way (in any component) stored as a symlink, so the image resolves
    /// those paths as the host does. The program goes at its own path the same way, or,
    /// when `target` is given, at `target` as a regular file (a `target` ending in `/`
    /// names a directory and keeps the program's file name); libraries found through the
    /// program's `$ORIGIN` then move along with it.
    public mutating func addClosure(of hostPath: String, target: String?, xattrs: Bool) throws {
        try addClosure(of: hostPath, target: target, xattrs: xattrs, resolver: ClosureResolver())
    }

    mutating func addClosure(of path: String, target: String?, xattrs: Bool, resolver: ClosureResolver) throws {
        let closure = try resolver.closure(of: path, target: target)
        for p in closure.placements {
            if let image = p.imagePath {
                insert(FileTree.normalize(image), try FileNode.host(resolver.prefix + p.canonical, xattrs: xattrs))
            } else {
                try addPathKeepingSymlinks(p.path, prefix: resolver.prefix, xattrs: xattrs)
            }
        }
    }

    /// Adds the host path `hostPath` (absolute) at the same path in the tree, following
    /// it component by component: each symlink met — `/lib -> usr/lib` in the middle, or
    /// `/usr/bin/sh -> dash` at the end — becomes a symlink node, and what the path finally
    /// names is added with `FileNode.host` (a directory is added without its contents).
    /// Relative and absolute targets are followed; more than 40 symlinks is an error.
    public mutating func addHostPathKeepingSymlinks(_ hostPath: String, xattrs: Bool) throws {
        try addPathKeepingSymlinks(hostPath, prefix: "", xattrs: xattrs)
    }

    mutating func addPathKeepingSymlinks(_ path: String, prefix: String, xattrs: Bool) throws {
        guard path.hasPrefix("/") else { throw BuildError("\(path): expected an absolute path") }
        let r: PathWalker.Result
        do { r = try PathWalker(prefix: prefix).walk(path, followFinal: true) } catch let e as PathWalker.Failure {
            throw BuildError(e.message)
        }
        for link in r.symlinks {
            insert(FileTree.normalize(link), try FileNode.host(prefix + link, xattrs: xattrs))
        }
        let final = FileTree.normalize(r.canonical)
        if !final.isEmpty {
            insert(final, try FileNode.host(prefix + r.canonical, xattrs: xattrs))
        }
    }
}

/// Resolves paths one component at a time, as the kernel does, inside an optional root
/// prefix (absolute symlink targets and `..` never leave it).
struct PathWalker: Sendable {
    /// "" for the host root, else a sysroot such as "/srv/sysroot".
    let prefix: String

    struct Result {
        /// The path with every symlink resolved and no `.`/`..`.
        var canonical: String
        /// The symlinks met, in order, by their (canonical-parent) paths.
        var symlinks: [String]
    }

    enum Failure: Error {
        case notFound(String)
        case notDirectory(String)
        case loop(String)
        case permissionDenied(String)
        case other(String, String)

        var message: String {
            switch self {
            case .notFound(let p): return "\(p): no such file or directory"
            case .notDirectory(let p): return "\(p): not a directory"
            case .loop(let p): return "\(p): too many levels of symbolic links (more than 40, or a symlink loop)"
            case .permissionDenied(let p): return "\(p): permission denied"
            case .other(let p, let why): return "\(p): \(why)"
            }
        }
    }

    static let maxSymlinks = 40

    func walk(_ path: String, followFinal: Bool) throws -> Result {
        var pending: [Substring] = path.split(separator: "/", omittingEmptySubsequences: true).reversed()
        var current: [Substring] = []
        var symlinks: [String] = []
        var hops = 0
        while let c = pending.popLast() {
            if c == "." { continue }
            if c == ".." {
                _ = current.popLast()
                continue
            }
            let candidate = "/" + (current + [c]).joined(separator: "/")
            var st = stat()
            guard lstat(prefix + candidate, &st) == 0 else {
                let e = errno
                if e == ENOENT { throw Failure.notFound(path == candidate ? path : "\(candidate) (resolving \(path))") }
                if e == ENOTDIR { throw Failure.notDirectory(candidate) }
                if e == EACCES { throw Failure.permissionDenied(candidate) }
                throw Failure.other(candidate, String(cString: strerror(e)))
            }
            let type = st.st_mode & S_IFMT
            if type == S_IFLNK && (followFinal || !pending.isEmpty) {
                hops += 1
                if hops > PathWalker.maxSymlinks { throw Failure.loop(path) }
                let target: String
                do { target = try FileNode.readLink(prefix + candidate) } catch {
                    throw Failure.other(candidate, "\(error)")
                }
                symlinks.append(candidate)
                if target.hasPrefix("/") { current = [] }
                pending.append(contentsOf: target.split(separator: "/", omittingEmptySubsequences: true).reversed())
                continue
            }
            if type != S_IFDIR && !pending.isEmpty {
                throw Failure.notDirectory(candidate)
            }
            current.append(c)
        }
        return Result(canonical: "/" + current.joined(separator: "/"), symlinks: symlinks)
    }

    /// Removes `.` and empty components, and resolves each `..` physically: the part
    /// before it is resolved (symlinks followed) and its parent taken, so the result names
    /// the same file. Other symlinks are kept.
    func clean(_ path: String) -> String {
        var out: [Substring] = []
        for c in path.split(separator: "/", omittingEmptySubsequences: true) {
            if c == "." { continue }
            if c == ".." {
                if out.isEmpty { continue }
                if let r = try? walk("/" + out.joined(separator: "/"), followFinal: true) {
                    out = r.canonical.split(separator: "/", omittingEmptySubsequences: true)
                }
                _ = out.popLast()
                continue
            }
            out.append(c)
        }
        return "/" + out.joined(separator: "/")
    }
}

private func closureDirname(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    let d = String(path[..<slash])
    return d.isEmpty ? "/" : d
}

private func closureBasename(_ path: String) -> String {
    String(path.split(separator: "/").last ?? "")
}

private func closureJoin(_ dir: String, _ name: String) -> String {
    dir.hasSuffix("/") ? dir + name : dir + "/" + name
}

private func closureCurrentDirectory() -> String {
    var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    guard getcwd(&buf, buf.count) != nil else { return "/" }
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
