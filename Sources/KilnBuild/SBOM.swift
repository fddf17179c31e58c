#if canImport(Glibc)
import Glibc
#endif
import Crypto
import Foundation
import KilnArchive
import KilnDebian
import KilnOCI

/// An SPDX 2.3 JSON document of a built image (SPDX 2.3 §§6–11): the image as the
/// described package, each Debian package with its purl, source package, `.deb`
/// digest and licence, each other content item, and the base image by digest.
/// Deterministic: every value comes from the inputs, nothing from the clock or host.
public struct SBOM {
    /// The media type of the document, and the `artifactType` of the artifact that
    /// attaches it to its image (`kiln build --attach-sbom`).
    public static let artifactType = MediaType.spdxJSON

    public var report: BuildReport
    public var manifestDigest: KilnOCI.Digest
    public var reference: String
    /// Distribution for purls: `debian` (or `ubuntu`), from the repositories.
    public var distribution: String = "debian"
    /// The host whose dpkg database names the owners of `closure:` and `swift:` files (for
    /// a platform built from its sysroot, `sysroots:`, the sysroot's names its closures').
    public var hostRoot: String = "/"

    public init(report: BuildReport, manifestDigest: KilnOCI.Digest, reference: String) {
        self.report = report
        self.manifestDigest = manifestDigest
        self.reference = reference
    }

    struct Document: Encodable {
        var spdxVersion = "SPDX-2.3"
        var dataLicense = "CC0-1.0"
        var SPDXID = "SPDXRef-DOCUMENT"
        var name: String
        var documentNamespace: String
        var creationInfo: CreationInfo
        var documentDescribes: [String]
        var packages: [Package]
        var files: [File]?
        var relationships: [Relationship]
        var hasExtractedLicensingInfos: [ExtractedLicense]?
    }
    struct CreationInfo: Encodable { var created: String; var creators: [String] }
    struct Checksum: Encodable { var algorithm: String; var checksumValue: String }
    struct ExternalRef: Encodable { var referenceCategory: String; var referenceType: String; var referenceLocator: String }
    struct Package: Encodable {
        var SPDXID: String
        var name: String
        var versionInfo: String?
        var downloadLocation: String
        var filesAnalyzed = false
        var checksums: [Checksum]?
        var licenseConcluded = "NOASSERTION"
        var licenseDeclared: String
        var copyrightText = "NOASSERTION"
        var sourceInfo: String?
        var primaryPackagePurpose: String?
        var externalRefs: [ExternalRef]?
        var comment: String?
    }
    struct File: Encodable {
        var SPDXID: String
        var fileName: String
        var checksums: [Checksum]
        var licenseConcluded = "NOASSERTION"
        var copyrightText = "NOASSERTION"
        var comment: String?
    }
    struct Relationship: Encodable { var spdxElementId: String; var relationshipType: String; var relatedSpdxElement: String }
    struct ExtractedLicense: Encodable { var licenseId: String; var extractedText: String; var name: String }

