import Foundation
import KilnOCI
import Testing
@testable import KilnBuild

@Suite struct SpecParseTests {
    @Test func fullSpec() throws {
        let yaml = """
        name: example/hello
        tag: "1.0"
        architecture: arm64
        os: linux
        variant: v8
        created: 2024-01-02T03:04:05+01:00
        mtime: 2023-06-01T00:00:00.500Z
        contents:
          - ./rootfs
          - source: ../shared/app
            target: /opt/app/
          - archive: /tmp/base.tar.gz
          - closure: store/paths
            target: /nix/./store/../store
        users:
          - name: root
            uid: 0
          - name: app
            uid: 1000
            gid: 100
            home: /srv/app
            shell: /bin/bash
        groups:
          - name: users
            gid: 100
            members: [app]
          - {name: wheel, gid: 10}
        perms:
          - path: /opt/app/*
            mode: "0755"
            uid: 1000
            gid: 100
          - {path: /etc/shadow, mode: 640}
        extraCommands: |
          mkdir -p tmp
          chmod 1777 tmp
        xattrs: true
        compressor: zstd
        config:
          Entrypoint: [/bin/app]
          Cmd: [--port, 8080]
          Env:
            - PATH=/usr/bin:/bin
            - EMPTY=
          WorkingDir: /srv/app
          User: "1000:100"
          ExposedPorts: [8080, 53/udp, "9000/TCP"]
          Volumes: [/data]
          Labels:
            org.opencontainers.image.title: hello
            version: 1.5
            enabled: true
          StopSignal: TERM
          Healthcheck:
            Test: [CMD, /bin/app, --check]
            Interval: 30s
            Timeout: 1m30s
            StartPeriod: 1000000000
            StartInterval: 500ms
            Retries: 3
          OnBuild: [RUN true]
          Shell: [/bin/bash, -c]
          ArgsEscaped: false
        """
        let s = try parse(yaml, env: ["SOURCE_DATE_EPOCH": "1234"])
        #expect(s.path == specPath)
        #expect(s.fileURL == URL(fileURLWithPath: specPath))
        #expect(s.directory == "/specs/app")
        #expect(s.name == "example/hello")
        #expect(s.tag == "1.0")
        #expect(s.architecture == "arm64")
        #expect(s.os == "linux")
        #expect(s.variant == "v8")
        #expect(s.created == .fixed(epochSeconds: 1_704_161_045, rfc3339: "2024-01-02T02:04:05Z"))
        #expect(s.mtime == .fixed(epochSeconds: 1_685_577_600, rfc3339: "2023-06-01T00:00:00.5Z"))
        #expect(s.effectiveMtime == s.mtime)

        #expect(s.contents.map(\.kind) == [.directory, .source, .archive, .closure])
        #expect(s.contents.map(\.path) == ["/specs/app/rootfs", "/specs/shared/app", "/tmp/base.tar.gz", "/specs/app/store/paths"])
        #expect(s.contents.map(\.target) == [nil, "/opt/app/", nil, "/nix/store"])
        #expect(s.contents.map(\.location.line) == [9, 10, 12, 13])
        #expect(s.contents[1].location.file == specPath)

        #expect(s.users.count == 2)
        #expect(s.users[0].name == "root" && s.users[0].uid == 0 && s.users[0].gid == 0)
        #expect(s.users[0].home == "/root" && s.users[0].shell == "/bin/sh")
        #expect(s.users[1] == Spec.User(name: "app", uid: 1000, gid: 100, home: "/srv/app", shell: "/bin/bash",
                                        location: s.users[1].location))
        #expect(s.users[1].location.line == 18)
        #expect(s.groups.map(\.name) == ["users", "wheel"])
        #expect(s.groups.map(\.gid) == [100, 10])
        #expect(s.groups[0].members == ["app"])
        #expect(s.groups[1].members == [])

        #expect(s.perms.count == 2)
        #expect(s.perms[0].path == "/opt/app/*")
        #expect(s.perms[0].mode == 0o755 && s.perms[0].uid == 1000 && s.perms[0].gid == 100)
        #expect(s.perms[1].mode == 0o640 && s.perms[1].uid == nil && s.perms[1].gid == nil)

        #expect(s.extraCommands == "mkdir -p tmp\nchmod 1777 tmp\n")
        #expect(s.xattrs == true)
        #expect(s.compressor == .zstd)

        let c = s.config
        #expect(c.Entrypoint == ["/bin/app"])
        #expect(c.Cmd == ["--port", "8080"])
        #expect(c.Env == ["PATH=/usr/bin:/bin", "EMPTY="])
        #expect(c.WorkingDir == "/srv/app")
        #expect(c.User == "1000:100")
        #expect(c.ExposedPorts == ["8080/tcp": EmptyObject(), "53/udp": EmptyObject(), "9000/tcp": EmptyObject()])
        #expect(c.Volumes == ["/data": EmptyObject()])
        #expect(c.Labels == ["org.opencontainers.image.title": "hello", "version": "1.5", "enabled": "true"])
        #expect(c.StopSignal == "SIGTERM")
        #expect(c.Healthcheck?.Test == ["CMD", "/bin/app", "--check"])
        #expect(c.Healthcheck?.Interval == 30_000_000_000)
        #expect(c.Healthcheck?.Timeout == 90_000_000_000)
        #expect(c.Healthcheck?.StartPeriod == 1_000_000_000)
        #expect(c.Healthcheck?.StartInterval == 500_000_000)
        #expect(c.Healthcheck?.Retries == 3)
        #expect(c.OnBuild == ["RUN true"])
        #expect(c.Shell == ["/bin/bash", "-c"])
        #expect(c.ArgsEscaped == false)

        #expect(s.keyLocations["config"]?.line == 39)
        #expect(s.keyLocations["name"] == KilnBuild.SourceLocation(file: specPath, line: 1, column: 1))
    }

    @Test func defaults() throws {
        let s = try parse("name: hello\n")
        #expect(s.tag == nil)
        #expect(s.architecture == nil)
        #expect(s.os == "linux")
        #expect(s.variant == nil)
        #expect(s.created == .fixed(epochSeconds: 1, rfc3339: "1970-01-01T00:00:01Z"))
        #expect(s.mtime == nil)
        #expect(s.effectiveMtime == s.created)
        #expect(s.contents.isEmpty && s.users.isEmpty && s.groups.isEmpty && s.perms.isEmpty)
        #expect(s.extraCommands == nil)
        #expect(s.xattrs == false)
        #expect(s.compressor == .gzip)
        #expect(s.config == ContainerConfig())
    }

    @Test func nullValuesMeanAbsent() throws {
        let s = try parse("name: hello\ntag:\ncontents:\nconfig:\n")
        #expect(s.tag == nil)
        #expect(s.contents.isEmpty)
        #expect(s.config == ContainerConfig())
    }

    @Test func jsonInput() throws {
        let json = """
        {
          "name": "registry.example.com:5000/team/app",
          "tag": "v2",
          "architecture": "amd64",
          "contents": ["rootfs", {"source": "bin/app", "target": "/usr/bin/app"}],
          "users": [{"name": "app", "uid": 1000}],
          "perms": [{"path": "/usr/bin/app", "mode": 755}],
          "config": {"Cmd": ["/usr/bin/app"], "ExposedPorts": {"8080/tcp": {}}, "Env": ["A=1"]}
        }
        """
        let s = try parse(json)
        #expect(s.name == "registry.example.com:5000/team/app")
        #expect(s.tag == "v2")
        #expect(s.architecture == "amd64")
        #expect(s.contents.map(\.path) == ["/specs/app/rootfs", "/specs/app/bin/app"])
        #expect(s.contents[1].target == "/usr/bin/app")
        #expect(s.users[0].gid == 1000 && s.users[0].home == "/home/app" && s.users[0].shell == "/bin/sh")
        #expect(s.perms[0].mode == 0o755)
        #expect(s.config.Cmd == ["/usr/bin/app"])
        #expect(s.config.ExposedPorts == ["8080/tcp": EmptyObject()])
        #expect(s.config.Env == ["A=1"])

        expectError("{\n  \"name\": \"x\",\n  \"Config\": {}\n}", line: 3, "Config", "did you mean `config`?")
    }

    @Test func mergeKeys() throws {
        let s = try parse("""
        name: hello
        config:
          <<: {Env: [A=1], Cmd: [sh]}
          Cmd: [bash]
        """)
        #expect(s.config.Cmd == ["bash"])
        #expect(s.config.Env == ["A=1"])
        expectError("name: hello\nconfig:\n  <<: {Cmnd: [sh]}\n", line: 3, "config.Cmnd", "did you mean `Cmd`?")
        let yaml = """
        name: hello
        users:
          - &app {name: app, uid: 1000, shell: /bin/bash}
          - <<: *app
            name: other
            uid: 1001
        """
        let t = try parse(yaml)
        #expect(t.users.map(\.name) == ["app", "other"])
        #expect(t.users[1].shell == "/bin/bash")
    }

    // MARK: Errors

    @Test func unknownKeys() {
        expectError("""
        name: hello
        tag: latest
        os: linux
        config:
          Cmd: [a]
        contents: []
        contens: []
        """, line: 7, "contens: unknown key", "did you mean `contents`?")
        expectError("name: hello\nconfig:\n  entrypoint: [/bin/sh]\n", line: 3,
                    "config.entrypoint: unknown key; did you mean `Entrypoint`?")
        expectError("name: hello\nconfig:\n  Healthcheck:\n    Test: [NONE]\n    Retrys: 3\n", line: 5,
                    "config.Healthcheck.Retrys", "did you mean `Retries`?")
        expectError("name: hello\ncontents:\n  - source: a\n    targte: /x\n", line: 4,
                    "contents[0].targte", "did you mean `target`?")
        expectError("name: hello\nusers:\n  - {name: a, uid: 1, homedir: /a}\n", line: 3, "users[0].homedir", "unknown key")
        expectError("name: hello\ngroups:\n  - name: a\n    gid: 1\n    member: [b]\n", line: 5,
                    "groups[0].member", "did you mean `members`?")
        expectError("name: hello\nperms:\n  - path: /a\n    Mode: '0644'\n", line: 4, "perms[0].Mode", "did you mean `mode`?")
        expectError("name: hello\nzzzzzzzz: 1\n", line: 2, "zzzzzzzz: unknown key (expected one of `name`")
    }

    @Test func structuralErrors() {
        #expect(failure("") == "\(specPath):1: the spec is empty (expected a map with at least a `name` key)")
        #expect(failure("# only a comment\n").contains("the spec is empty"))
        expectError("- a\n- b\n", line: 1, "expected a map at the top level, got a list")
        expectError("name: hello\ntag: a\nname: other\n", line: 3, "name: duplicate key (first on line 1)")
        expectError("name: hello\nconfig:\n  Cmd: [a]\n  Cmd: [b]\n", line: 4, "config.Cmd: duplicate key")
        expectError("name: hello\nconfig: [a]\n", line: 2, "config: expected a map, got a list")
        expectError("name: hello\nusers: {name: a}\n", line: 2, "users: expected", "got a map")
        expectError("name: [a]\n", line: 1, "name: expected a string, got a list")
        expectError("name: hello\nxattrs: maybe\n", line: 2, "xattrs: expected true or false, got a string")
        expectError("tag: latest\n", line: 1, "name: missing required key")
        expectError("name: Hello\n", line: 1, "name: invalid image reference")
        expectError("name: hello\ntag: .bad\n", line: 2, "tag: invalid image reference")
        expectError("name: hello\ncompressor: zstdd\n", line: 2, "compressor: unknown compressor `zstdd`; did you mean `zstd`?")
        expectError("name: hello\narchitecture: x86_64\n", line: 2, "architecture: unknown architecture", "did you mean `amd64`?")
        expectError("name: hello\narchitecture: amd46\n", line: 2, "did you mean `amd64`?")
        expectError("name: hello\nos: linx\n", line: 2, "os: unknown operating system", "did you mean `linux`?")
    }

    @Test func yamlSyntaxErrors() {
        let m = failure("name: hello\nconfig:\n  Cmd: [a, b\n  Env: []\n")
        #expect(m.hasPrefix("\(specPath):"), "\(m)")
        #expect(m.contains("invalid YAML:"), "\(m)")
        expectError("name: hello\n  bad: indent\n", line: 2, "invalid YAML")
        expectError("name: *nowhere\n", line: 1, "invalid YAML")
    }

    @Test func contentErrors() {
        expectError("name: hello\ncontents:\n  - source: a\n    target: /../etc\n", line: 4,
                    "contents[0].target", "escapes the image root")
        expectError("name: hello\ncontents:\n  - source: a\n    target: /a/../../etc\n", line: 4, "escapes the image root")
        expectError("name: hello\ncontents:\n  - source: a\n    target: etc\n", line: 4, "contents[0].target", "absolute")
        expectError("name: hello\ncontents:\n  - source: a\n    archive: b\n", line: 4, "contents[0].archive",
                    "cannot be used together")
        expectError("name: hello\ncontents:\n  - ok\n  - target: /x\n", line: 4, "contents[1]",
                    "expected one of `source`, `archive` or `closure`")
        expectError("name: hello\ncontents: ./rootfs\n", line: 2, "contents: expected a list")
        expectError("name: hello\ncontents:\n  - [a]\n", line: 3, "contents[0]: expected a path")
    }

    /// The base-safety and runAsRoot cache keys: values, and keys that would do nothing.
    @Test func baseSafetyAndRunAsRootCacheKeys() throws {
        expectError("name: hello\ncontents:\n  - source: a\n    onConflict: overwrite\n", line: 4,
                    "contents[0].onConflict", "unknown value `overwrite`", "`replace`")
        expectError("name: hello\nonConflict: maybe\n", line: 2, "onConflict", "unknown value `maybe`")
        expectError("name: hello\ncontents:\n  - source: a\n    isolate: true\n", line: 4,
                    "contents[0].isolate", "only `closure:` items")
        expectError("name: hello\nrunAsRootCache: false\n", line: 2, "runAsRootCache", "has no effect without `runAsRoot`")
        expectError("name: hello\nscrub: false\n", line: 2, "scrub", "has no effect without `runAsRoot`")
        let spec = try parse("""
            name: hello
            onConflict: keep
            runAsRoot: "true"
            runAsRootCache: false
            scrub: false
            contents:
              - {closure: /bin/sh, isolate: true, onConflict: replace}
            """)
        #expect(spec.onConflict == .keep && !spec.runAsRootCache && !spec.scrub)
        #expect(spec.contents[0].isolate && spec.contents[0].onConflict == .replace)
        #expect(try parse("name: hello\n").onConflict == .error)
    }

    @Test func accountErrors() {
        expectError("name: hello\nusers:\n  - {name: a, uid: 1}\n  - {name: a, uid: 2}\n", line: 4,
                    "users[1].name: duplicate user `a` (first on line 3)")
        expectError("name: hello\nusers:\n  - {name: a, uid: 1}\n  - {name: b, uid: 1}\n", line: 4,
                    "users[1].uid: uid 1 is already used by `a` (line 3)")
        expectError("name: hello\nusers:\n  - {name: Alice, uid: 1}\n", line: 3, "users[0].name: invalid user name")
        expectError("name: hello\nusers:\n  - {name: a}\n", line: 3, "users[0].uid: missing required key")
        expectError("name: hello\nusers:\n  - {name: a, uid: -1}\n", line: 3, "users[0].uid: expected an integer")
        expectError("name: hello\nusers:\n  - {name: a, uid: 1, home: 'rel'}\n", line: 3, "users[0].home", "absolute")
        expectError("name: hello\ngroups:\n  - {name: a, gid: 1}\n  - {name: a, gid: 2}\n", line: 4, "groups[1].name: duplicate group")
        expectError("name: hello\ngroups:\n  - {name: a, gid: 1}\n  - {name: b, gid: 1}\n", line: 4, "groups[1].gid: gid 1 is already used")
        expectError("name: hello\ngroups:\n  - name: a\n    gid: 1\n    members: [ok, 9bad]\n", line: 5, "groups[0].members[1]")
        #expect(throws: Never.self) { try parse("name: hello\nusers:\n  - {name: _svc-1$, uid: 5}\n") }
    }

    @Test func configErrors() {
        expectError("name: hello\nconfig:\n  Cmd: echo hello\n", line: 3,
                    "config.Cmd: expected a list of strings, got a string", "[\"echo\", \"hello\"]",
                    "[\"/bin/sh\", \"-c\", \"echo hello\"]")
        expectError("name: hello\nconfig:\n  Entrypoint: /bin/app\n", line: 3, "config.Entrypoint: expected a list")
        expectError("name: hello\nconfig:\n  Env:\n    - A=1\n    - JUSTNAME\n", line: 5, "config.Env[1]", "has no `=`")
        expectError("name: hello\nconfig:\n  Env: {A: 1}\n", line: 3, "config.Env: expected a list of NAME=VALUE strings")
        expectError("name: hello\nconfig:\n  WorkingDir: app\n", line: 3, "config.WorkingDir", "absolute")
        expectError("name: hello\nconfig:\n  ExposedPorts: [80, 8080/xyz]\n", line: 3,
                    "config.ExposedPorts[1]", "unknown protocol `xyz`")
        expectError("name: hello\nconfig:\n  ExposedPorts: [70000]\n", line: 3, "is not a port")
        expectError("name: hello\nconfig:\n  ExposedPorts: [9-8]\n", line: 3, "is not a port")
        expectError("name: hello\nconfig:\n  ExposedPorts:\n    80/tcp: yes\n", line: 4, "config.ExposedPorts.80/tcp")
        expectError("name: hello\nconfig:\n  Volumes: [data]\n", line: 3, "config.Volumes[0]", "absolute")
        expectError("name: hello\nconfig:\n  Labels: [a]\n", line: 3, "config.Labels: expected a map")
        expectError("name: hello\nconfig:\n  Labels:\n    a: [b]\n", line: 4, "config.Labels.a: expected a string")
        expectError("name: hello\nconfig:\n  StopSignal: SIGTREM\n", line: 3, "config.StopSignal: unknown signal", "did you mean `SIGTERM`?")
        expectError("name: hello\nconfig:\n  StopSignal: 65\n", line: 3, "unknown signal `65`")
        expectError("name: hello\nconfig:\n  StopSignal: SIGRTMIN+31\n", line: 3, "unknown signal")
        expectError("name: hello\nconfig:\n  Healthcheck:\n    Interval: 30x\n", line: 4,
                    "config.Healthcheck.Interval", "is not a duration")
        expectError("name: hello\nconfig:\n  Healthcheck:\n    Test: curl -f localhost\n", line: 4,
                    "config.Healthcheck.Test", "[\"CMD-SHELL\", \"curl -f localhost\"]")
        expectError("name: hello\nconfig:\n  Healthcheck:\n    Test: [curl]\n", line: 4, "\"CMD\", \"CMD-SHELL\" or \"NONE\"")
        expectError("name: hello\nconfig:\n  Healthcheck:\n    Timeout: -1s\n", line: 4, "negative")
        expectError("name: hello\nconfig:\n  ArgsEscaped: 1\n", line: 3, "config.ArgsEscaped: expected true or false")
    }

    // MARK: Times

    @Test func sourceDateEpoch() throws {
        let s = try parse("name: hello\n", env: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(s.created == .fixed(epochSeconds: 1_700_000_000, rfc3339: "2023-11-14T22:13:20Z"))
        #expect(s.mtime == nil && s.effectiveMtime == s.created)

        let t = try parse("name: hello\ncreated: 2000-01-01T00:00:00Z\n", env: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(t.created == .fixed(epochSeconds: 946_684_800, rfc3339: "2000-01-01T00:00:00Z"))

        let u = try parse("name: hello\ncreated: now\n", env: ["SOURCE_DATE_EPOCH": "1700000000"])
        #expect(u.created == .now && u.mtime == nil && u.effectiveMtime == .now)

        // `created` wins, so an unused bad value is no error; a used one is.
        #expect(throws: Never.self) { try parse("name: hello\ncreated: now\n", env: ["SOURCE_DATE_EPOCH": "soon"]) }
        let m = failure("name: hello\n", env: ["SOURCE_DATE_EPOCH": "soon"])
        #expect(m.hasPrefix("\(specPath): SOURCE_DATE_EPOCH: invalid value `soon`"), "\(m)")
        #expect(failure("name: hello\n", env: ["SOURCE_DATE_EPOCH": "-5"]).contains("SOURCE_DATE_EPOCH"))
        #expect(try parse("name: hello\n", env: ["SOURCE_DATE_EPOCH": ""]).created == .at(epochSeconds: 1))
    }

    @Test func timestamps() throws {
        func created(_ text: String) throws -> CreatedTime { try parse("name: hello\ncreated: \(text)\n").created }
        #expect(try created("1970-01-01T00:00:00Z") == .fixed(epochSeconds: 0, rfc3339: "1970-01-01T00:00:00Z"))
        #expect(try created("\"2024-02-29T23:30:00-01:30\"") == .fixed(epochSeconds: 1_709_254_800, rfc3339: "2024-03-01T01:00:00Z"))
        #expect(try created("2024-02-29 12:00:00.250000z") == .fixed(epochSeconds: 1_709_208_000, rfc3339: "2024-02-29T12:00:00.25Z"))
        #expect(try created("2024-02-29t12:00:00.000Z") == .fixed(epochSeconds: 1_709_208_000, rfc3339: "2024-02-29T12:00:00Z"))
        #expect(try created("9999-12-31T23:59:59Z") == .at(epochSeconds: 253_402_300_799))
        #expect(try parse("name: hello\nmtime: 2001-09-09T01:46:40Z\n").mtime == .at(epochSeconds: 1_000_000_000))

        expectError("name: hello\ncreated: 2023-02-29T00:00:00Z\n", line: 2, "created: invalid time")
        expectError("name: hello\ncreated: 2024-01-01\n", line: 2, "created: invalid time", "RFC 3339")
        expectError("name: hello\ncreated: 2024-01-01T00:00:00\n", line: 2, "created: invalid time")
        expectError("name: hello\ncreated: 1969-12-31T23:59:59Z\n", line: 2, "before 1970")
        expectError("name: hello\nmtime: yesterday\n", line: 2, "mtime: invalid time")
    }

    @Test func rfc3339Format() {
        #expect(RFC3339.format(epochSeconds: 1) == "1970-01-01T00:00:01Z")
        #expect(RFC3339.format(epochSeconds: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(RFC3339.format(epochSeconds: 4_107_542_400) == "2100-03-01T00:00:00Z")
        #expect(CreatedTime.at(epochSeconds: 86_399) == .fixed(epochSeconds: 86_399, rfc3339: "1970-01-01T23:59:59Z"))
    }

    // MARK: Paths and values

    @Test func relativePaths() throws {
        let s = try parse("""
        name: hello
        contents:
          - rootfs
          - ./a/./b/
          - ../up
          - /abs//path/
          - source: "x y"
        """)
        #expect(s.contents.map(\.path) == ["/specs/app/rootfs", "/specs/app/a/b", "/specs/up", "/abs/path", "/specs/app/x y"])

        let r = try Spec.parse(text: "name: hello\ncontents: [rootfs]\n", path: "spec.yaml", environment: [:])
        let cwd = FileManager.default.currentDirectoryPath
        #expect(r.directory == SpecPaths.clean(cwd))
        #expect(r.contents[0].path == SpecPaths.clean(cwd + "/rootfs"))
        #expect(r.fileURL.path == SpecPaths.clean(cwd + "/spec.yaml"))
        #expect(r.path == "spec.yaml")
    }

    @Test func targets() throws {
        let s = try parse("""
        name: hello
        contents:
          - {source: a, target: /}
          - {source: a, target: /a/b/../c}
          - {source: a, target: //x/./y/}
          - {source: a, target: /..x}
        """)
        #expect(s.contents.map(\.target) == ["/", "/a/c", "/x/y/", "/..x"])
    }

    @Test func permModes() throws {
        for text in ["\"0755\"", "'755'", "755", "0755", "0o755"] {
            let s = try parse("name: hello\nperms:\n  - path: /a\n    mode: \(text)\n")
            #expect(s.perms[0].mode == 0o755, "\(text)")
        }
        #expect(try parse("name: hello\nperms:\n  - {path: /a, mode: '4755'}\n").perms[0].mode == 0o4755)
        #expect(try parse("name: hello\nperms:\n  - {path: /a, uid: 0}\n").perms[0].mode == nil)
        expectError("name: hello\nperms:\n  - path: /a\n    mode: \"0999\"\n", line: 4, "perms[0].mode", "`0999` is not an octal mode")
        expectError("name: hello\nperms:\n  - path: /a\n    mode: 999\n", line: 4, "not an octal mode")
        expectError("name: hello\nperms:\n  - path: /a\n    mode: 0x1ed\n", line: 4, "not an octal mode")
        expectError("name: hello\nperms:\n  - path: /a\n    mode: '17777'\n", line: 4, "larger than 07777")
        expectError("name: hello\nperms:\n  - path: /a\n    mode: rwx\n", line: 4, "not an octal mode")
        expectError("name: hello\nperms:\n  - path: /a\n    mode: true\n", line: 4, "expected an octal mode")
        expectError("name: hello\nperms:\n  - path: /a\n", line: 3, "perms[0]: nothing to change")
        expectError("name: hello\nperms:\n  - path: a/*\n    mode: '0644'\n", line: 3, "perms[0].path", "absolute")
        expectError("name: hello\nperms:\n  - path: /a/../b\n    mode: '0644'\n", line: 3, "perms[0].path", "`..`")
        expectError("name: hello\nperms:\n  - mode: '0644'\n", line: 3, "perms[0].path: missing required key")
    }

    @Test func exposedPorts() throws {
        func ports(_ text: String) throws -> [String] {
            try parse("name: hello\nconfig:\n  ExposedPorts: \(text)\n").config.ExposedPorts.map { $0.keys.sorted() } ?? []
        }
        #expect(try ports("[\"8080/tcp\", \"53/udp\", \"9000\", 443, 132/SCTP]") == ["132/sctp", "443/tcp", "53/udp", "8080/tcp", "9000/tcp"])
        #expect(try ports("{9000: {}, 53/udp: ~, \"80/tcp\":}") == ["53/udp", "80/tcp", "9000/tcp"])
        #expect(try ports("[8000-8002/udp, 9000, 9000/tcp]") == ["8000/udp", "8001/udp", "8002/udp", "9000/tcp"])
        #expect(try ports("[]") == [])
    }

    @Test func stopSignals() throws {
        func signal(_ text: String) throws -> String? {
            try parse("name: hello\nconfig:\n  StopSignal: \(text)\n").config.StopSignal
        }
        #expect(try signal("SIGTERM") == "SIGTERM")
        #expect(try signal("TERM") == "SIGTERM")
        #expect(try signal("sigterm") == "SIGTERM")
        #expect(try signal("Term") == "SIGTERM")
        #expect(try signal("15") == "15")
        #expect(try signal("'9'") == "9")
        #expect(try signal("SIGRTMIN+3") == "SIGRTMIN+3")
        #expect(try signal("RTMIN") == "SIGRTMIN")
        #expect(try signal("SIGRTMAX-2") == "SIGRTMAX-2")
        #expect(try signal("SIGWINCH") == "SIGWINCH")
        #expect(try signal("USR1") == "SIGUSR1")
        #expect(try signal("SIGQUIT") == "SIGQUIT")
        #expect(throws: BuildError.self) { try signal("0") }
        #expect(throws: BuildError.self) { try signal("SIGFOO") }
    }

    @Test func durations() {
        #expect(SpecPaths.goDuration("30s") == 30_000_000_000)
        #expect(SpecPaths.goDuration("1m30s") == 90_000_000_000)
        #expect(SpecPaths.goDuration("1.5h") == 5_400_000_000_000)
        #expect(SpecPaths.goDuration("500ms") == 500_000_000)
        #expect(SpecPaths.goDuration("10us") == 10_000)
        #expect(SpecPaths.goDuration("10µs") == 10_000)
        #expect(SpecPaths.goDuration("7ns") == 7)
        #expect(SpecPaths.goDuration("0") == 0)
        #expect(SpecPaths.goDuration("123") == 123)
        #expect(SpecPaths.goDuration("-2s") == -2_000_000_000)
        #expect(SpecPaths.goDuration(".5s") == 500_000_000)
        #expect(SpecPaths.goDuration("") == nil)
        #expect(SpecPaths.goDuration("s") == nil)
        #expect(SpecPaths.goDuration("5") == 5)
        #expect(SpecPaths.goDuration("5x") == nil)
        #expect(SpecPaths.goDuration("1.s") == 1_000_000_000)
        #expect(SpecPaths.goDuration("99999999999h") == nil)
    }

    @Test func didYouMean() {
        #expect(SpecPaths.didYouMean("entrypoint", ["Entrypoint", "Cmd"]) == "Entrypoint")
        #expect(SpecPaths.didYouMean("contens", SpecPathsTestKeys.top) == "contents")
        #expect(SpecPaths.didYouMean("extracommand", SpecPathsTestKeys.top) == "extraCommands")
        #expect(SpecPaths.didYouMean("quux", SpecPathsTestKeys.top) == nil)
    }

    @Test func loadFromDisk() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-spec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("spec.yaml")
        try "name: hello\ncontents: [root]\n".write(to: file, atomically: true, encoding: .utf8)
        let s = try Spec.load(path: file.path, environment: ["SOURCE_DATE_EPOCH": "10"])
        #expect(s.directory == SpecPaths.clean(dir.path))
        #expect(s.contents[0].path == SpecPaths.clean(dir.path) + "/root")
        #expect(s.created == .at(epochSeconds: 10))

        do {
            _ = try Spec.load(path: dir.appendingPathComponent("missing.yaml").path)
            Issue.record("expected an error")
        } catch let e as BuildError {
            #expect(e.message.contains("missing.yaml: cannot read the spec file"), "\(e.message)")
        }
    }
}

private enum SpecPathsTestKeys {
    static let top = ["name", "tag", "architecture", "os", "variant", "created", "mtime", "contents",
                      "users", "groups", "perms", "extraCommands", "xattrs", "compressor", "config"]
}

