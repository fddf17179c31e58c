import KilnOCI
import Yams

/// `config`: the OCI image config's `config` object, with Docker's key names
/// (env, ports, volumes, labels, stop signal, healthcheck).
extension SpecParser {
    static let configKeys = ["User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
                             "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell"]

    func parseConfig(_ n: Node) throws -> ContainerConfig {
        let f = try fields(n, at: "config", allowed: Self.configKeys)
        var c = ContainerConfig()
        if let v = f["User"] { c.User = try string(v, "config.User") }
        if let v = f["Entrypoint"] { c.Entrypoint = try command(v, "config.Entrypoint") }
        if let v = f["Cmd"] { c.Cmd = try command(v, "config.Cmd") }
        if let v = f["Shell"] { c.Shell = try command(v, "config.Shell") }
        if let v = f["OnBuild"] { c.OnBuild = try stringList(v, "config.OnBuild") }
        if let v = f["Env"] { c.Env = try parseEnv(v) }
        if let v = f["WorkingDir"] {
            let s = try string(v, "config.WorkingDir")
            guard s.hasPrefix("/") else { throw fail(v, "config.WorkingDir", "`\(s)` must be an absolute path") }
            c.WorkingDir = s
        }
        if let v = f["ExposedPorts"] { c.ExposedPorts = try parsePorts(v) }
        if let v = f["Volumes"] {
            var volumes: [String: EmptyObject] = [:]
            for (item, kp) in try setItems(v, "config.Volumes", what: "absolute paths") {
                let s = try string(item, kp)
                guard s.hasPrefix("/") else { throw fail(item, kp, "`\(s)` must be an absolute path") }
                volumes[s] = EmptyObject()
            }
            c.Volumes = volumes
        }
        if let v = f["Labels"] {
            let lf = try fields(v, at: "config.Labels", allowed: nil)
            var labels: [String: String] = [:]
            for (key, entry) in lf.entries {
                let kp = "config.Labels.\(key)"
                switch entry.value {
                case .scalar(let s): labels[key] = isNull(entry.value) ? "" : s.string
                default: throw fail(entry.value, kp, "expected a string, got \(describe(entry.value))")
                }
            }
            c.Labels = labels
        }
        if let v = f["StopSignal"] { c.StopSignal = try parseSignal(v) }
        if let v = f["ArgsEscaped"] { c.ArgsEscaped = try bool(v, "config.ArgsEscaped") }
        if let v = f["Healthcheck"] { c.Healthcheck = try parseHealthcheck(v) }
        return c
    }

    /// A list of strings; a plain string gets a hint about the list form.
    func command(_ n: Node, _ kp: String) throws -> [String] {
        if case .scalar(let s) = n, !isNull(n) {
            let words = s.string.split(separator: " ").map { quoted(String($0)) }.joined(separator: ", ")
            throw fail(n, kp, "expected a list of strings, got a string; write it as a list, e.g. [\(words)], "
                + "or [\"/bin/sh\", \"-c\", \(quoted(s.string))] to run it through a shell")
        }
        return try stringList(n, kp)
    }

    func parseEnv(_ n: Node) throws -> [String] {
        if case .mapping = n {
            throw fail(n, "config.Env", "expected a list of NAME=VALUE strings, got a map; write e.g. `- PATH=/bin`")
        }
        let items = try list(n, "config.Env", itemHint: "a list of NAME=VALUE strings")
        return try items.enumerated().map { i, item in
            let kp = "config.Env[\(i)]"
            if case .mapping = item {
                throw fail(item, kp, "expected a NAME=VALUE string, got a map (write `- NAME=VALUE`, not `- NAME: VALUE`)")
            }
            let s = try string(item, kp)
            guard let eq = s.firstIndex(of: "=") else {
                throw fail(item, kp, "`\(s)` has no `=` (expected NAME=VALUE)")
            }
            guard eq != s.startIndex else { throw fail(item, kp, "`\(s)` has an empty variable name") }
            return s
        }
    }

    /// Items of a list, or keys of a map whose values are empty (`~` or `{}`), as for
    /// `ExposedPorts` and `Volumes`.
    func setItems(_ n: Node, _ kp: String, what: String) throws -> [(Node, String)] {
        switch n {
        case .sequence(let seq):
            return seq.enumerated().map { ($1, "\(kp)[\($0)]") }
        case .mapping:
            let f = try fields(n, at: kp, allowed: nil)
            return try f.entries.sorted { line($0.value.key) < line($1.value.key) }.map { key, entry in
                let empty: Bool
                switch entry.value {
                case .mapping(let m): empty = m.isEmpty
                default: empty = isNull(entry.value)
                }
                guard empty else {
                    throw fail(entry.value, "\(kp).\(key)", "expected an empty value (`{}`), got \(describe(entry.value))")
                }
                return (entry.key, "\(kp).\(key)")
            }
        default:
            throw fail(n, kp, "expected a list (or a map with empty values) of \(what), got \(describe(n))")
        }
    }

