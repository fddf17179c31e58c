import Foundation
import Testing

/// A podman with private storage under a short path (podman refuses run roots over 50 characters).
struct Podman {
    let root = "/tmp/kp-\(UUID().uuidString.prefix(8))"
    var flags: [String] { ["--root", root + "/root", "--runroot", root + "/run", "--storage-driver", "vfs"] }

    @discardableResult
    func callAsFunction(_ args: [String], stdinFile: String? = nil) throws -> RunResult {
        try run("podman", flags + args, stdinFile: stdinFile)
    }

    /// Removes the images and the private storage (never `system reset`, which reaches
    /// beyond this root and disturbs podman runs in parallel tests).
    func cleanup() {
        _ = try? run("podman", flags + ["rmi", "-a", "-f"], check: false)
        _ = try? run("/bin/rm", ["-rf", root], check: false)
    }
}

@Suite(.serialized) struct StreamMergeTests {
    @Test func streamIsTheSameArchivePodmanLoadsFromAPipe() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir, name: "kiln-test/stream", tag: "s1")
        try kiln(["build", spec, "-o", dir.path + "/file.tar"])
        // Through a pipe: no seeking, no temporary file.
        try sh("\(kilnPath) build \(spec) --stream | cat > \(dir.path)/streamed.tar")
        #expect(try dir.bytes("streamed.tar") == dir.bytes("file.tar"))

        let podman = Podman()
        defer { podman.cleanup() }
        let load = try run("/bin/sh", ["-c", "\(kilnPath) build \(spec) --stream | podman \(podman.flags.joined(separator: " ")) load"])
        #expect(load.stdout.contains("kiln-test/stream:s1"))
        let out = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "localhost/kiln-test/stream:s1"])
        #expect(out.stdout == "hello from kiln\n")
    }

    @Test func streamRefusesAnOutputPath() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir)
        let r = try kiln(["build", spec, "--stream", "-o", dir.path + "/x.tar"], check: false)
        #expect(r.status != 0)
        #expect(r.stderr.contains("--stream"))
    }

    @Test func mergedArchiveLoadsBothImagesInOneGo() throws {
        let dir = try TempDir()
        let a = try TempDir(), b = try TempDir()
        let specA = try writeShellSpec(in: a, name: "kiln-test/merge-a", tag: "1")
        let specB = try writeShellSpec(in: b, name: "kiln-test/merge-b", tag: "2",
                                       extra: "extraCommands: \"echo b > b.txt\"")
        try kiln(["build", specA, "-o", dir.path + "/a.tar"])
        try kiln(["build", specB, "--format", "oci", "-o", dir.path + "/b"])
        try kiln(["merge", "docker-archive:\(dir.path)/a.tar", "oci:\(dir.path)/b:2", "-o", dir.path + "/both.tar"])
        let manifest = try parseJSON(try run("tar", ["-xOf", dir.path + "/both.tar", "manifest.json"]).stdout) as! [[String: Any]]
        #expect(manifest.count == 2)

        let podman = Podman()
        defer { podman.cleanup() }
        let load = try podman(["load", "-i", dir.path + "/both.tar"])
        #expect(load.stdout.contains("kiln-test/merge-a:1"))
        let images = try podman(["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout
        #expect(images.contains("localhost/kiln-test/merge-a:1"))
        // The OCI image had only a tag; merge names it image-2.
        #expect(images.contains("image-2:2"))
    }
}
