import KilnArchive
import KilnDebian

enum FuzzDebian {
    /// The ar index, debian-binary and control.tar, then the whole data.tar stream.
    static func deb(_ data: [UInt8]) {
        withFile(data) { path in
            guard let deb = try? DebArchive(path: path) else { return }
            _ = deb.control
            if let reader = try? deb.openData(limit: fuzzLimit) { try? readTar(reader) }
        }
    }

    static func release(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = try? ReleaseFile.parse(text, origin: "fuzz")
        _ = ReleaseFile.parseDate(text)
    }

    /// A Packages index (and a dpkg status file): paragraphs, then records with their
    /// versions and relations.
    static func packages(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        if let paragraphs = try? ControlParagraph.parseAll(text) {
            for p in paragraphs { _ = try? PackageRecord(paragraph: p, repositoryIndex: 0) }
        }
        _ = try? InstalledPackage.parseStatus(text)
    }

    /// Paragraph syntax, and the field grammars read from single lines.
    static func control(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        _ = try? ControlParagraph.parseAll(text)
        _ = try? Relations.parse(text, architecture: "amd64")
        _ = try? PackageRequest(parsing: text, origin: "fuzz")
        if let v = try? DebianVersion(text) { _ = DebianVersion.compare(v, v) }
    }
}