    /// The document's bytes: canonical JSON, so the same image gives the same SBOM.
    public func encode() throws -> [UInt8] {
        let image = report.image
        var packages: [Package] = []
        var files: [File] = []
        var relationships = [Relationship(spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: "SPDXRef-Image")]
        var extracted: [String: ExtractedLicense] = [:]
        var used = Set<String>()
        var describedFiles: [String] = []
        let hostPackages = HostPackages(root: hostRoot, load: !report.closureFiles.isEmpty)
        // A sysroot's closures are owned by its packages (`swift:` products are the host's).
        let sysrootPackages = report.spec.buildSysroot.map { HostPackages(root: $0, load: !report.closureFiles.isEmpty) }
        func id(_ prefix: String, _ name: String) -> String {
            let clean = String(name.unicodeScalars.map { c -> Character in
                (c.isASCII && (SPDXChars.alnum(c) || c == "." || c == "-")) ? Character(c) : "-"
            })
            var candidate = "SPDXRef-\(prefix)-\(clean)"
            var n = 2
            while !used.insert(candidate).inserted { candidate = "SPDXRef-\(prefix)-\(clean)-\(n)"; n += 1 }
            return candidate
        }

        let arch = image.config.architecture
        packages.append(Package(
            SPDXID: "SPDXRef-Image", name: reference, versionInfo: manifestDigest.description,
            downloadLocation: "NOASSERTION", checksums: [Checksum(algorithm: "SHA256", checksumValue: manifestDigest.hex)],
            licenseDeclared: "NOASSERTION", primaryPackagePurpose: "CONTAINER",
            externalRefs: [ExternalRef(referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
                                       referenceLocator: "pkg:oci/\(Self.purlEscape(reference.split(separator: "/").last.map { String($0.split(separator: ":").first ?? $0) } ?? reference))@\(Self.purlEscape(manifestDigest.description))?arch=\(arch)")]))
        used.insert("SPDXRef-Image")

        if let base = report.base {
            let digest = base.image.manifestDigest
            let pid = id("Base", base.reference)
            packages.append(Package(SPDXID: pid, name: base.reference, versionInfo: digest.description,
                                    downloadLocation: "NOASSERTION",
                                    checksums: [Checksum(algorithm: "SHA256", checksumValue: digest.hex)],
                                    licenseDeclared: "NOASSERTION", primaryPackagePurpose: "CONTAINER",
                                    comment: "the base image (fromImage)"))
            relationships.append(Relationship(spdxElementId: "SPDXRef-Image", relationshipType: "DESCENDANT_OF", relatedSpdxElement: pid))
        }

        for p in report.packages.sorted(by: { $0.package.package.name < $1.package.package.name }) {
            let l = p.package.package
            let pid = id("Package-deb", "\(l.name)-\(l.version)")
            var declared = "NOASSERTION"
            if let license = p.license {
                let (expr, refs) = DebianLicense.spdxExpression(license)
                declared = expr
                for r in refs where extracted[r.id] == nil {
                    extracted[r.id] = ExtractedLicense(licenseId: r.id, extractedText: "Debian license short name \"\(r.name)\"; see /usr/share/doc/\(l.name)/copyright in the image", name: r.name)
                }
            }
            packages.append(Package(
                SPDXID: pid, name: l.name, versionInfo: l.version,
                // SPDX 2.3 §7.7 admits network locations only: a `file:` repository is NOASSERTION.
                downloadLocation: p.package.repositoryURI.hasPrefix("http") ? p.package.repositoryURI + "/" + l.filename : "NOASSERTION",
                checksums: [Checksum(algorithm: "SHA256", checksumValue: l.sha256)],
                licenseDeclared: declared,
                sourceInfo: "built from Debian source package \(l.source) \(l.sourceVersion)",
                primaryPackagePurpose: "LIBRARY",
                externalRefs: [ExternalRef(referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
                                           referenceLocator: "pkg:deb/\(distribution)/\(Self.purlEscape(l.name))@\(Self.purlEscape(l.version))?arch=\(l.architecture)")],
                comment: "\(p.files) files, \(p.bytes) bytes"))
            relationships.append(Relationship(spdxElementId: "SPDXRef-Image", relationshipType: "CONTAINS", relatedSpdxElement: pid))
        }

        for (i, item) in report.spec.contents.enumerated() {
            let what = "contents[\(i)]"
            var st = stat()
            let isFile = item.kind != .closure && stat(item.path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
            if isFile {
                let (sha1, sha256) = try Self.digests(item.path)
                let fid = id("File", "\(i)-\(item.path.split(separator: "/").last.map(String.init) ?? "file")")
                files.append(File(SPDXID: fid, fileName: "./" + (item.path.split(separator: "/").last.map(String.init) ?? item.path),
                                  checksums: [Checksum(algorithm: "SHA1", checksumValue: sha1), Checksum(algorithm: "SHA256", checksumValue: sha256)],
                                  comment: "\(what) (\(item.kind)) from \(item.path)" + (item.target.map { " at \($0)" } ?? "")))
                // The image package is not file-analysed (SPDX 2.3 §7.8), so it cannot CONTAIN
                // files: the document describes them beside the image, and says where they are.
                relationships.append(Relationship(spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: fid))
                describedFiles.append(fid)
            } else if let closure = report.closureFiles[i] {
                // An ELF closure (or a Swift product's): the host packages its files come
                // from, where dpkg knows them.
                let pid = id("Contents", "\(i)")
                let kind = item.swift.map { "swift \($0.product)" } ?? (item.isolate ? "closure, isolated" : "closure")
                packages.append(Package(SPDXID: pid, name: item.path, downloadLocation: "NOASSERTION",
                                        licenseDeclared: "NOASSERTION", primaryPackagePurpose: "APPLICATION",
                                        comment: "\(what) (\(kind)): \(closure.count) files"))
                relationships.append(Relationship(spdxElementId: "SPDXRef-Image", relationshipType: "CONTAINS", relatedSpdxElement: pid))
                var owners: [String: HostPackages.Owner] = [:]
                let db = item.kind == .closure ? sysrootPackages ?? hostPackages : hostPackages
                for f in closure { if let o = db.owner(of: "/" + f) { owners[o.name] = o } }
                for name in owners.keys.sorted() {
                    let o = owners[name]!
                    let hid = id("HostPackage", "\(o.name)-\(o.version)")
                    packages.append(Package(
                        SPDXID: hid, name: o.name, versionInfo: o.version, downloadLocation: "NOASSERTION",
                        licenseDeclared: "NOASSERTION", primaryPackagePurpose: "LIBRARY",
                        externalRefs: [ExternalRef(referenceCategory: "PACKAGE-MANAGER", referenceType: "purl",
                                                   referenceLocator: "pkg:deb/\(distribution)/\(Self.purlEscape(o.name))@\(Self.purlEscape(o.version))" + (o.architecture.map { "?arch=\($0)" } ?? ""))],
                        comment: "host package providing files of \(what)"))
                    relationships.append(Relationship(spdxElementId: pid, relationshipType: "DEPENDS_ON", relatedSpdxElement: hid))
                }
            } else {
                let pid = id("Contents", "\(i)")
                packages.append(Package(SPDXID: pid, name: item.path, downloadLocation: "NOASSERTION",
                                        licenseDeclared: "NOASSERTION", primaryPackagePurpose: "FILE",
                                        comment: "\(what) (\(item.kind))" + (item.target.map { " at \($0)" } ?? "")))
                relationships.append(Relationship(spdxElementId: "SPDXRef-Image", relationshipType: "CONTAINS", relatedSpdxElement: pid))
            }
        }

        let doc = Document(
            name: reference,
            documentNamespace: "https://kiln.invalid/spdx/\(manifestDigest.hex)",
            creationInfo: CreationInfo(created: Self.spdxTime(image.config.created ?? "1970-01-01T00:00:01Z"), creators: ["Tool: kiln"]),
            documentDescribes: ["SPDXRef-Image"] + describedFiles, packages: packages, files: files.isEmpty ? nil : files,
            relationships: relationships,
            hasExtractedLicensingInfos: extracted.isEmpty ? nil : extracted.keys.sorted().map { extracted[$0]! })
        return try CanonicalJSON.encode(doc)
    }

    /// SPDX wants `YYYY-MM-DDThh:mm:ssZ` (no fraction).
    static func spdxTime(_ rfc3339: String) -> String {
        if let dot = rfc3339.firstIndex(of: ".") { return String(rfc3339[..<dot]) + "Z" }
        return rfc3339
    }

    /// Percent-encoding for purl components (purl spec: `+` and `:` are encoded in versions).
    static func purlEscape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            let c = Character(Unicode.Scalar(b))
            if (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || "-._~".contains(c) {
                out.append(c)
            } else {
                out += String(format: "%%%02X", b)
            }
        }
        return out
    }

