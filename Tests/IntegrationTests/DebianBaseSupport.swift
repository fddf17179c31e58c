import Foundation

/// Debian minbase images for the tests that need a real distribution base (apt in the
/// runAsRoot sandbox, a base of another glibc): `KILN_TEST_DEBIAN_BASE` when given (a
/// docker-archive path or any `fromImage` reference), else made once per test run with
/// `mmdebstrap --variant=minbase` from the host's apt mirror (the only network the tests
/// use besides 127.0.0.1, as the host's apt sources are reachable here) and turned into
/// a docker-archive by Kiln itself. Nil, and the tests skipped, when neither works.
enum DebianBases {
    /// The host's suite (bookworm here), from its apt sources.
    static var hostSuite: String? {
        try? run("/bin/sh", ["-c", "awk '/^Suites:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1"],
                 check: false).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static var mirror: String? {
        try? run("/bin/sh", ["-c", "awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1"],
                 check: false).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static let hostSuiteBase: String? = {
        if let v = ProcessInfo.processInfo.environment["KILN_TEST_DEBIAN_BASE"], !v.isEmpty {
            if v.contains(":") { return v }
            return FileManager.default.fileExists(atPath: v) ? "docker-archive:" + v : nil
        }
        guard let suite = hostSuite, !suite.isEmpty else { return nil }
        return make(suite: suite)
    }()

    /// Debian 13 ("trixie"): a glibc newer than the host's bookworm.
    static let trixieBase: String? = make(suite: "trixie")

    private static let directory: String = {
        let d = NSTemporaryDirectory() + "kiln-test-debian-\(getpid())"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        atexit { _ = try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "kiln-test-debian-\(getpid())") }
        return d
    }()

    /// `mmdebstrap` of `suite` into a rootfs tar, then `kiln build` of it as a
    /// docker-archive; nil when mmdebstrap is missing, runs as non-root, or the mirror
    /// cannot be reached.
    private static func make(suite: String) -> String? {
        guard getuid() == 0, hasTool("mmdebstrap"), HostSources.reachable, let mirror, !mirror.isEmpty else { return nil }
        let rootfs = directory + "/\(suite).rootfs.tar"
        let archive = directory + "/\(suite).tar"
        guard (try? run("mmdebstrap", ["--quiet", "--variant=minbase", "--mode=root", "--format=tar", suite, rootfs, mirror],
                        check: false).status) == 0 else { return nil }
        let spec = directory + "/\(suite).yaml"
        try? """
            name: kiln-test/debian-\(suite)
            tag: minbase
            contents:
              - archive: \(rootfs)
            config:
              Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
              Cmd: ["/bin/bash"]
            """.write(toFile: spec, atomically: true, encoding: .utf8)
        guard (try? kiln(["build", spec, "-o", archive], check: false).status) == 0 else { return nil }
        return "docker-archive:" + archive
    }
}