    func parsePorts(_ n: Node) throws -> [String: EmptyObject] {
        var ports: [String: EmptyObject] = [:]
        for (item, kp) in try setItems(n, "config.ExposedPorts", what: "ports such as 8080/tcp") {
            let s = try string(item, kp)
            let parts = s.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let proto = parts.count > 1 ? parts[1].lowercased() : "tcp"
            guard ["tcp", "udp", "sctp"].contains(proto) else {
                throw fail(item, kp, "`\(s)`: unknown protocol `\(parts[1])` (expected tcp, udp or sctp)")
            }
            func port(_ p: Substring) -> Int? {
                guard !p.isEmpty, p.count <= 5, p.utf8.allSatisfy({ (48...57).contains($0) }),
                      let v = Int(p), (1...65535).contains(v) else { return nil }
                return v
            }
            let range = parts[0].split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let low = port(range[0]), let high = range.count > 1 ? port(range[1]) : low, low <= high else {
                throw fail(item, kp, "`\(s)` is not a port (expected PORT[/PROTOCOL] or FIRST-LAST[/PROTOCOL], ports 1 to 65535)")
            }
            for p in low...high { ports["\(p)/\(proto)"] = EmptyObject() }
        }
        return ports
    }

    static let signals = ["ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
                          "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
                          "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ"]

    /// A Linux signal: a name with or without `SIG` (any case), a number from 1 to 64, or
    /// `SIGRTMIN+N` / `SIGRTMAX-N`. Names come back as `SIGNAME`, numbers as numbers.
    func parseSignal(_ n: Node) throws -> String {
        let kp = "config.StopSignal"
        let raw = try string(n, kp)
        let upper = raw.uppercased()
        let name = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        func small(_ s: Substring, _ range: ClosedRange<Int>) -> Int? {
            guard !s.isEmpty, s.count <= 3, s.utf8.allSatisfy({ (48...57).contains($0) }), let v = Int(s),
                  range.contains(v) else { return nil }
            return v
        }
        if name == upper, let v = small(Substring(name), 1...64) { return String(v) }
        if Self.signals.contains(name) || name == "RTMIN" || name == "RTMAX" { return "SIG" + name }
        if name.hasPrefix("RTMIN+"), let v = small(name.dropFirst(6), 0...30) { return v == 0 ? "SIGRTMIN" : "SIGRTMIN+\(v)" }
        if name.hasPrefix("RTMAX-"), let v = small(name.dropFirst(6), 0...30) { return v == 0 ? "SIGRTMAX" : "SIGRTMAX-\(v)" }
        let candidates = (Self.signals + ["RTMIN", "RTMAX"]).map { "SIG" + $0 }
        throw fail(n, kp, "unknown signal `\(raw)` (expected a Linux signal such as SIGTERM, TERM, 15 or SIGRTMIN+3)"
            + (didYouMean("SIG" + name, candidates).map { "; did you mean `\($0)`?" } ?? ""))
    }

    func parseHealthcheck(_ n: Node) throws -> Healthcheck {
        let f = try fields(n, at: "config.Healthcheck",
                           allowed: ["Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"])
        var h = Healthcheck()
        if let v = f["Test"] {
            let kp = "config.Healthcheck.Test"
            if case .scalar(let s) = v {
                throw fail(v, kp, "expected a list of strings, got a string; write [\"CMD-SHELL\", \(quoted(s.string))] "
                    + "to run it through a shell, or [\"CMD\", …] to run a program directly")
            }
            let test = try stringList(v, kp)
            switch test.first {
            case nil: break  // inherit
            case "NONE":
                guard test.count == 1 else { throw fail(v, kp, "[\"NONE\"] takes no arguments") }
            case "CMD":
                guard test.count >= 2 else { throw fail(v, kp, "[\"CMD\", …] needs a program to run") }
            case "CMD-SHELL":
                guard test.count == 2 else { throw fail(v, kp, "[\"CMD-SHELL\", …] takes exactly one shell command") }
            case let first?:
                throw fail(v, kp, "the first item must be \"CMD\", \"CMD-SHELL\" or \"NONE\", not \(quoted(first))")
            }
            h.Test = test
        }
        if let v = f["Interval"] { h.Interval = try duration(v, "config.Healthcheck.Interval") }
        if let v = f["Timeout"] { h.Timeout = try duration(v, "config.Healthcheck.Timeout") }
        if let v = f["StartPeriod"] { h.StartPeriod = try duration(v, "config.Healthcheck.StartPeriod") }
        if let v = f["StartInterval"] { h.StartInterval = try duration(v, "config.Healthcheck.StartInterval") }
        if let v = f["Retries"] { h.Retries = try integer(v, "config.Healthcheck.Retries", max: Int(Int32.max)) }
        return h
    }

    /// A Go duration ("30s", "1m30s", "1.5h", "500ms") or an integer number of nanoseconds.
    func duration(_ n: Node, _ kp: String) throws -> Int64 {
        let s = try string(n, kp)
        guard let v = SpecPaths.goDuration(s) else {
            throw fail(n, kp, "`\(s)` is not a duration (expected e.g. \"30s\", \"1m30s\", \"500ms\" or an integer number of nanoseconds)")
        }
        guard v >= 0 else { throw fail(n, kp, "`\(s)` is negative") }
        return v
    }
}
