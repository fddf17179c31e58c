import Foundation
import Testing

/// The exact bytes of one fixture image in every output format and layer compressor.
/// A change here means every user's image digests change: a new libdeflate or libzstd
/// that compresses differently, a tar or JSON detail, a config field. If the change is
/// intended (and the layer cache key covers it, see `Compression.encoderIdentity`),
/// run with `KILN_PRINT_GOLDEN=1` and paste the printed table; say why in the commit.
@Suite struct GoldenDigestTests {
    /// What each build's output hashes to: the manifest digest (`oci`), and the sha256
    /// of the whole file (`docker-archive`, `oci-archive`, `.tar.gz`).
    static let golden: [String: String] = [
        "docker-archive": "sha256:cc6709d24856e6c2f06381d0fc54e0183f46d4bbce604a60ba370aa5a3d4ad4d",
        "docker-archive .tar.gz": "sha256:fb11f4d6d828b356a64e8640801e8057e8b1bf5cf97f5f9bdb47302112ab29bb",
        "docker-archive .tar.zst": "sha256:bf476cede2ce73ecce1c800b21a9b423006ecc597901817c5935d5a8644594f8",
        "gzip oci": "sha256:1b147d5a8a0ae8c7e5c6c9753e1d262e735c7dc01edf541508a0d5cf6b90a618",
        "gzip oci-archive": "sha256:f78470aa30d801c99241a3dc2562f84d930d430f258a807e78376b19ba6d517e",
        "none oci": "sha256:dd7332f6fc923966f7d008f5f17edebe76236794378bcbd3e7bc0180b29ad0e2",
        "none oci-archive": "sha256:ced575a7b516636384af78b05d6ecd9cbdcba9b9d1f5d2eb75ee9a7446a21ad1",
        "zstd oci": "sha256:27b117b7fb56c9bc5092ad659bdbe7480800d16f118bef35ccc4bf00e843d74c",
        "zstd oci-archive": "sha256:0d0500c5793d7acf86134730a76eff6b1d6580fec317bcf3134294684912445c",
    ]

    /// A fixture tree made from fixed bytes: files of several sizes (one spanning several
    /// of the parallel gzip's 1 MiB blocks), an executable, a symlink, nested and empty dirs.
    static func fixture(_ dir: TempDir) throws -> String {
        try dir.write("root/etc/motd", "golden fixture\n")
        try dir.write("root/usr/bin/hello", "#!/bin/sh\necho hello\n", mode: 0o755)
        try FileManager.default.createDirectory(atPath: dir.path + "/root/var/empty", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: dir.path + "/root/usr/bin/hi", withDestinationPath: "hello")
        // 3 MiB of a fixed pseudo-random sequence (xorshift), compressible in parts.
        var x: UInt32 = 2463534242
        var big = [UInt8](repeating: 0, count: 3 << 20)
        for i in big.indices {
            if i % 4096 < 2048 { big[i] = UInt8(truncatingIfNeeded: i / 4096) ; continue }
            x ^= x << 13; x ^= x >> 17; x ^= x << 5
            big[i] = UInt8(truncatingIfNeeded: x)
        }
        try FileManager.default.createDirectory(atPath: dir.path + "/root/usr/share", withIntermediateDirectories: true)
        try Data(big).write(to: URL(fileURLWithPath: dir.path + "/root/usr/share/blob.bin"))
        return dir.path
    }

    static func spec(_ dir: TempDir, compressor: String) throws -> String {
        try dir.write("image-\(compressor).yaml", """
            name: kiln-test/golden
            tag: "1.0"
            architecture: amd64
            created: 2024-01-01T00:00:00Z
            compressor: \(compressor)
            contents:
              - root
            users: [{name: app, uid: 1000, gid: 1000, home: /home/app, shell: /bin/sh}]
            config:
              Entrypoint: ["/usr/bin/hello"]
              Env: ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"]
              Labels: {org.example.zeta: "z", org.example.Alpha: "<&>é"}
            """)
        return dir.path + "/image-\(compressor).yaml"
    }

    @Test func digestsAreTheRecordedOnes() throws {
        let dir = try TempDir()
        _ = try Self.fixture(dir)
        let cache = dir.path + "/cache"
        var got: [String: String] = [:]
        for compressor in ["gzip", "zstd", "none"] {
            let spec = try Self.spec(dir, compressor: compressor)
            let oci = try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/oci-\(compressor)", "--json", "--cache-dir", cache])
            got["\(compressor) oci"] = (try parseJSON(oci.stdout) as! [String: Any])["manifestDigest"] as? String
            try kiln(["build", spec, "--format", "oci-archive", "-o", dir.path + "/\(compressor).oci.tar", "--cache-dir", cache])
            got["\(compressor) oci-archive"] = try sha256File(dir.path + "/\(compressor).oci.tar")
            // Docker-archives hold plain tars whatever the compressor: one of them is enough.
            if compressor == "gzip" {
                try kiln(["build", spec, "-o", dir.path + "/image.tar", "--cache-dir", cache])
                got["docker-archive"] = try sha256File(dir.path + "/image.tar")
                try kiln(["build", spec, "-o", dir.path + "/image.tar.gz", "--cache-dir", cache])
                got["docker-archive .tar.gz"] = try sha256File(dir.path + "/image.tar.gz")
                try kiln(["build", spec, "-o", dir.path + "/image.tar.zst", "--cache-dir", cache])
                got["docker-archive .tar.zst"] = try sha256File(dir.path + "/image.tar.zst")
            }
        }
        if ProcessInfo.processInfo.environment["KILN_PRINT_GOLDEN"] != nil {
            print(got.sorted { $0.key < $1.key }.map { "        \"\($0.key)\": \"\($0.value)\"," }.joined(separator: "\n"))
        }
        for (key, value) in got.sorted(by: { $0.key < $1.key }) {
            #expect(Self.golden[key] == value, "\(key): got \(value), recorded \(Self.golden[key] ?? "nothing")")
        }
        #expect(Set(got.keys) == Set(Self.golden.keys))
    }
}

func sha256File(_ path: String) throws -> String {
    "sha256:" + String(try run("sha256sum", [path]).stdout.prefix(64))
}
