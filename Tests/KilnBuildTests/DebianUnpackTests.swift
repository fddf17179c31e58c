import Foundation
import Testing
import KilnArchive
import KilnDebian
@testable import KilnBuild

/// A `.deb` made by hand (ar + tar from Python), so its data.tar can hold what
/// `dpkg-deb --build` would never write: members that climb out of the root.
func handMadeDeb(in dir: String, members: [(name: String, type: String, body: String, link: String)]) throws -> String {
    let script = """
        import io, tarfile, gzip, sys, os
        def tar(entries):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
                for name, kind, body, link in entries:
                    info = tarfile.TarInfo(name)
                    info.mtime = 1704067200
                    if kind == "dir":
                        info.type = tarfile.DIRTYPE; info.mode = 0o755; t.addfile(info)
                    elif kind == "sym":
                        info.type = tarfile.SYMTYPE; info.linkname = link; t.addfile(info)
                    elif kind == "hard":
                        info.type = tarfile.LNKTYPE; info.linkname = link; t.addfile(info)
                    else:
                        data = body.encode(); info.size = len(data); info.mode = 0o644; t.addfile(info, io.BytesIO(data))
            return gzip.compress(buf.getvalue(), mtime=0)
        control = tar([("./control", "file", "Package: evil\\nVersion: 1\\nArchitecture: all\\nMaintainer: x <x@x>\\nDescription: x\\n", "")])
        data = tar(eval(sys.argv[2]))
        def member(name, body):
            h = name.ljust(16).encode() + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8) + str(len(body)).encode().ljust(10) + b"`\\n"
            return h + body + (b"\\n" if len(body) % 2 else b"")
        with open(sys.argv[1], "wb") as f:
            f.write(b"!<arch>\\n" + member("debian-binary", b"2.0\\n") + member("control.tar.gz", control) + member("data.tar.gz", data))
        """
    let py = dir + "/mkdeb.py"
    try script.write(toFile: py, atomically: true, encoding: .utf8)
    let list = "[" + members.map { "(\"\($0.name)\", \"\($0.type)\", \"\($0.body)\", \"\($0.link)\")" }.joined(separator: ", ") + "]"
    let out = dir + "/evil.deb"
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", py, out, list]
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw BuildError("mkdeb.py failed") }
    return out
}

@Suite struct DebianUnpackTests {
    func unpack(_ members: [(name: String, type: String, body: String, link: String)], mergedUsr: Bool = true) throws -> UnpackedPackage {
        let staging = try Staging()
        let deb = try handMadeDeb(in: staging.path, members: members)
        return try FileTree.unpackDebian(try DebArchive(path: deb), what: "evil 1", mergedUsr: mergedUsr, staging: staging)
    }

    @Test func membersClimbingOutOfTheRootAreRefused() throws {
        for name in ["../escape", "./usr/../../etc/passwd", "/../../x"] {
            #expect {
                _ = try unpack([("./", "dir", "", ""), (name, "file", "x", "")])
            } throws: { e in
                "\(e)".contains("evil 1") && "\(e)".contains("points outside the root")
            }
        }
        #expect {
            _ = try unpack([("./a", "file", "x", ""), ("./b", "hard", "", "../../a")])
        } throws: { e in "\(e)".contains("points outside the root") }
    }

    @Test func mergedUsrPlacesTopLevelDirectoriesUnderUsr() throws {
        let u = try unpack([("./", "dir", "", ""), ("./lib/", "dir", "", ""), ("./lib/x.so", "file", "x", ""),
                            ("./bin/", "dir", "", ""), ("./bin/sh", "file", "#!", ""), ("./bin/ln", "hard", "", "./bin/sh"),
                            ("./etc/", "dir", "", ""), ("./etc/libfoo", "sym", "", "/lib/x.so")])
        #expect(u.tree["usr/lib/x.so"] != nil)
        #expect(u.tree["usr/bin/sh"] != nil)
        #expect(u.tree["lib"] == nil && u.tree["bin"] == nil)
        // Hard links follow their target to /usr; symlink targets are kept as written (the
        // /lib symlink of the image resolves them).
        if case .file(.host(let a, _, let ida))? = u.tree["usr/bin/ln"]?.content,
           case .file(.host(let b, _, let idb))? = u.tree["usr/bin/sh"]?.content {
            #expect(a == b && ida == idb)
        } else {
            Issue.record("usr/bin/ln is not a hard link to usr/bin/sh")
        }
        #expect(u.tree["etc/libfoo"]?.content == .symlink("/lib/x.so"))
        // dpkg's .list names the paths as the package does.
        #expect(u.packagePaths.contains("/lib/x.so") && u.packagePaths.first == "/.")
        #expect(u.tree["usr/lib/x.so"]?.mtime == 1704067200)

        let plain = try unpack([("./lib/x.so", "file", "x", "")], mergedUsr: false)
        #expect(plain.tree["lib/x.so"] != nil)
    }
}