    static func digests(_ path: String) throws -> (sha1: String, sha256: String) {
        let r = try FileReader(path: path)
        var s1 = Insecure.SHA1()
        var s256 = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = try r.read(into: buffer)
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[..<n])
            s1.update(bufferPointer: chunk)
            s256.update(bufferPointer: chunk)
        }
        func hex<D: Sequence>(_ d: D) -> String where D.Element == UInt8 { d.map { String(format: "%02x", $0) }.joined() }
        return (hex(s1.finalize()), hex(s256.finalize()))
    }
}

enum SPDXChars {
    static func alnum(_ c: Unicode.Scalar) -> Bool {
        (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9")
    }
}

/// Debian's machine-readable copyright files (DEP-5) and their licence short names.
public enum DebianLicense {
    /// The licence of the `Files: *` paragraph of a machine-readable copyright file at
    /// `path`; nil when the file is not machine-readable or has none.
    public static func licenses(atPath path: String) -> String? {
        guard let bytes = try? FileReader(path: path).readAll(limit: 4 << 20) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix("Format:") || text.hasPrefix("Format-Specification:") else { return nil }
        var inFilesStar = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { inFilesStar = false; continue }
            if line.hasPrefix("Files:") {
                inFilesStar = line.dropFirst(6).trimmingSpaces() == "*"
            } else if inFilesStar, line.hasPrefix("License:") {
                let v = line.dropFirst(8).trimmingSpaces()
                return v.isEmpty ? nil : v
            }
        }
        return nil
    }

