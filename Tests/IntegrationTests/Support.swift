import Foundation
import Testing

/// The package root, found from this file's path.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// The cache root the tests' kiln runs use by default (`XDG_CACHE_HOME`): private to
/// this test process, removed when it exits.
let testCacheHome: String = {
    let path = NSTemporaryDirectory() + "kiln-test-cache-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { _ = try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "kiln-test-cache-\(getpid())") }
    return path
}()

/// The `kiln` binary under test: `$KILN`, or the debug build `scripts/test` makes.
let kilnPath: String = ProcessInfo.processInfo.environment["KILN"] ?? packageRoot + "/.build/debug/kiln"

struct RunResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

struct CommandFailed: Error, CustomStringConvertible {
    var command: String
    var result: RunResult
    var description: String { "\(command) failed: \(result)" }
}

/// Runs a program with output captured through files (no pipe deadlocks).
@discardableResult
func run(_ exe: String, _ args: [String], cwd: String? = nil, env: [String: String] = [:],
         stdinFile: String? = nil, check: Bool = true) throws -> RunResult {
    let dir = NSTemporaryDirectory() + "kiln-run-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    FileManager.default.createFile(atPath: dir + "/out", contents: nil)
    FileManager.default.createFile(atPath: dir + "/err", contents: nil)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe.hasPrefix("/") ? exe : "/usr/bin/env")
    p.arguments = exe.hasPrefix("/") ? args : [exe] + args
    if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    var environment = ProcessInfo.processInfo.environment
    // Never the user's cache (~/.cache/kiln): one of the test run's own, unless the
    // test names one (`--cache-dir` on the command line wins over both).
    environment["XDG_CACHE_HOME"] = testCacheHome
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    p.standardInput = stdinFile.flatMap { FileHandle(forReadingAtPath: $0) } ?? FileHandle.nullDevice
    p.standardOutput = FileHandle(forWritingAtPath: dir + "/out")
    p.standardError = FileHandle(forWritingAtPath: dir + "/err")
    try p.run()
    p.waitUntilExit()
    let result = RunResult(
        status: p.terminationStatus,
        stdout: (try? String(contentsOfFile: dir + "/out", encoding: .utf8)) ?? "",
        stderr: (try? String(contentsOfFile: dir + "/err", encoding: .utf8)) ?? "")
    if check && result.status != 0 {
        throw CommandFailed(command: ([exe] + args).joined(separator: " "), result: result)
    }
    return result
}

@discardableResult
func kiln(_ args: [String], cwd: String? = nil, env: [String: String] = [:], check: Bool = true) throws -> RunResult {
    try run(kilnPath, args, cwd: cwd, env: env, check: check)
}

/// Runs a shell script with `set -eu`.
@discardableResult
func sh(_ script: String, cwd: String? = nil, check: Bool = true) throws -> RunResult {
    try run("/bin/sh", ["-euc", script], cwd: cwd, check: check)
}

/// A temporary directory removed when the value goes away.
final class TempDir {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "kiln-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func write(_ name: String, _ text: String, mode: Int = 0o644) throws {
        let p = path + "/" + name
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: p, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: p)
    }

    func bytes(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: path + "/" + name))
    }
}

/// The whole content of a file or, for a directory, every file under it by relative path.
func snapshot(_ path: String) throws -> [String: Data] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [:] }
    if !isDir.boolValue { return ["": try Data(contentsOf: URL(fileURLWithPath: path))] }
    var out: [String: Data] = [:]
    for case let rel as String in FileManager.default.enumerator(atPath: path)! {
        var d: ObjCBool = false
        FileManager.default.fileExists(atPath: path + "/" + rel, isDirectory: &d)
        if !d.boolValue { out[rel] = try Data(contentsOf: URL(fileURLWithPath: path + "/" + rel)) }
    }
    return out
}

func parseJSON(_ s: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(s.utf8))
}
