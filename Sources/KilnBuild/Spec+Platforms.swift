import KilnOCI

/// Multi-platform builds: `--platform` against the spec's `platforms`, and the spec each
/// platform's image is built from.
extension Spec {
    /// The spec with `--platform` applied. `given` (each `OS/ARCH[/VARIANT]`) narrows
    /// `platforms` to those given, kept in the spec's order; when the spec lists none,
    /// `given` becomes the list (in the order given), unless the spec names an
    /// `architecture`/`variant`/`os` that differs. An empty `given` changes nothing.
    public func selectingPlatforms(_ given: [String]) throws -> Spec {
        guard !given.isEmpty else { return self }
        var wanted: [Platform] = []
        for s in given {
            let p: Platform
            do { p = try Spec.parsePlatform(s) } catch let e as BuildError { throw BuildError("--platform: \(e.message)") }
            if wanted.contains(where: { Spec.samePlatform($0, p) }) { throw BuildError("--platform \(s): given twice") }
            wanted.append(p)
        }
        var out = self
        if platforms.isEmpty {
            if architecture != nil || variant != nil || keyLocations["os"] != nil {
                let host = Platform.host
                let own = Platform(architecture: architecture ?? host.architecture, os: os,
                                   variant: variant ?? (architecture == nil ? host.variant : nil))
                for p in wanted where !Spec.samePlatform(p, own) {
                    let key = architecture != nil ? "architecture" : variant != nil ? "variant" : "os"
                    let loc = keyLocations[key].map { "\($0): " } ?? ""
                    throw BuildError("\(loc)\(key): the spec builds \(own); --platform \(p) asks for another (list several in `platforms:` instead of `\(key)`)")
                }
            }
            out.platforms = wanted
            return out
        }
        for p in wanted where !platforms.contains(where: { Spec.samePlatform($0, p) }) {
            throw BuildError("--platform \(p): not among the spec's platforms (the spec has: \(platforms.map(\.description).joined(separator: ", ")))")
        }
        out.platforms = platforms.filter { p in wanted.contains { Spec.samePlatform($0, p) } }
        return out
    }

    /// The spec one platform's image is built from: `architecture`, `os` and `variant`
    /// from the platform (as listed), `platforms` that one alone and its sysroot.
    public func forPlatform(_ p: Platform) -> Spec {
        var out = self
        out.architecture = p.architecture
        out.os = p.os
        out.variant = p.variant
        out.platforms = [p]
        out.sysroots = sysroots[p].map { [p: $0] } ?? [:]
        return out
    }

    /// The one platform this spec builds for when it names it through `platforms` (after
    /// `forPlatform`); nil for a spec without `platforms`, built as before.
    public var buildPlatform: Platform? { platforms.count == 1 ? platforms[0] : nil }

    /// The sysroot of `buildPlatform`, if the spec gives one.
    public var buildSysroot: String? { buildPlatform.flatMap { sysroots[$0] } }
}

extension Platform {
    /// Whether this is the platform of the machine Kiln runs on (arm64's default variant
    /// v8 counted as given).
    public var isHost: Bool { Spec.samePlatform(self, Platform.host) }

    /// The Debian architecture packages are resolved for (dpkg-architecture's names):
    /// amd64, arm64, armhf (arm/v7), armel (arm/v6, v5), i386, ppc64el, s390x, riscv64…
    /// A GOARCH without a Debian port maps to its own name, which no repository lists.
    public var debianArchitecture: String {
        switch architecture {
        case "386": return "i386"
        case "arm": return variant == "v5" || variant == "v6" ? "armel" : "armhf"
        case "ppc64le": return "ppc64el"
        case "mipsle": return "mipsel"
        case "mips64le": return "mips64el"
        case "loong64": return "loong64"
        default: return architecture
        }
    }

    /// The ELF `e_machine`, class and byte order of this platform's programs, with the
    /// machine's usual name; nil for an architecture Kiln does not check.
    var elfIdentity: (machine: UInt16, is64: Bool, littleEndian: Bool, name: String)? {
        switch architecture {
        case "amd64": return (ELFFile.EM_X86_64, true, true, "x86-64")
        case "386": return (ELFFile.EM_386, false, true, "i386")
        case "arm64": return (ELFFile.EM_AARCH64, true, true, "AArch64")
        case "arm": return (ELFFile.EM_ARM, false, true, "ARM")
        case "ppc64le": return (ELFFile.EM_PPC64, true, true, "PowerPC64 (little-endian)")
        case "ppc64": return (ELFFile.EM_PPC64, true, false, "PowerPC64")
        case "s390x": return (ELFFile.EM_S390, true, false, "IBM S/390")
        case "riscv64": return (ELFFile.EM_RISCV, true, true, "RISC-V 64")
        case "loong64": return (ELFFile.EM_LOONGARCH, true, true, "LoongArch64")
        default: return nil
        }
    }
}

extension ELFFile {
    /// The machine's usual name (`x86-64`, `AArch64`…), for messages.
    var machineName: String {
        let cls = elfClass == .elf64 ? "64-bit" : "32-bit"
        switch machine {
        case ELFFile.EM_X86_64: return elfClass == .elf64 ? "x86-64" : "x32"
        case ELFFile.EM_386: return "i386"
        case ELFFile.EM_AARCH64: return "AArch64"
        case ELFFile.EM_ARM: return "ARM"
        case ELFFile.EM_PPC64: return dataEncoding == .littleEndian ? "PowerPC64 (little-endian)" : "PowerPC64"
        case ELFFile.EM_PPC: return "PowerPC"
        case ELFFile.EM_S390: return "IBM S/390 (\(cls))"
        case ELFFile.EM_RISCV: return "RISC-V (\(cls))"
        case ELFFile.EM_LOONGARCH: return "LoongArch"
        default: return "machine \(machine) (\(cls))"
        }
    }

    /// Nil when this ELF runs on `platform`, else why not: `is an x86-64 ELF, but the
    /// platform is linux/arm64/v8`.
    func mismatch(with platform: Platform) -> String? {
        guard let want = platform.elfIdentity else { return nil }
        if machine == want.machine, (elfClass == .elf64) == want.is64, (dataEncoding == .littleEndian) == want.littleEndian { return nil }
        let article = machineName.first.map { "AEIOUaeioux".contains($0) } == true ? "an" : "a"
        return "is \(article) \(machineName) ELF, but the platform is \(platform)"
    }
}
