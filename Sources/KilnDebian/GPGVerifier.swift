#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive

/// Checks Release signatures with `gpgv`, as apt does (apt-secure(8)): the text that is
/// trusted is only what gpgv says was signed, by a key in the given keyrings.
///
/// - Armored keyrings (`.asc`, inline Signed-By blocks) are dearmored by hand into a
///   temporary file: gpgv reads only binary keyrings.
/// - SHA-1 signatures are refused (`--weak-digest sha1`), as apt does since 2.x.
/// - A signature by an expired or revoked key, or any bad signature next to a good one,
///   fails the check.
/// - gpgv runs with a throwaway GNUPGHOME, so nothing of the user's GnuPG setup counts.
public enum GPGVerifier {
    /// Verifies a clearsigned InRelease and returns the signed text as gpgv wrote it out.
    /// Refuses, as apt does, anything outside the one signed block: text before the
    /// `BEGIN PGP SIGNED MESSAGE` line or after `END PGP SIGNATURE` (blank lines aside), a
    /// second signed message, or an undashed `-----` line inside the signed text.
    public static func verifyInRelease(_ data: [UInt8], keyrings: [String], origin: String) throws -> String {
        try checkClearsignedStructure(data, origin: origin)
        return try withScratch(origin: origin) { dir in
            let input = dir + "/InRelease"
            let output = dir + "/signed"
            try write(data, to: input, origin: origin)
            try runGPGV(["--output", output, input], keyrings: keyrings, scratch: dir, origin: origin)
            let bytes = try read(output, origin: origin)
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Verifies a detached `Release.gpg` over `Release` and returns the Release text.
    public static func verifyDetached(release: [UInt8], signature: [UInt8], keyrings: [String], origin: String) throws -> String {
        try withScratch(origin: origin) { dir in
            let rel = dir + "/Release"
            let sig = dir + "/Release.gpg"
            try write(release, to: rel, origin: origin)
            try write(signature, to: sig, origin: origin)
            try runGPGV([sig, rel], keyrings: keyrings, scratch: dir, origin: origin)
            return String(decoding: release, as: UTF8.self)
        }
    }

    // MARK: Clearsign structure (RFC 4880 §7)

    static func checkClearsignedStructure(_ data: [UInt8], origin: String) throws {
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            line.hasSuffix("\r") ? line.dropLast() : line
        }
        func blank(_ s: Substring) -> Bool { s.allSatisfy { $0 == " " || $0 == "\t" } }
        func refuse(_ why: String) -> RepositoryError { .badSignature(origin, reason: why) }
        var i = 0
        while i < lines.count, blank(lines[i]) { i += 1 }
        guard i < lines.count, lines[i] == "-----BEGIN PGP SIGNED MESSAGE-----" else {
            throw refuse("not a clearsigned file, or text before the signed message")
        }
        i += 1
        // Armor headers (`Hash: …`) up to the blank line that starts the text.
        while i < lines.count, !blank(lines[i]) {
            guard lines[i].contains(": ") else { throw refuse("bad armor header '\(lines[i])'") }
            i += 1
        }
        i += 1
        // The signed text: a line starting with '-' must be dash-escaped (RFC 4880 §7.1).
        while i < lines.count, lines[i] != "-----BEGIN PGP SIGNATURE-----" {
            if lines[i].hasPrefix("-") && !lines[i].hasPrefix("- ") {
                throw refuse("unexpected armor line '\(lines[i])' inside the signed text")
            }
            i += 1
        }
        guard i < lines.count else { throw refuse("no signature block") }
        while i < lines.count, lines[i] != "-----END PGP SIGNATURE-----" { i += 1 }
        guard i < lines.count else { throw refuse("unterminated signature block") }
        i += 1
        while i < lines.count {
            guard blank(lines[i]) else { throw refuse("text after the signature") }
            i += 1
        }
    }

    // MARK: gpgv

    private static func runGPGV(_ args: [String], keyrings: [String], scratch: String, origin: String) throws {
        guard !keyrings.isEmpty else {
            throw RepositoryError.badSignature(origin, reason: "no keyring to check it against (no Signed-By and no apt trusted keyrings)")
        }
        guard let gpgv = findExecutable("gpgv") else {
            throw RepositoryError.unsupported(origin, reason: "gpgv is needed to verify repository signatures (apt-get install gpgv)")
        }
        var ringArgs: [String] = []
        for (n, path) in keyrings.enumerated() {
            ringArgs += ["--keyring", try binaryKeyring(path, scratch: scratch, index: n, origin: origin)]
        }
        let home = scratch + "/gnupg"
        mkdir(home, 0o700)

        let p = Process()
        p.executableURL = URL(fileURLWithPath: gpgv)
        p.arguments = ["--status-fd", "2", "--weak-digest", "sha1"] + ringArgs + args
        var env = ProcessInfo.processInfo.environment
        env["GNUPGHOME"] = home
        env["LC_ALL"] = "C"
        p.environment = env
        // gpgv's messages go to a file, not a pipe: a pipe's write end could be inherited by
        // a process spawned at the same moment on another thread, and reading to EOF would
        // then wait for that process to end.
        let logPath = scratch + "/gpgv.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let log = FileHandle(forWritingAtPath: logPath) else {
            throw RepositoryError.io(logPath, reason: "cannot create gpgv's log")
        }
        p.standardError = log
        p.standardOutput = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            try? log.close()
            throw RepositoryError.unsupported(origin, reason: "cannot run \(gpgv): \(error)")
        }
        p.waitUntilExit()
        try? log.close()
        let stderr = String(decoding: (try? FileReader(path: logPath).readAll(limit: 1 << 20)) ?? [], as: UTF8.self)
        let status = stderr.split(separator: "\n").filter { $0.hasPrefix("[GNUPG:] ") }.map { $0.dropFirst(9) }
        let messages = stderr.split(separator: "\n").filter { !$0.hasPrefix("[GNUPG:] ") }
        func has(_ key: String) -> Substring? { status.first { $0 == key || $0.hasPrefix(key + " ") } }

