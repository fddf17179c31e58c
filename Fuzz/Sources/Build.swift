@testable import KilnBuild

enum FuzzBuild {
    /// The spec parser (YAML through Yams, then Kiln's checks). Relative content paths
    /// resolve under a directory that does not exist, so nothing on disk is read.
    static func spec(_ data: [UInt8]) {
        _ = try? Spec.parse(text: String(decoding: data, as: UTF8.self), path: "/nonexistent/kiln-fuzz/image.yaml",
                            environment: ["SOURCE_DATE_EPOCH": "0"])
    }

    static func elf(_ data: [UInt8]) {
        withFile(data) { path in
            if let f = try? ELFFile(path: path) { _ = f.isCompatible(with: f) }
        }
    }

    static func ldCache(_ data: [UInt8]) { _ = try? LdCache(bytes: data) }
}