    /// Debian short names → SPDX identifiers (DEP-5 §"License specification").
    static let known: [String: String] = [
        "apache-2.0": "Apache-2.0", "artistic": "Artistic-1.0", "artistic-2.0": "Artistic-2.0",
        "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
        "cc0-1.0": "CC0-1.0", "expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib",
        "mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "psf-2": "Python-2.0", "python-2.0": "Python-2.0",
        "gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later", "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later",
        "gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
        "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
        "agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later", "gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later",
        "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later", "openssl": "OpenSSL", "curl": "curl",
        "unicode-dfs-2016": "Unicode-DFS-2016", "ofl-1.1": "OFL-1.1", "wtfpl": "WTFPL", "0bsd": "0BSD",
    ]

    /// An SPDX licence expression for a DEP-5 licence line (`GPL-2+ or Artistic`), and the
    /// `LicenseRef-` identifiers it had to invent for names SPDX lacks.
    static func spdxExpression(_ debian: String) -> (String, [(id: String, name: String)]) {
        var refs: [(id: String, name: String)] = []
        var out: [String] = []
        for token in debian.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
            let t = String(token).trimming(",")
            if t.isEmpty { continue }
            switch t.lowercased() {
            case "or": out.append("OR")
            case "and": out.append("AND")
            case "with": out.append("WITH")
            default:
                if out.last == "WITH" {
                    // Exceptions (`with OpenSSL exception`) are kept out: SPDX lists few of Debian's.
                    out.removeLast()
                    continue
                }
                if out.last.map({ $0 != "OR" && $0 != "AND" }) ?? false { continue }
                if let k = known[t.lowercased()] {
                    out.append(k)
                } else {
                    let id = "LicenseRef-" + String(t.unicodeScalars.map { c -> Character in
                        (SPDXChars.alnum(c) || c == "." || c == "-") ? Character(c) : "-" })
                    refs.append((id, t))
                    out.append(id)
                }
            }
        }
        while let last = out.last, ["OR", "AND", "WITH"].contains(last) { out.removeLast() }
        return (out.isEmpty ? "NOASSERTION" : out.joined(separator: " "), refs)
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" }).reversed())
    }
}

extension String {
    func trimming(_ chars: String) -> String {
        String(drop(while: { chars.contains($0) }).reversed().drop(while: { chars.contains($0) }).reversed())
    }
}

/// The host's dpkg database: which installed package owns a path (`/var/lib/dpkg/info/*.list`)
/// and at which version (`/var/lib/dpkg/status`). Read once, only for builds with closures.
struct HostPackages {
    struct Owner { var name: String; var version: String; var architecture: String? }
    private var byPath: [String: String] = [:]
    private var versions: [String: (String, String?)] = [:]

    init(root: String, load: Bool) {
        guard load else { return }
        let info = root == "/" ? "/var/lib/dpkg/info" : root + "/var/lib/dpkg/info"
        if let status = try? FileReader(path: (root == "/" ? "" : root) + "/var/lib/dpkg/status").readAll(limit: 256 << 20),
           let installed = try? InstalledPackage.parseStatus(String(decoding: status, as: UTF8.self)) {
            for p in installed { versions[p.name] = (p.version.description, p.architecture) }
        }
        for file in (try? FileSystem.listDirectory(info)) ?? [] where file.hasSuffix(".list") {
            let pkg = String(file.dropLast(5).split(separator: ":").first ?? "")
            guard let bytes = try? FileReader(path: info + "/" + file).readAll(limit: 64 << 20) else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") { byPath[String(line)] = pkg }
        }
    }

    /// The owner of an absolute path, also through merged /usr (dpkg may list `/lib/x`
    /// for what is found at `/usr/lib/x`, and the other way round).
    func owner(of path: String) -> Owner? {
        var candidates = [path]
        if path.hasPrefix("/usr/") { candidates.append(String(path.dropFirst(4))) } else { candidates.append("/usr" + path) }
        for c in candidates {
            if let n = byPath[c] {
                let (v, a) = versions[n] ?? ("", nil)
                return Owner(name: n, version: v.isEmpty ? "NOASSERTION" : v, architecture: a)
            }
        }
        return nil
    }
}
