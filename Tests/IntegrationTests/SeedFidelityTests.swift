import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A private Docker daemon (Debian's `docker.io`, 20.10, which still has the legacy
/// loader that reads `<id>/json` when `manifest.json` is missing): its own data and
/// exec roots, its own config file, and a socket under a short /tmp path (unix socket
/// paths stop at 108 bytes). Nothing touches the host's /var/lib/docker or /run/docker.
final class DockerDaemon {
    static let dockerd = "/usr/sbin/dockerd"
    /// Debian's client, not whatever newer `docker` comes first on PATH.
    static let client = "/usr/bin/docker"

    let dir = "/tmp/kd-\(UUID().uuidString.prefix(8))"
    private let process = Process()
    private var stopped = false
    var socket: String { dir + "/d.sock" }

    init() throws {
        try FileManager.default.createDirectory(atPath: dir + "/client", withIntermediateDirectories: true)
        try "{}".write(toFile: dir + "/daemon.json", atomically: false, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: dir + "/log", contents: nil)
        process.executableURL = URL(fileURLWithPath: Self.dockerd)
        process.arguments = ["--config-file", dir + "/daemon.json",
                             "--iptables=false", "--ip6tables=false", "--bridge=none",
                             "--storage-driver=vfs", "--data-root", dir + "/data", "--exec-root", dir + "/exec",
                             "-H", "unix://" + socket, "-p", dir + "/pid"]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle(forWritingAtPath: dir + "/log")
        process.standardError = FileHandle(forWritingAtPath: dir + "/log")
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && process.isRunning {
            if FileManager.default.fileExists(atPath: socket),
               (try? self(["version"], check: false))?.status == 0 { return }
            usleep(200_000)
        }
        let log = (try? String(contentsOfFile: dir + "/log", encoding: .utf8)) ?? ""
        stop()
        throw CommandFailed(command: "dockerd", result: RunResult(status: -1, stdout: "", stderr: String(log.suffix(2000))))
    }

    deinit { stop() }

    /// Runs the client against this daemon, with its own config directory.
    @discardableResult
    func callAsFunction(_ args: [String], check: Bool = true) throws -> RunResult {
        try run(Self.client, ["-H", "unix://" + socket] + args, env: ["DOCKER_CONFIG": dir + "/client"], check: check)
    }

    /// SIGKILL and wait (a child of the test runner may have SIGTERM blocked); its
    /// containerd follows it. dockerd bind-mounts its data root (and network namespaces
    /// under the exec root), which outlive a killed daemon: unmount those, then remove.
    func stop() {
        guard !stopped else { return }
        stopped = true
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        let under = mounts.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ")
            guard fields.count > 1, fields[1] == dir || fields[1].hasPrefix(dir + "/") else { return nil }
            return String(fields[1])
        }
        for path in under.sorted(by: >) { umount2(path, Int32(MNT_DETACH)) }
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Root, both binaries, and a daemon that actually comes up here. Probed once.
    static let canStart: Bool = {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: dockerd),
              FileManager.default.isExecutableFile(atPath: client) else { return false }
        guard let probe = try? DockerDaemon() else { return false }
        probe.stop()
        return true
    }()
}

/// A docker-archive unpacked into a directory, read as `docker load` reads it.
struct UnpackedArchive {
    let path: String
    /// `manifest.json`'s one entry.
    let entry: [String: Any]
    /// The image config the entry points at.
    let config: [String: Any]
    /// The layer ids, bottom first.
    var layerIDs: [String] { (entry["Layers"] as! [String]).map { String($0.dropLast("/layer.tar".count)) } }

    init(_ archive: String, into dir: String) throws {
        path = dir
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try run("tar", ["-xf", archive, "-C", dir])
        let entries = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json"))) as! [[String: Any]]
        entry = entries[0]
        config = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: dir + "/" + (entry["Config"] as! String)))) as! [String: Any]
    }

    func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path + "/" + name)) }
}

