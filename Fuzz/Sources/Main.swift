// libFuzzer entry point for every Kiln fuzz target, one binary for all of them.
// The target is chosen by the environment variable KILN_FUZZ_TARGET (see `FuzzTarget`);
// scripts/fuzz builds this file with `swiftc -sanitize=fuzzer,address` and runs each
// target in turn. A parser may throw on any input; it must never trap, read out of
// bounds, leak without bound or hang.
#if canImport(Glibc)
import Glibc
#endif

/// The parsers under test, by the name scripts/fuzz and Fuzz/corpus/<name>/ use.
enum FuzzTarget: String, CaseIterable, Sendable {
    case tar, gzip, zstd, xz, compression, spec, wwwauth, oci, imagearchive, elf, ldcache, deb, release, packages, control

    var run: ([UInt8]) -> Void {
        switch self {
        case .tar: return FuzzArchive.tar
        case .gzip: return FuzzArchive.gzip
        case .zstd: return FuzzArchive.zstd
        case .xz: return FuzzArchive.xz
        case .compression: return FuzzArchive.compression
        case .spec: return FuzzBuild.spec
        case .wwwauth: return FuzzRegistry.wwwAuthenticate
        case .oci: return FuzzOCI.documents
        case .imagearchive: return FuzzImage.archive
        case .elf: return FuzzBuild.elf
        case .ldcache: return FuzzBuild.ldCache
        case .deb: return FuzzDebian.deb
        case .release: return FuzzDebian.release
        case .packages: return FuzzDebian.packages
        case .control: return FuzzDebian.control
        }
    }
}

/// Read once, before the first input (a global's initializer runs exactly once).
let selectedTarget: FuzzTarget = {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: " ")
    guard let raw = getenv("KILN_FUZZ_TARGET"), let t = FuzzTarget(rawValue: String(cString: raw)) else {
        let message = Array("kiln-fuzz: set KILN_FUZZ_TARGET to one of: \(names)\n".utf8)
        _ = message.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(2)
    }
    return t
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    selectedTarget.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
