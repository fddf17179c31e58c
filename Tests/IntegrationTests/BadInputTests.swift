import Foundation
import Testing

/// Every mistake gets one clear line naming the key and path, a non-zero exit,
/// and nothing written.
@Suite struct BadInputTests {
    func expectFailure(_ spec: String, mentions: [String], files: [String: String] = [:],
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let dir = try TempDir()
        for (name, text) in files { try dir.write(name, text) }
        try dir.write("image.yaml", spec)
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status != 0, "expected failure: \(r)", sourceLocation: sourceLocation)
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "expected one line: \(r.stderr)", sourceLocation: sourceLocation)
        for m in mentions { #expect(r.stderr.contains(m), "\(m) not in: \(r.stderr)", sourceLocation: sourceLocation) }
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains("out") }
        #expect(left.isEmpty, "left behind: \(left)", sourceLocation: sourceLocation)
    }

    @Test func missingContentPath() throws {
        try expectFailure("name: t/x\ncontents:\n  - source: nowhere/file\n", mentions: ["image.yaml:3", "contents[0]", "nowhere/file"])
    }

    @Test func unknownKeySuggestsTheRightOne() throws {
        try expectFailure("name: t/x\ncontens: []\n", mentions: ["image.yaml:2", "contens", "contents"])
        try expectFailure("name: t/x\nconfig:\n  entrypoint: [a]\n", mentions: ["image.yaml:3", "Entrypoint"])
    }

    @Test func invalidConfigValues() throws {
        try expectFailure("name: t/x\nconfig:\n  ExposedPorts: [\"8080/xyz\"]\n", mentions: ["image.yaml:3", "8080/xyz"])
        try expectFailure("name: t/x\nconfig:\n  Env: [\"NOEQUALS\"]\n", mentions: ["image.yaml:3", "NOEQUALS"])
        try expectFailure("name: t/x\nconfig:\n  WorkingDir: relative/dir\n", mentions: ["image.yaml:3", "WorkingDir"])
        try expectFailure("name: t/x\nconfig:\n  StopSignal: SIGFOO\n", mentions: ["image.yaml:3", "StopSignal"])
    }

    @Test func nameAndTagOutsideTheGrammar() throws {
        try expectFailure("name: Bad/Name\n", mentions: ["image.yaml:1", "name"])
        try expectFailure("name: t/x\ntag: -bad\n", mentions: ["image.yaml:2", "tag"])
    }

    @Test func targetEscapingTheRoot() throws {
        try expectFailure("name: t/x\ncontents:\n  - source: f\n    target: /../../etc/x\n", mentions: ["image.yaml:4", "target"], files: ["f": "x"])
    }

    @Test func failingExtraCommands() throws {
        try expectFailure("name: t/x\nextraCommands: |\n  echo oops >&2\n  exit 3\n", mentions: ["image.yaml:2", "extraCommands", "exit status 3", "oops"])
    }

    @Test func unresolvableLibrary() throws {
        let dir = try TempDir()
        try sh("""
            printf 'int f(void){return 0;}' > lib.c && cc -shared -fPIC -o libkilnmissing.so lib.c
            printf 'int f(void); int main(void){return f();}' > main.c && cc -o app main.c -L. -lkilnmissing
            rm libkilnmissing.so
            """, cwd: dir.path)
        try dir.write("image.yaml", "name: t/x\ncontents:\n  - closure: app\n")
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status != 0)
        #expect(r.stderr.contains("libkilnmissing.so"))
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
    }

    @Test func symlinkInASourceTreeIsKeptNotFollowed() throws {
        let dir = try TempDir()
        try dir.write("secret", "do not copy me")
        try dir.write("files/ok", "fine")
        try sh("ln -s ../secret files/escape && ln -s /etc/shadow files/abs", cwd: dir.path)
        try dir.write("image.yaml", "name: t/x\ntag: x\ncompressor: none\ncontents: [files]\n")
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", dir.path + "/l"])
        let blobs = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/l/blobs/sha256")
        var listing = ""
        for b in blobs {
            let r = try run("tar", ["-tvf", dir.path + "/l/blobs/sha256/" + b], check: false)
            if r.status == 0 { listing += r.stdout }
            let data = try Data(contentsOf: URL(fileURLWithPath: dir.path + "/l/blobs/sha256/" + b))
            #expect(data.range(of: Data("do not copy me".utf8)) == nil)
        }
        #expect(listing.contains("escape -> ../secret"))
        #expect(listing.contains("abs -> /etc/shadow"))
    }
}