/// Builds `kiln-test/legacy:v1`: two layers, the shell spec's as the base and one more
/// on top, with an Entrypoint, Cmd, Env, WorkingDir and a label. Returns its archive.
private func buildTwoLayerImage(in dir: TempDir, output: String = "legacy.tar") throws -> String {
    let baseDir = try TempDir()
    let base = try writeShellSpec(in: baseDir, name: "kiln-test/legacy-base", tag: "v1")
    try kiln(["build", base, "-o", dir.path + "/base.tar"])
    try dir.write("extra/who", "legacy\n")
    try dir.write("legacy.yaml", """
        name: kiln-test/legacy
        tag: v1
        fromImage: docker-archive:base.tar
        contents: [extra]
        config:
          Entrypoint: ["/bin/sh", "-c"]
          Cmd: ["read g < /etc/greeting; read w < /who; echo \\"$g, $w, $MODE\\""]
          Env: ["PATH=/usr/bin:/bin", "MODE=v1json"]
          WorkingDir: /
          Labels: {org.example.kind: legacy}
        """)
    try kiln(["build", dir.path + "/legacy.yaml", "-o", dir.path + "/" + output])
    return dir.path + "/" + output
}

private func jsonObject(_ data: Data) throws -> [String: Any] {
    try JSONSerialization.jsonObject(with: data) as! [String: Any]
}

/// The same value, compared as JSON.
private func sameJSON(_ a: Any?, _ b: Any?) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case let (a?, b?): return NSDictionary(dictionary: ["v": a]).isEqual(to: ["v": b])
    default: return false
    }
}

/// Whether the host's containers/image (skopeo, podman) reads a gzip-compressed
/// docker-archive. Debian bookworm's (5.23.1, skopeo 1.9.3, podman 4.3.1) detects the
/// gzip and then fails with "invalid tar header" on any of them, GNU gzip's included,
/// while xz, zstd and bzip2 work. Probed once with `gzip -n` of a plain archive.
enum ContainersImage {
    static let readsGzipDockerArchives: Bool = {
        guard let dir = try? TempDir(), let spec = try? writeShellSpec(in: dir, name: "kiln-test/gz-probe", tag: "p"),
              (try? kiln(["build", spec, "-o", dir.path + "/p.tar"])) != nil,
              (try? sh("gzip -n < \(dir.path)/p.tar > \(dir.path)/p.tar.gz")) != nil else { return false }
        return (try? run("skopeo", ["inspect", "docker-archive:\(dir.path)/p.tar.gz"], check: false))?.status == 0
    }()
}

