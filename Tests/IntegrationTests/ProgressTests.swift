import Foundation
import Testing

/// `kiln build`'s progress: redrawn in place on a terminal (a pseudo-terminal made by
/// util-linux's script(1)), absent on a pipe, silenced by `--quiet`; `--json` keeps
/// stdout to the JSON; `--log-level debug` shows HTTP requests without secrets.
@Suite(.serialized) struct ProgressTests {
    static let hasScript = FileManager.default.isExecutableFile(atPath: "/usr/bin/script")
    static let hasRegistry = FileManager.default.isExecutableFile(atPath: "/usr/bin/docker-registry")

    /// A spec whose build takes over a second: 200 MB of incompressible bytes and 2,000
    /// small files.
    static func bigSpec(in dir: TempDir) throws -> String {
        try sh("""
            mkdir -p tree/small
            head -c 200000000 /dev/urandom > tree/big.bin
            i=0; while [ $i -lt 2000 ]; do echo $i > tree/small/f$i; i=$((i+1)); done
            """, cwd: dir.path)
        try dir.write("image.yaml", """
            name: kiln-test/progress
            tag: v1
            contents:
              - source: tree
            """)
        return dir.path + "/image.yaml"
    }

    /// Runs `command` (a shell command line) on a pseudo-terminal; what the terminal showed.
    static func onTerminal(_ command: String, cwd: String) throws -> String {
        // -e: script exits with the command's status; the transcript goes to stdout.
        let r = try run("/usr/bin/script", ["-q", "-e", "-c", command, "/dev/null"], cwd: cwd,
                        env: ["TERM": "xterm", "COLUMNS": "120"])
        #expect(r.status == 0, "\(r)")
        return r.stdout
    }

    static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// Frames of the live line: each redraw erases the line (ESC [ 2K) and writes `kiln <time>: …`.
    static func frames(_ transcript: String) -> [String] {
        transcript.components(separatedBy: "\u{1B}[2K").dropFirst().compactMap { chunk in
            let line = chunk.split(whereSeparator: { $0 == "\r" || $0 == "\n" }).first.map(String.init) ?? ""
            return line.hasPrefix("kiln ") ? line : nil
        }
    }

    @Test(.enabled(if: hasScript, "needs script(1) (util-linux)"))
    func progressIsRedrawnOnATerminal() throws {
        let dir = try TempDir()
        let spec = try Self.bigSpec(in: dir)
        let out = try Self.onTerminal("\(Self.quoted(kilnPath)) build \(Self.quoted(spec)) -o out.tar --cache-dir cache", cwd: dir.path)
        let frames = Self.frames(out)
        #expect(frames.count >= 4, "\(out.debugDescription)")
        // The phases and their figures, in MiB.
        // The first frame is drawn at once; the layer takes most of the time; planning and
        // writing are short, but one of them is seen at eight frames a second.
        #expect(frames.first?.contains(": resolving") == true, "\(frames)")
        #expect(frames.contains { $0.contains("layer 1: read ") && $0.contains(" MiB") && $0.contains(" -> ") }, "\(frames)")
        #expect(frames.contains { ($0.contains("planning: ") && $0.contains(" entries")) || $0.contains("writing the image") }, "\(frames)")
        // Redraws move the cursor back over the line.
        #expect(out.components(separatedBy: "\u{1B}[1A").count - 1 >= 4)
        // The result is on the screen, after the progress line was taken away.
        #expect(out.contains("docker-archive:out.tar kiln-test/progress:v1 sha256:"), "\(out.debugDescription)")

        // A rebuild takes the layer from the cache, and says so at debug level.
        let again = try kiln(["--log-level", "debug", "build", spec, "-o", dir.path + "/again.tar", "--cache-dir", dir.path + "/cache"])
        #expect(again.stderr.contains("kiln: debug: cache: plan cache hit "), "\(again.stderr)")
    }

    @Test(.enabled(if: hasScript, "needs script(1) (util-linux)"))
    func noRedrawsOnAPipeAndNoneWithQuiet() throws {
        let dir = try TempDir()
        let spec = try Self.bigSpec(in: dir)
        // stderr is a file: no redraws, no control characters, only the result on stdout.
        let piped = try kiln(["build", spec, "-o", dir.path + "/a.tar", "--cache-dir", dir.path + "/cache"])
        #expect(!piped.stderr.contains("\r") && !piped.stderr.contains("\u{1B}"), "\(piped.stderr.debugDescription)")
        #expect(!piped.stderr.contains("layer 1: read"))
        #expect(piped.stdout.hasPrefix("docker-archive:\(dir.path)/a.tar kiln-test/progress:v1 sha256:"), "\(piped)")

        // --quiet on a terminal, before or after the subcommand: no progress, the result still.
        for args in ["--quiet build \(Self.quoted(spec)) -o b.tar --no-cache", "build \(Self.quoted(spec)) -o c.tar --no-cache -q"] {
            let out = try Self.onTerminal("\(Self.quoted(kilnPath)) \(args)", cwd: dir.path)
            #expect(Self.frames(out).isEmpty && !out.contains("\u{1B}["), "\(out.debugDescription)")
            #expect(out.contains("docker-archive:"), "\(out.debugDescription)")
        }
    }

