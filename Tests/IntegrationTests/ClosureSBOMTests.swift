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