/// The seed's docker-archive, beyond `manifest.json`: each layer's v1 `json` as
/// dockerTools writes it, so loaders that only know the legacy layout get the config;
/// and the `.tar.gz` the seed's `pigz -nT` makes.
@Suite(.serialized) struct SeedFidelityTests {
    @Test func eachLayerJSONIsTheV1ImageJSONTheSeedWrites() throws {
        let dir = try TempDir()
        let archive = try UnpackedArchive(try buildTwoLayerImage(in: dir), into: dir.path + "/x")
        let ids = archive.layerIDs
        try #require(ids.count == 2)
        let config = archive.config
        for (i, id) in ids.enumerated() {
            let raw = try archive.bytes("\(id)/json")
            let json = try jsonObject(raw)
            // Canonical: keys in byte order (Foundation's .sortedKeys is not), no whitespace.
            let text = String(decoding: raw, as: UTF8.self)
            let offsets = json.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
                .map { text.range(of: "\"\($0)\":")!.lowerBound }
            #expect(offsets == offsets.sorted(), "\(id)/json: \(text)")
            #expect(!text.contains("\n") && !text.contains("\": ") && !text.contains(", \""), "\(id)/json: \(text)")
            #expect(json["id"] as? String == id)
            #expect(json["parent"] as? String == (i == 0 ? nil : ids[i - 1]))
            #expect(json["created"] as? String == config["created"] as? String)
            #expect(json["os"] as? String == config["os"] as? String)
            // Size: the bytes of layer.tar, as the seed's `stat --printf=%s`.
            let size = try FileManager.default.attributesOfItem(atPath: archive.path + "/\(id)/layer.tar")[.size] as! Int
            #expect(json["Size"] as? Int == size)
            // checksum: the layer's tarsum, computed independently of the writer.
            let tarsum = try kiln(["tarsum", archive.path + "/\(id)/layer.tar"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(json["checksum"] as? String == tarsum)
            #expect(try String(decoding: archive.bytes("\(id)/VERSION"), as: UTF8.self) == "1.0")
        }
        // The top layer carries the image's v1 fields, the lower one only its own.
        let top = try jsonObject(try archive.bytes("\(ids[1])/json"))
        #expect(Set(top.keys) == ["Size", "architecture", "checksum", "config", "created", "id", "os", "parent"])
        #expect(top["architecture"] as? String == config["architecture"] as? String)
        #expect(sameJSON(top["config"], config["config"]))
        let cfg = top["config"] as? [String: Any]
        #expect(cfg?["Entrypoint"] as? [String] == ["/bin/sh", "-c"])
        #expect(cfg?["Env"] as? [String] == ["PATH=/usr/bin:/bin", "MODE=v1json"])
        let bottom = try jsonObject(try archive.bytes("\(ids[0])/json"))
        #expect(Set(bottom.keys) == ["Size", "checksum", "created", "id", "os"])
        // repositories names the top layer.
        let repositories = try jsonObject(try archive.bytes("repositories"))
        #expect((repositories["kiln-test/legacy"] as? [String: String])?["v1"] == ids[1])
    }

    @Test(.enabled(if: DockerDaemon.canStart, "needs root and a dockerd that starts here (scripts/setup --test installs docker.io)"))
    func archiveWithoutManifestLoadsIntoDockerWithItsConfig() throws {
        let dir = try TempDir()
        let path = try buildTwoLayerImage(in: dir)
        let archive = try UnpackedArchive(path, into: dir.path + "/x")
        // GNU tar's --delete mangles an archive that is not a whole number of 10 KiB
        // records (Docker's and Kiln's are not) unless it works block by block.
        try run("tar", ["-b1", "--delete", "-f", path, "manifest.json"])
        let listing = try run("tar", ["-tf", path]).stdout.split(separator: "\n")
        #expect(!listing.contains("manifest.json") && listing.contains("repositories"))

        let docker = try DockerDaemon()
        defer { docker.stop() }
        try docker(["load", "-i", path])
        let inspected = try JSONSerialization.jsonObject(with: Data(try docker(["inspect", "kiln-test/legacy:v1"]).stdout.utf8)) as! [[String: Any]]
        let image = try #require(inspected.first)
        let config = archive.config["config"] as! [String: Any]
        let loaded = try #require(image["Config"] as? [String: Any])
        #expect(image["Architecture"] as? String == archive.config["architecture"] as? String)
        #expect(image["Os"] as? String == "linux")
        #expect(loaded["Entrypoint"] as? [String] == ["/bin/sh", "-c"])
        for key in ["Entrypoint", "Cmd", "Env", "WorkingDir", "Labels"] {
            #expect(sameJSON(loaded[key], config[key]), "Config.\(key): \(String(describing: loaded[key])) vs \(String(describing: config[key]))")
        }
        // Docker rebuilt the stack from the parent links and the layer tars.
        let rootfs = (archive.config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        #expect((image["RootFS"] as? [String: Any])?["Layers"] as? [String] == rootfs)

        let out = try docker(["run", "--rm", "--network", "none", "kiln-test/legacy:v1"])
        #expect(out.stdout == "hello from kiln, legacy, v1json\n", "\(out)")
    }

    @Test(.enabled(if: DockerDaemon.canStart, "needs root and a dockerd that starts here (scripts/setup --test installs docker.io)"))
    func gzippedArchiveLoadsIntoDocker() throws {
        let dir = try TempDir()
        let path = try buildTwoLayerImage(in: dir, output: "legacy.tar.gz")
        let docker = try DockerDaemon()
        defer { docker.stop() }
        let load = try docker(["load", "-i", path])
        #expect(load.stdout.contains("kiln-test/legacy:v1"))
        let out = try docker(["run", "--rm", "--network", "none", "kiln-test/legacy:v1"])
        #expect(out.stdout == "hello from kiln, legacy, v1json\n", "\(out)")
    }

    @Test func tarGzOutputIsAReproducibleGzipOfTheSameArchive() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir, name: "kiln-test/gz", tag: "v1")
        try FileManager.default.createDirectory(atPath: dir.path + "/out", withIntermediateDirectories: true)
        let out = dir.path + "/out/"
        try kiln(["build", spec, "-o", out + "img.tar"])
        try kiln(["build", spec, "-o", out + "img.tar.gz"])
        try kiln(["build", spec, "-o", out + "again.tar.gz"])
        try kiln(["build", spec, "--format", "docker-archive", "-o", out + "img.tgz"])
        // Temporary files were renamed into place; nothing else is left.
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(names == ["again.tar.gz", "img.tar", "img.tar.gz", "img.tgz"])

        let plain = try Data(contentsOf: URL(fileURLWithPath: out + "img.tar"))
        let gz = try Data(contentsOf: URL(fileURLWithPath: out + "img.tar.gz"))
        #expect(Array(plain.prefix(2)) != [0x1f, 0x8b])
        // pigz -nT: no name, no mtime (RFC 1952 §2.3: FLG without FNAME, MTIME 0).
        #expect(Array(gz.prefix(8)) == [0x1f, 0x8b, 8, 0, 0, 0, 0, 0])
        // Two builds, any name: the same bytes.
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "again.tar.gz")) == gz)
        #expect(try Data(contentsOf: URL(fileURLWithPath: out + "img.tgz")) == gz)
        try run("gzip", ["-t", out + "img.tar.gz"])
        // The plain archive, compressed: nothing else differs.
        try sh("gzip -dc \(out)img.tar.gz | cmp - \(out)img.tar")
    }

    @Test(.enabled(if: ContainersImage.readsGzipDockerArchives,
                   "this host's skopeo and podman (containers/image) read no gzip-compressed docker-archive, not even GNU gzip's"))
    func tarGzOutputIsReadBySkopeoAndPodman() throws {
        let dir = try TempDir()
        let spec = try writeShellSpec(in: dir, name: "kiln-test/gz", tag: "v1")
        let out = dir.path + "/"
        try kiln(["build", spec, "-o", out + "img.tar"])
        try kiln(["build", spec, "-o", out + "img.tar.gz"])
        let inspect = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(out)img.tar.gz"]).stdout) as! [String: Any]
        let plainInspect = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(out)img.tar"]).stdout) as! [String: Any]
        #expect(sameJSON(inspect["rootfs"], plainInspect["rootfs"]))
        try run("skopeo", ["copy", "docker-archive:\(out)img.tar.gz", "oci:\(dir.path)/copied:v1"])
        #expect(FileManager.default.fileExists(atPath: dir.path + "/copied/index.json"))

        let podman = Podman()
        defer { podman.cleanup() }
        let load = try podman(["load", "-i", out + "img.tar.gz"])
        #expect(load.stdout.contains("kiln-test/gz:v1"))
        let ran = try podman(["run", "--rm", "--runtime", "runc", "--network", "none",
                              "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "localhost/kiln-test/gz:v1"])
        #expect(ran.stdout == "hello from kiln\n")
    }

    @Test func aFailedBuildLeavesNoTarGzBehind() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", "name: kiln-test/broken\ncontents: [does-not-exist]\n")
        try FileManager.default.createDirectory(atPath: dir.path + "/out", withIntermediateDirectories: true)
        let r = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/out/broken.tar.gz"], check: false)
        #expect(r.status != 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/out") == [])
    }

    @Test func copyAndMergeWriteTarGzToo() throws {
        let dir = try TempDir()
        let a = try TempDir(), b = try TempDir()
        try kiln(["build", try writeShellSpec(in: a, name: "kiln-test/gz-a", tag: "1"), "-o", dir.path + "/a.tar"])
        try kiln(["build", try writeShellSpec(in: b, name: "kiln-test/gz-b", tag: "2", extra: "extraCommands: \"echo b > b.txt\""),
                  "-o", dir.path + "/b.tar"])
        try kiln(["copy", "docker-archive:\(dir.path)/a.tar", "docker-archive:\(dir.path)/copy.tar.gz"])
        try sh("gzip -dc \(dir.path)/copy.tar.gz | cmp - \(dir.path)/a.tar")

        // Merged: the same archive as `-o both.tar` (which StreamMergeTests loads), compressed.
        let images = ["docker-archive:\(dir.path)/a.tar", "docker-archive:\(dir.path)/b.tar"]
        try kiln(["merge"] + images + ["-o", dir.path + "/both.tar.gz"])
        try kiln(["merge"] + images + ["-o", dir.path + "/both.tar"])
        try run("gzip", ["-t", dir.path + "/both.tar.gz"])
        try sh("gzip -dc \(dir.path)/both.tar.gz | cmp - \(dir.path)/both.tar")
    }
}