    @Test(.enabled(if: hasScript, "needs script(1) (util-linux)"))
    func jsonOnATerminalIsJSONAlone() throws {
        let dir = try TempDir()
        try dir.write("files/etc/marker", "one\n")
        try dir.write("image.yaml", "name: kiln-test/json\ntag: v1\ncontents:\n  - source: files\n")
        // stdout to a file, stderr on the terminal.
        let out = try Self.onTerminal("\(Self.quoted(kilnPath)) build image.yaml -o j.tar --json --cache-dir cache > result.json", cwd: dir.path)
        #expect(Self.frames(out).isEmpty, "\(out.debugDescription)")
        let json = try parseJSON(String(decoding: try dir.bytes("result.json"), as: UTF8.self)) as? [String: Any]
        #expect((json?["manifestDigest"] as? String)?.hasPrefix("sha256:") == true, "\(String(describing: json))")
    }

    @Test func quietHidesNoticesButNotWarnings() throws {
        let dir = try TempDir()
        try dir.write("files/etc/marker", "one\n")
        try dir.write("image.yaml", "name: kiln-test/quiet\ntag: v1\ncontents:\n  - source: files\n")
        let spec = dir.path + "/image.yaml", cache = dir.path + "/cache"
        try kiln(["build", spec, "-o", dir.path + "/a.tar", "--cache-dir", cache])
        // An unchanged rebuild says it took the plan from the cache: a notice.
        let loud = try kiln(["build", spec, "-o", dir.path + "/b.tar", "--cache-dir", cache])
        #expect(loud.stderr.contains("kiln: nothing the contents name changed"), "\(loud)")
        let quiet = try kiln(["build", spec, "-o", dir.path + "/c.tar", "--cache-dir", cache, "--quiet"])
        #expect(quiet.stderr.isEmpty && quiet.stdout.hasPrefix("docker-archive:"), "\(quiet)")
        // --log-level names what is printed; a bad level is a usage error.
        let warnOnly = try kiln(["--log-level", "warning", "build", spec, "-o", dir.path + "/d.tar", "--cache-dir", cache])
        #expect(warnOnly.stderr.isEmpty, "\(warnOnly)")
        let bad = try kiln(["build", spec, "--log-level", "loud"], check: false)
        #expect(bad.status == 64 && bad.stderr.contains("--log-level"), "\(bad)")
    }

    @Test(.enabled(if: hasRegistry, "needs docker-registry"))
    func debugLogShowsRequestsButNoSecret() throws {
        let tokens = try TokenServer()
        defer { tokens.stop() }
        let reg = try TestRegistry(tokens: tokens)
        let env = try KilnEnv()
        let src = try TempDir()
        let spec = try writeFilesSpec(in: src, bigBytes: 300_000)
        let ref = "docker://\(reg.host)/team/app:1"
        try env.kiln(["login", reg.host, "-u", "alice", "--password-stdin"], stdin: TokenServer.password + "\n")

        let pushed = try env.kiln(["--log-level", "debug", "build", spec, "--push", ref])
        let log = pushed.stderr
        // The scheme probe, the token request, blob uploads and the manifest, with status,
        // size and time.
        #expect(log.contains("kiln: debug: http: GET http://\(reg.host)/v2/ 401"), "\(log)")
        #expect(log.contains("kiln: debug: http: GET http://127.0.0.1:\(tokens.port)/token?"), "\(log)")
        #expect(log.contains("scope=repository:team/app:pull,push"), "\(log)")
        #expect(log.contains("kiln: debug: http: POST http://\(reg.host)/v2/team/app/blobs/uploads/"), "\(log)")
        #expect(log.contains("kiln: debug: http: PUT http://\(reg.host)/v2/team/app/manifests/1 201"), "\(log)")
        #expect(log.split(separator: "\n").contains { $0.contains("debug: http: PUT") && $0.hasSuffix(" s") && $0.contains("digest=sha256:") }, "\(log)")
        // Cache decisions and phase timings.
        #expect(log.contains("kiln: debug: cache: layer cache miss "), "\(log)")
        #expect(log.contains("kiln: debug: progress: planning: "), "\(log)")
        // No secret: not the password, its Basic form, the token, nor the upload state.
        let basic = Data("alice:\(TokenServer.password)".utf8).base64EncodedString()
        for secret in [TokenServer.password, basic, "tok-", "Bearer", "Authorization"] {
            #expect(!(pushed.stdout + log).contains(secret), "\(secret) in \(log)")
        }
        #expect(!log.contains("_state=") || log.split(separator: "\n").filter { $0.contains("_state=") }.allSatisfy { $0.contains("_state=…") }, "\(log)")
        // Without --log-level, none of it.
        let plain = try env.kiln(["build", spec, "--push", ref])
        #expect(!plain.stderr.contains("debug"), "\(plain.stderr)")
    }
}