        if let bad = has("BADSIG") {
            throw RepositoryError.badSignature(origin, reason: "BAD signature from key \(bad.split(separator: " ").dropFirst().joined(separator: " "))")
        }
        if let e = has("EXPKEYSIG") ?? has("REVKEYSIG") ?? has("EXPSIG") {
            let kind = e.prefix { $0 != " " }
            let why = kind == "EXPKEYSIG" ? "signed by an expired key" : kind == "REVKEYSIG" ? "signed by a revoked key" : "the signature expired"
            throw RepositoryError.badSignature(origin, reason: "\(why): \(e.split(separator: " ").dropFirst().joined(separator: " "))")
        }
        if let missing = has("NO_PUBKEY") {
            throw RepositoryError.badSignature(origin, reason: "signed by key \(missing.split(separator: " ").last ?? ""), which is not in \(keyrings.joined(separator: ", "))")
        }
        guard p.terminationStatus == 0, has("GOODSIG") != nil, has("VALIDSIG") != nil, has("ERRSIG") == nil else {
            let line = messages.last { $0.contains("gpgv:") } ?? messages.last ?? "gpgv exited with status \(p.terminationStatus)"
            throw RepositoryError.badSignature(origin, reason: line.repoTrimmed())
        }
    }

    /// A binary keyring for gpgv: the file itself, or for an armored one (`.asc`, inline
    /// keys: detected by content, not by name) its packets decoded into `scratch`.
    private static func binaryKeyring(_ path: String, scratch: String, index: Int, origin: String) throws -> String {
        let bytes: [UInt8]
        do {
            bytes = try FileReader(path: path).readAll(limit: 64 << 20)
        } catch {
            throw RepositoryError.io(path, reason: "cannot read keyring for \(origin): \(error)")
        }
        let armorStart = Array("-----BEGIN PGP".utf8)
        let head = bytes.drop { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }
        guard head.starts(with: armorStart) else {
            // gpgv wants a slash to take the name as a file, not a name in GNUPGHOME.
            return path.hasPrefix("/") ? path : "./" + path
        }
        let packets = try dearmor(String(decoding: bytes, as: UTF8.self), path: path)
        let out = scratch + "/keyring\(index).gpg"
        try write(packets, to: out, origin: path)
        return out
    }

    /// The packets of every ASCII-armored block in `text` (RFC 4880 §6.2): the armor
    /// headers up to a blank line are skipped, the base64 body ends at the `=` checksum.
    static func dearmor(_ text: String, path: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var inBlock = false, inBody = false, checksumSeen = false
        var body = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.filter { $0 != "\r" }.repoTrimmed()
            if !inBlock {
                if line == "-----BEGIN PGP PUBLIC KEY BLOCK-----" {
                    (inBlock, inBody, checksumSeen, body) = (true, false, false, "")
                }
            } else if line.hasPrefix("-----END PGP PUBLIC KEY BLOCK-----") {
                guard let data = Data(base64Encoded: body), !data.isEmpty else {
                    throw RepositoryError.malformed(path, line: 0, reason: "armored key block is not valid base64")
                }
                out += data
                inBlock = false
            } else if !inBody {
                // Armor headers (`Comment: …`) end at a blank line.
                if line.isEmpty { inBody = true }
            } else if line.hasPrefix("=") {
                checksumSeen = true  // the CRC-24 line; the packets carry their own integrity
            } else if !checksumSeen {
                body += line
            }
        }
        guard !out.isEmpty else {
            throw RepositoryError.malformed(path, line: 0, reason: "no PGP PUBLIC KEY BLOCK in the armored keyring")
        }
        return out
    }

    // MARK: Files

    private static func withScratch<T>(origin: String, _ body: (String) throws -> T) throws -> T {
        let tmp = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((tmp + "/kiln-gpgv.XXXXXX").utf8CString)
        guard let dirPtr = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw RepositoryError.io(tmp, reason: "cannot create a scratch directory: \(String(cString: strerror(errno)))")
        }
        let dir = String(cString: dirPtr)
        defer { FileSystem.removeTree(dir) }
        return try body(dir)
    }

    private static func write(_ bytes: [UInt8], to path: String, origin: String) throws {
        do {
            try FileWriter(creating: path, mode: 0o600).write(bytes)
        } catch {
            throw RepositoryError.io(path, reason: "\(error)")
        }
    }

    private static func read(_ path: String, origin: String) throws -> [UInt8] {
        do {
            return try FileReader(path: path).readAll(limit: 256 << 20)
        } catch {
            throw RepositoryError.badSignature(origin, reason: "gpgv wrote no signed text")
        }
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}
