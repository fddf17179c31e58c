import Foundation
import Testing

/// The SBOM names the host packages that own the files of `closure:` items whose image
/// paths are not the host's: `isolate: true` (below /opt/kiln/…) and `swift:` products
/// (the executable from `.build`, the toolchain's and the system's libraries), as it
/// does for a plain closure (BuildReport.closureFiles, ImageBuilder+ClosureFiles.swift).
@Suite struct ClosureSBOMTests {
    static let hasSPDXTools = hasTool("pyspdxtools")
    static var hasDpkg: Bool { FileManager.default.fileExists(atPath: "/var/lib/dpkg/status") }

    /// The host packages the SBOM says contents[`index`] depends on, and that package's comment.
    static func hostPackages(_ sbom: String, index: Int) throws -> (names: Set<String>, comment: String) {
        let doc = try parseJSON(try String(contentsOfFile: sbom, encoding: .utf8)) as! [String: Any]
        let packages = doc["packages"] as! [[String: Any]]
        let byID = Dictionary(uniqueKeysWithValues: packages.map { ($0["SPDXID"] as! String, $0) })
        let item = "SPDXRef-Contents-\(index)"
        let related = (doc["relationships"] as! [[String: Any]])
            .filter { $0["spdxElementId"] as? String == item && $0["relationshipType"] as? String == "DEPENDS_ON" }
            .compactMap { byID[$0["relatedSpdxElement"] as! String]?["name"] as? String }
        return (Set(related), byID[item]?["comment"] as? String ?? "")
    }

    @Test(.enabled(if: hasSPDXTools && hasDpkg, "needs pyspdxtools and a dpkg database on the host"))
    func isolatedClosureListsItsHostPackages() throws {
        let dir = try TempDir()
        let owner = try run("dpkg", ["-S", "/bin/true"]).stdout.split(separator: ":").first.map(String.init) ?? ""
        try dir.write("image.yaml", """
            name: kiln-test/isolated-sbom
            created: 2024-01-01T00:00:00Z
            contents:
              - {closure: /bin/true, isolate: true}
              - {closure: /bin/true, target: /usr/local/bin/t}
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--sbom", dir.path + "/sbom.json",
                  "--cache-dir", dir.path + "/cache"])
        try run("pyspdxtools", ["-i", dir.path + "/sbom.json"])
        for i in [0, 1] {
            let (names, comment) = try Self.hostPackages(dir.path + "/sbom.json", index: i)
            #expect(names.contains(owner) && names.contains("libc6"), "contents[\(i)]: \(names)")
            #expect(comment.hasPrefix("contents[\(i)] (closure\(i == 0 ? ", isolated" : "")): "), "\(comment)")
        }
    }

    static var x86_64Glibc: Bool {
        ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/true"].allSatisfy(FileManager.default.fileExists)
    }

    /// A platform built from its sysroot: the closures (plain, with a target, isolated)
    /// are read there, and the sysroot's dpkg database names their packages, not the host's.
    @Test(.enabled(if: hasSPDXTools && x86_64Glibc, "needs pyspdxtools and an x86-64 glibc host"))
    func sysrootClosuresListTheSysrootsPackages() throws {
        let dir = try TempDir()
        try sh("""
            mkdir -p sr/usr/bin sr/usr/lib/x86_64-linux-gnu sr/usr/lib64 sr/var/lib/dpkg/info
            ln -s usr/bin sr/bin; ln -s usr/lib sr/lib; ln -s usr/lib64 sr/lib64
            cp /usr/bin/true sr/usr/bin/
            cp -L /lib/x86_64-linux-gnu/libc.so.6 sr/usr/lib/x86_64-linux-gnu/
            cp -L /lib64/ld-linux-x86-64.so.2 sr/usr/lib64/
            printf 'Package: sr-coreutils\nStatus: install ok installed\nVersion: 1.2\nArchitecture: amd64\n\nPackage: sr-libc\nStatus: install ok installed\nVersion: 3.4\nArchitecture: amd64\n' > sr/var/lib/dpkg/status
            printf '/usr/bin/true\n' > sr/var/lib/dpkg/info/sr-coreutils.list
            printf '/lib/x86_64-linux-gnu/libc.so.6\n/lib64/ld-linux-x86-64.so.2\n' > sr/var/lib/dpkg/info/sr-libc.list
            """, cwd: dir.path)
        try dir.write("image.yaml", """
            name: kiln-test/sysroot-sbom
            created: 2024-01-01T00:00:00Z
            platforms: [linux/amd64]
            sysroots: {linux/amd64: sr}
            contents:
              - {closure: /bin/true, isolate: true}
              - {closure: /bin/true, target: /usr/local/bin/t}
              - {closure: /bin/true}
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--sbom", dir.path + "/sbom.json", "--no-cache"])
        try run("pyspdxtools", ["-i", dir.path + "/sbom.json"])
        for i in 0..<3 {
            #expect(try Self.hostPackages(dir.path + "/sbom.json", index: i).names == ["sr-coreutils", "sr-libc"], "contents[\(i)]")
        }
    }

    @Test(.enabled(if: hasSPDXTools && hasDpkg, "needs pyspdxtools and a dpkg database on the host"))
    func swiftProductListsItsHostPackages() throws {
        let dir = try TempDir()
        try run("/bin/cp", ["-R", packageRoot + "/Tests/Fixtures/SwiftApp/.", dir.path])
        try dir.write("image.yaml", "name: kiln-test/swift-sbom\ncreated: 2024-01-01T00:00:00Z\ncontents:\n  - swift: SwiftApp\n")
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--sbom", dir.path + "/sbom.json",
                  "--cache-dir", dir.path + "/cache"])
        try run("pyspdxtools", ["-i", dir.path + "/sbom.json"])
        let (names, comment) = try Self.hostPackages(dir.path + "/sbom.json", index: 0)
        // The Swift runtime needs the C library (and, unless static, the C++ runtime).
        #expect(names.contains("libc6"), "\(names)")
        #expect(comment.hasPrefix("contents[0] (swift SwiftApp): "), "\(comment)")
    }
}
