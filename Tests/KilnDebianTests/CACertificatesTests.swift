import Foundation
import Testing
@testable import KilnDebian

private let haveOpenSSL = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
private let hostCertificatesDirectory = "/usr/share/ca-certificates"
private let haveHostCertificates = FileManager.default.fileExists(atPath: hostCertificatesDirectory + "/mozilla")
private let haveUpdateTool = FileManager.default.isExecutableFile(atPath: "/usr/sbin/update-ca-certificates")
private let haveHostBundle = FileManager.default.fileExists(atPath: "/etc/ssl/certs/ca-certificates.crt")

// MARK: - Helpers (private to this file)

private struct CAScratch {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ca-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    func write(_ name: String, _ bytes: [UInt8]) throws {
        let p = file(name)
        try FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: p))
    }
    func read(_ name: String) throws -> [UInt8] { try readBytes(file(name)) }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private func readBytes(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

private struct ToolResult { var status: Int32; var stdout: String; var stderr: String }

/// Runs a program (no shell) and collects its exit status and output (stderr through a
/// file, so that neither pipe can fill up while the other is read).
private func runTool(_ executable: String, _ arguments: [String]) throws -> ToolResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-ca-stderr-\(UUID().uuidString)").path
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let errHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    let out = Pipe()
    process.standardOutput = out
    process.standardError = errHandle
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try errHandle.close()
    return ToolResult(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
}

/// `openssl x509 -noout -subject_hash -in path`, or nil when openssl cannot load it.
private func opensslSubjectHash(_ path: String) throws -> UInt32? {
    let result = try runTool("/usr/bin/openssl", ["x509", "-noout", "-subject_hash", "-in", path])
    guard result.status == 0 else { return nil }
    return UInt32(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines), radix: 16)
}

/// A fresh self-signed certificate from `openssl req` (PEM), made in `scratch`.
private func makeCertificate(_ scratch: CAScratch, subject: String, name: String, extraArguments: [String] = []) throws -> [UInt8] {
    try FileManager.default.createDirectory(atPath: (scratch.file(name) as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let result = try runTool("/usr/bin/openssl", [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "/dev/null", "-days", "2", "-subj", subject, "-out", scratch.file(name),
    ] + extraArguments)
    guard result.status == 0 else { throw ToolFailure(message: "openssl req failed: \(result.stderr)") }
    return try scratch.read(name)
}

private struct ToolFailure: Error, CustomStringConvertible { var message: String; var description: String { message } }

/// The certificate files of the host's ca-certificates package, relative paths sorted.
private func hostCertificateInputs() throws -> [CACertificates.Input] {
    let enumerator = FileManager.default.enumerator(atPath: hostCertificatesDirectory)!
    var inputs: [CACertificates.Input] = []
    while let relative = enumerator.nextObject() as? String {
        let full = hostCertificatesDirectory + "/" + relative
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
        inputs.append(.init(relativePath: relative, pem: try readBytes(full)))
    }
    return inputs.sorted { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
}

private func pemArmour(_ der: [UInt8], label: String = "CERTIFICATE") -> [UInt8] {
    let base64 = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
    return Array("-----BEGIN \(label)-----\n\(base64)\n-----END \(label)-----\n".utf8)
}

/// The DER of the first certificate in a PEM file.
private func firstDER(_ pem: [UInt8]) throws -> [UInt8] {
    try #require(try PEM.blocks(pem).first { $0.isCertificate }).der
}

/// `certificate` with its subject Name replaced by `subject` (lengths re-encoded).
/// The signature no longer verifies; `openssl x509 -subject_hash` does not check it.
private func replacingSubject(of certificate: [UInt8], with subject: [UInt8]) throws -> [UInt8] {
    var outer = DERReader(certificate)
    let cert = try outer.read()
    var parts = DERReader(certificate, cert.content)
    let tbs = try parts.read()
    var fields = DERReader(certificate, tbs.content)
    var element = try fields.read()
    if element.tag == 0xA0 { element = try fields.read() }  // version
    for _ in 0..<4 { element = try fields.read() }          // signature, issuer, validity, subject
    let newTBS = Array(certificate[tbs.contentStart..<element.start]) + subject + Array(certificate[element.end..<tbs.end])
    let rest = Array(certificate[tbs.end..<cert.end])
    return DER.encode(tag: 0x30, content: (DER.encode(tag: 0x30, content: newTBS[...]) + rest)[...])
}

// Builders for hand-made Names.
private func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] { DER.encode(tag: tag, content: content[...]) }
private let commonName: [UInt8] = [0x06, 0x03, 0x55, 0x04, 0x03]
private let organization: [UInt8] = [0x06, 0x03, 0x55, 0x04, 0x0A]
private let email: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]
private func attribute(_ type: [UInt8], _ tag: UInt8, bytes value: [UInt8]) -> [UInt8] { tlv(0x30, type + tlv(tag, value)) }
private func attribute(_ type: [UInt8], _ tag: UInt8, _ value: String) -> [UInt8] { attribute(type, tag, bytes: Array(value.utf8)) }
/// A commonName attribute.
private func cn(_ tag: UInt8, bytes value: [UInt8]) -> [UInt8] { attribute(commonName, tag, bytes: value) }
private func cn(_ tag: UInt8, _ value: String) -> [UInt8] { attribute(commonName, tag, value) }
private func rdn(_ attributes: [UInt8]...) -> [UInt8] { tlv(0x31, Array(attributes.joined())) }
private func name(_ rdns: [UInt8]...) -> [UInt8] { tlv(0x30, Array(rdns.joined())) }
private func utf16BE(_ s: String) -> [UInt8] { s.utf16.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } }
private func utf32BE(_ s: String) -> [UInt8] {
    var bytes: [UInt8] = []
    for scalar in s.unicodeScalars {
        let v = scalar.value
        bytes += [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }
    return bytes
}

/// Subjects that exercise canonicalisation and the types OpenSSL accepts or rejects.
/// Each is checked against openssl itself: it must load and agree, or fail and we throw.
private let craftedSubjects: [(String, [UInt8])] = {
    var list: [(String, [UInt8])] = []
    list.append(("PrintableString with mixed white space", name(rdn(cn(0x13, "  Mixed \t\n Case\u{0B}\u{0C}\r  Name  ")))))
    list.append(("UTF8String, non-ASCII capitals kept", name(rdn(cn(0x0C, "  ÄÖÜ  Straße \t ÉCOLE ")))))
    list.append(("T61String as Latin-1, NBSP and NEL are not spaces", name(rdn(cn(0x14, bytes: [0x20, 0xC4, 0x41, 0x20, 0x20, 0xA0, 0x42, 0x85, 0x43, 0x20])))))
    list.append(("BMPString", name(rdn(attribute(organization, 0x1E, bytes: utf16BE(" Ωmega  GREEK "))), rdn(cn(0x13, "X")))))
    list.append(("BMPString with a surrogate pair", name(rdn(cn(0x1E, bytes: utf16BE("a😀b"))))))
    list.append(("BMPString of odd length", name(rdn(cn(0x1E, bytes: [0x00, 0x41, 0x00])))))
    list.append(("UniversalString", name(rdn(cn(0x1C, bytes: utf32BE(" Ünïcode  X 😀 "))))))
    list.append(("UniversalString above U+10FFFF", name(rdn(cn(0x1C, bytes: [0x00, 0x11, 0x00, 0x00])))))
    list.append(("UniversalString of length 6", name(rdn(cn(0x1C, bytes: [0, 0, 0, 0x41, 0, 0])))))
    list.append(("IA5String e-mail address", name(rdn(attribute(email, 0x16, "  USER@Example.COM ")))))
    list.append(("VisibleString", name(rdn(cn(0x1A, "Visible  STRING")))))
    list.append(("NumericString is not canonicalised", name(rdn(cn(0x12, " 12  34 ")))))
    list.append(("UTF8String truncated", name(rdn(cn(0x0C, bytes: [0x41, 0xC3])))))
    list.append(("UTF8String overlong", name(rdn(cn(0x0C, bytes: [0xC0, 0xAF])))))
    list.append(("UTF8String encoded surrogate", name(rdn(cn(0x0C, bytes: [0xED, 0xA0, 0x80])))))
    list.append(("UTF8String NUL", name(rdn(cn(0x0C, bytes: [0x41, 0x00, 0x42])))))
    list.append(("empty PrintableString", name(rdn(cn(0x13, "")))))
    list.append(("white space only", name(rdn(cn(0x13, "  \t  ")))))
    list.append(("multi-valued RDN, sorted after canonicalisation", name(rdn(attribute(organization, 0x13, "Zeta"), cn(0x13, "b"), cn(0x0C, "A  "), cn(0x13, " a")))))
    list.append(("multi-valued RDN with equal entries", name(rdn(cn(0x13, "X"), cn(0x0C, "x")))))
    list.append(("empty RDN", name(rdn(), rdn(cn(0x13, "After")))))
    list.append(("empty Name", name()))
    list.append(("OCTET STRING value", name(rdn(cn(0x04, "octets")))))
    list.append(("INTEGER value", name(rdn(cn(0x02, bytes: [0x01])))))
    list.append(("BIT STRING with unused bits set", name(rdn(cn(0x03, bytes: [0x03, 0xFF])))))
    list.append(("BIT STRING with no bits", name(rdn(cn(0x03, bytes: [0x05])))))
    list.append(("BIT STRING with a bad unused-bits octet", name(rdn(cn(0x03, bytes: [0x08, 0x00])))))
    list.append(("SEQUENCE value kept whole", name(rdn(tlv(0x30, commonName + tlv(0x30, tlv(0x0C, Array("  X  Y".utf8))))))))
    list.append(("primitive SEQUENCE tag", name(rdn(cn(0x10, "X")))))
    list.append(("REAL tag kept", name(rdn(cn(0x09, bytes: [0x80, 0x01, 0x05])))))
    list.append(("GeneralString tag", name(rdn(cn(0x1B, "General")))))
    list.append(("context-specific tag", name(rdn(cn(0x80, "X")))))
    list.append(("OID with a leading 0x80", name(rdn(tlv(0x30, [0x06, 0x02, 0x80, 0x01] + tlv(0x13, [0x41]))))))
    list.append(("empty OID", name(rdn(tlv(0x30, [0x06, 0x00] + tlv(0x13, [0x41]))))))
    list.append(("OID ending mid-subidentifier", name(rdn(tlv(0x30, [0x06, 0x02, 0x55, 0x84] + tlv(0x13, [0x41]))))))
    list.append(("attribute with three elements", name(rdn(tlv(0x30, commonName + tlv(0x13, [0x41]) + tlv(0x13, [0x42]))))))
    list.append(("attribute with no value", name(rdn(tlv(0x30, commonName)))))
    list.append(("long value (long-form lengths)", name(rdn(cn(0x13, String(repeating: "Long  Value ", count: 30))))))
    list.append(("non-minimal length in the value", name(rdn(tlv(0x30, commonName + [0x13, 0x81, 0x05] + Array("HeLLo".utf8))))))
    return list
}()

// MARK: - Tests

@Suite struct CACertificatesTests {
    @Test("subject hash of every host CA certificate agrees with openssl x509 -subject_hash",
          .enabled(if: haveOpenSSL && haveHostCertificates))
    func hostCertificatesAgreeWithOpenSSL() throws {
        let inputs = try hostCertificateInputs()
        #expect(inputs.count > 50)
        for input in inputs {
            let ours = try X509SubjectHash.hash(pem: input.pem)
            let theirs = try opensslSubjectHash(hostCertificatesDirectory + "/" + input.relativePath)
            #expect(ours.first == theirs, "\(input.relativePath)")
            #expect(ours.count == 1, "\(input.relativePath)")
        }
    }

    @Test("the bundle is the host's /etc/ssl/certs/ca-certificates.crt, or the same files catenated in conf order",
          .enabled(if: haveHostCertificates && haveHostBundle))
    func bundleMatchesHost() throws {
        let inputs = try hostCertificateInputs()
        let output = try CACertificates.generate(inputs)
        let hostBundle = try readBytes("/etc/ssl/certs/ca-certificates.crt")
        let conf = String(decoding: try readBytes("/etc/ca-certificates.conf"), as: UTF8.self)
        let listed = conf.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("!") }.map(String.init)
        let available = inputs.map(\.relativePath).filter { $0.hasSuffix(".crt") }
        if listed == available {
            // update-ca-certificates appends the admin's /usr/local/share/ca-certificates
            // certificates after the package's; our input has only the package's.
            #expect(hostBundle.count >= output.bundle.count)
            #expect(Array(hostBundle.prefix(output.bundle.count)) == output.bundle)
            let rest = hostBundle.dropFirst(output.bundle.count)
            #expect(rest.isEmpty || rest.starts(with: Array("-----BEGIN".utf8)))
        } else {
            // The host's conf deselects or orders differently: compare with the files
            // catenated the way update-ca-certificates does it (`sed -e '$a\'`).
            var expected: [UInt8] = []
            for path in available {
                let result = try runTool("/usr/bin/sed", ["-e", "$a\\", hostCertificatesDirectory + "/" + path])
                expected += Array(result.stdout.utf8)
            }
            #expect(output.bundle == expected)
        }
    }

    @Test(".pem and hash links match the host's /etc/ssl/certs for the package's certificates",
          .enabled(if: haveHostCertificates && haveHostBundle))
    func linksMatchHost() throws {
        let output = try CACertificates.generate(try hostCertificateInputs())
        let pemLinks = output.links.filter { $0.name.hasSuffix(".pem") }
        let hashLinks = output.links.filter { !$0.name.hasSuffix(".pem") }
        #expect(pemLinks.count > 50)
        #expect(hashLinks.count == pemLinks.count)  // the package has no duplicate certificates
        for link in pemLinks {
            let host = try? FileManager.default.destinationOfSymbolicLink(atPath: "/etc/ssl/certs/" + link.name)
            #expect(host == link.target, "\(link.name)")
        }
        let ourPemNames = Set(pemLinks.map(\.name))
        var hostHashLinks: [String: String] = [:]
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/etc/ssl/certs")
        where entry.range(of: #"^[0-9a-f]{8}\.[0-9]+$"#, options: .regularExpression) != nil {
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/etc/ssl/certs/" + entry)
            if ourPemNames.contains(target) { hostHashLinks[entry] = target }
        }
        let ours = Dictionary(uniqueKeysWithValues: hashLinks.map { ($0.name, $0.target) })
        #expect(ours == hostHashLinks)
    }

    @Test("the real update-ca-certificates on the host's certificates makes exactly our bundle and links",
          .enabled(if: haveOpenSSL && haveHostCertificates && haveUpdateTool))
    func realToolOnHostCertificates() throws {
        let inputs = try hostCertificateInputs()
        try compareWithRealTool(inputs, certsDir: hostCertificatesDirectory)
    }

    @Test("the real update-ca-certificates agrees on duplicates, hash collisions, odd names and missing newlines",
          .enabled(if: haveOpenSSL && haveUpdateTool))
    func realToolOnHandMadeCertificates() throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let same1 = try makeCertificate(scratch, subject: "/CN=Same Subject", name: "gen/1.pem")
        let same2 = try makeCertificate(scratch, subject: "/CN=Same Subject", name: "gen/2.pem")
        let same3 = try makeCertificate(scratch, subject: "/CN=  same   SUBJECT ", name: "gen/3.pem")
        let other = try makeCertificate(scratch, subject: "/CN=Other/O=Kiln", name: "gen/4.pem")
        let single = try makeCertificate(scratch, subject: "/CN=Zed", name: "gen/5.pem")
        let noNewline = Array(other.dropLast())
        let inputs: [CACertificates.Input] = [
            .init(relativePath: "local/b dup (copy), two.crt", pem: same1),  // identical to "a": skipped by rehash
            .init(relativePath: "local/a.crt", pem: same1),
            .init(relativePath: "local/C.crt", pem: same2),
            .init(relativePath: "other/c.crt", pem: same3),      // canonically the same subject
            .init(relativePath: "other/no-newline.crt", pem: noNewline),
            .init(relativePath: "other/two.crt", pem: same2 + other),  // two certificates: no hash link
            .init(relativePath: "other/a.crt", pem: single),     // same link name as local/a.crt: takes it over
            .init(relativePath: "other/empty.crt", pem: []),
            .init(relativePath: "other/README", pem: Array("not a certificate".utf8)),
            .init(relativePath: "z/Überprüfung.crt", pem: other),
        ]
        let output = try CACertificates.generate(inputs)
        for input in inputs { try scratch.write("share/" + input.relativePath, input.pem) }
        try compareWithRealTool(inputs, certsDir: scratch.file("share"))
        #expect(output.links.contains { $0.name == "b_dup_=copy=__two.pem" })
        #expect(output.links.first { $0.name == "a.pem" }?.target == "/usr/share/ca-certificates/other/a.crt")
    }

    @Test("a single certificate: the bundle (still ca-certificates.crt.new while rehashing) gets no hash link", .enabled(if: haveOpenSSL && haveUpdateTool),
          arguments: ["Upper.crt", "lower.crt"])
    func bundleTakesPartInRehash(fileName: String) throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let pem = try makeCertificate(scratch, subject: "/CN=Only", name: "share/x/" + fileName)
        let inputs = [CACertificates.Input(relativePath: "x/" + fileName, pem: pem)]
        try compareWithRealTool(inputs, certsDir: scratch.file("share"))
        let hashLinks = try CACertificates.generate(inputs).links.filter { !$0.name.hasSuffix(".pem") }
        // Were the bundle a candidate, strcmp order ("Upper.pem" < "ca-certificates.crt" <
        // "lower.pem") would give it the link in the second case.
        #expect(hashLinks.map(\.target) == [fileName == "Upper.crt" ? "Upper.pem" : "lower.pem"])
    }

    /// Runs /usr/sbin/update-ca-certificates with `configuration(inputs)` against
    /// `certsDir` into an empty directory and compares everything it made with ours.
    private func compareWithRealTool(_ inputs: [CACertificates.Input], certsDir: String) throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        try scratch.write("ca-certificates.conf", try CACertificates.configuration(inputs))
        try FileManager.default.createDirectory(atPath: scratch.file("etc"), withIntermediateDirectories: true)
        let result = try runTool("/usr/sbin/update-ca-certificates", [
            "--certsconf", scratch.file("ca-certificates.conf"), "--certsdir", certsDir,
            "--localcertsdir", scratch.file("no-local"), "--etccertsdir", scratch.file("etc"),
            "--hooksdir", scratch.file("no-hooks"),
        ])
        try #require(result.status == 0, "update-ca-certificates: \(result.stderr)")

        let output = try CACertificates.generate(inputs)
        #expect(try scratch.read("etc/ca-certificates.crt") == output.bundle)
        var theirs: [String: String] = [:]
        for entry in try FileManager.default.contentsOfDirectory(atPath: scratch.file("etc")) where entry != "ca-certificates.crt" {
            theirs[entry] = try FileManager.default.destinationOfSymbolicLink(atPath: scratch.file("etc/" + entry))
        }
        var ours: [String: String] = [:]
        for link in output.links {
            #expect(ours[link.name] == nil, "link \(link.name) listed twice")
            ours[link.name] = link.target.replacingOccurrences(of: CACertificates.certificatesDirectory + "/", with: certsDir + "/")
        }
        #expect(ours == theirs)
    }

    @Test("openssl req certificates: mixed case and spaces (UTF8String), T61String, BMPString, IA5String",
          .enabled(if: haveOpenSSL))
    func handMadeCertificates() throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let mixed = try makeCertificate(scratch, subject: "/CN=  Mixed   Case  Name /O=Kiln", name: "mixed.pem")
        let lower = try makeCertificate(scratch, subject: "/CN=mixed case name/O=kiln", name: "lower.pem")
        let mixedHash = try X509SubjectHash.hash(pem: mixed)
        #expect(mixedHash == [try #require(try opensslSubjectHash(scratch.file("mixed.pem")))])
        #expect(mixedHash == (try X509SubjectHash.hash(pem: lower)))

        // string_mask=default lets openssl pick T61String for Latin-1 text and BMPString
        // beyond it; the v1 certificate (no extensions) also has no version field.
        try scratch.write("req.cnf", Array("[req]\ndistinguished_name = dn\nstring_mask = default\nprompt = no\n[dn]\nCN = x\n".utf8))
        let wide = try makeCertificate(
            scratch, subject: "/CN=  Ünïcode   NÄME /O=Ωmega  CORP/emailAddress=Foo@Example.COM", name: "wide.pem",
            extraArguments: ["-utf8", "-config", scratch.file("req.cnf")])
        let parsed = try runTool("/usr/bin/openssl", ["asn1parse", "-in", scratch.file("wide.pem")]).stdout
        #expect(parsed.contains("T61STRING") && parsed.contains("BMPSTRING") && parsed.contains("IA5STRING"))
        let expected = try #require(try opensslSubjectHash(scratch.file("wide.pem")))
        #expect(try X509SubjectHash.hash(pem: wide) == [expected])
        #expect(try X509SubjectHash.hash(certificateDER: try firstDER(wide)) == expected)
    }

    @Test("crafted subjects: same hash as openssl, or both reject", .enabled(if: haveOpenSSL))
    func craftedSubjectsAgreeWithOpenSSL() throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let base = try firstDER(try makeCertificate(scratch, subject: "/CN=base", name: "base.pem"))
        var rejected: [String] = []
        for (index, (label, subject)) in craftedSubjects.enumerated() {
            let der = try replacingSubject(of: base, with: subject)
            try scratch.write("crafted-\(index).pem", pemArmour(der))
            let theirs = try opensslSubjectHash(scratch.file("crafted-\(index).pem"))
            let ours = Result { try X509SubjectHash.hash(certificateDER: der) }
            switch (ours, theirs) {
            case (.success(let hash), .some(let expected)):
                #expect(hash == expected, "\(label)")
            case (.failure(let error), .none):
                #expect(error is X509Error, "\(label)")
                rejected.append(label)
            case (.success(let hash), .none):
                Issue.record("\(label): openssl rejects it, we hashed it to \(String(hash, radix: 16))")
            case (.failure(let error), .some):
                Issue.record("\(label): openssl hashes it, we threw \(error)")
            }
        }
        // The rejections must include the cases that matter, not only agree vacuously.
        #expect(rejected.contains("OCTET STRING value"))
        #expect(rejected.contains("BMPString of odd length"))
        #expect(rejected.contains("UTF8String encoded surrogate"))
    }

    @Test("canonical text: trimmed, runs of white space collapsed, ASCII lowercased")
    func canonicalText() {
        let text = X509SubjectHash.canonicalText(Array("  Mixed \t\n Case\u{0B}\u{0C}\r Name  Ä ".utf8))
        #expect(String(decoding: text, as: UTF8.self) == "mixed case name Ä")
        #expect(X509SubjectHash.canonicalText(Array(" \t ".utf8)).isEmpty)
    }

    @Test("a BER constructed string is refused as unsupported rather than misread")
    func constructedStringThrows() throws {
        let subject = name(rdn(tlv(0x30, commonName + tlv(0x2C, tlv(0x0C, [0x41]) + tlv(0x0C, [0x42])))))
        var reader = DERReader(subject)
        let element = try reader.read()
        #expect(throws: X509Error.self) { try X509SubjectHash.canonicalEncoding(subject, name: element) }
    }

    @Test("truncated, malformed and mutated DER throws and never crashes", .enabled(if: haveOpenSSL))
    func malformedDERThrows() throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let der = try firstDER(try makeCertificate(scratch, subject: "/CN=Truncate Me/O=Kiln", name: "t.pem"))
        _ = try X509SubjectHash.hash(certificateDER: der)
        for length in 0..<der.count {
            #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: Array(der.prefix(length))) }
        }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: der + [0x00]) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: [0x30, 0x80, 0x00, 0x00]) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: [0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: [0x30, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: [0x3F, 0x81, 0x01, 0x00]) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(certificateDER: []) }
        // Every single-byte change either still parses or throws an X509Error.
        var generator = SystemRandomNumberGenerator()
        for index in der.indices {
            for replacement: UInt8 in [0x00, 0x7F, 0x80, 0x84, 0xFF, UInt8.random(in: 0...255, using: &generator)] {
                var mutated = der
                mutated[index] = replacement
                do { _ = try X509SubjectHash.hash(certificateDER: mutated) } catch { #expect(error is X509Error) }
            }
        }
    }

    @Test("PEM: damaged armour throws; other blocks are skipped; TRUSTED CERTIFICATE is read", .enabled(if: haveOpenSSL))
    func pemHandling() throws {
        let scratch = try CAScratch()
        defer { scratch.remove() }
        let pem = try makeCertificate(scratch, subject: "/CN=Pem", name: "p.pem")
        let der = try firstDER(pem)
        let expected = try X509SubjectHash.hash(certificateDER: der)
        let text = String(decoding: pem, as: UTF8.self)
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(pem: Array(text.replacingOccurrences(of: "-----END CERTIFICATE-----", with: "").utf8)) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(pem: Array(text.replacingOccurrences(of: "M", with: "*").utf8)) }
        #expect(throws: X509Error.self) { try X509SubjectHash.hash(pem: Array(text.replacingOccurrences(of: "-----END CERTIFICATE", with: "-----END X509 CRL").utf8)) }
        let mixed = Array("comment\r\n".utf8) + pemArmour([0x01, 0x02], label: "PRIVATE KEY") + Array(text.replacingOccurrences(of: "\n", with: "\r\n").utf8) + pem
        #expect(try X509SubjectHash.hash(pem: mixed) == [expected, expected])
        #expect(try X509SubjectHash.hash(pem: Array("no PEM here".utf8)).isEmpty)
        let trusted = pemArmour(der + tlv(0x30, tlv(0x30, [0x06, 0x01, 0x01])), label: "TRUSTED CERTIFICATE")
        #expect(try X509SubjectHash.hash(pem: trusted) == [expected])
    }

    @Test("link names: basename, .crt dropped, spaces and commas to _, parentheses to =")
    func pemLinkNames() {
        #expect(CACertificates.pemLinkName(forCertificateAt: "mozilla/ACCVRAIZ1.crt") == "ACCVRAIZ1.pem")
        #expect(CACertificates.pemLinkName(forCertificateAt: "mozilla/NetLock_Arany_(Class Gold), X.crt") == "NetLock_Arany_=Class_Gold=__X.pem")
        #expect(CACertificates.pemLinkName(forCertificateAt: "a/.crt") == ".crt.pem")
        #expect(CACertificates.hashLinkName(0x0a1b2c, 3) == "000a1b2c.3")
    }

    @Test("paths: sorted by bytes, non-.crt ignored, bad or duplicate paths rejected")
    func paths() throws {
        let inputs: [CACertificates.Input] = [
            .init(relativePath: "b/ä.crt", pem: Array("B\n".utf8)),
            .init(relativePath: "b/z.crt", pem: Array("Z".utf8)),
            .init(relativePath: "a/B.crt", pem: Array("A\n".utf8)),
            .init(relativePath: "a/notes.txt", pem: Array("ignored".utf8)),
        ]
        let output = try CACertificates.generate(inputs)
        #expect(output.bundle == Array("A\nZ\nB\n".utf8))
        #expect(output.links.map(\.name) == ["B.pem", "z.pem", "ä.pem"])
        let conf = String(decoding: try CACertificates.configuration(inputs), as: UTF8.self)
        #expect(conf.hasSuffix("#\na/B.crt\nb/z.crt\nb/ä.crt\n"))
        for bad in ["/abs.crt", "a/../b.crt", "a//b.crt", "./a.crt", "a\nb.crt", " a.crt", "a\\b.crt"] {
            #expect(throws: CACertificatesError.badPath(bad)) { try CACertificates.generate([.init(relativePath: bad, pem: [])]) }
        }
        #expect(throws: CACertificatesError.duplicatePath("a.crt")) {
            try CACertificates.generate([.init(relativePath: "a.crt", pem: []), .init(relativePath: "a.crt", pem: [])])
        }
        let garbage = Array("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".utf8)
        #expect(throws: CACertificatesError.self) { try CACertificates.generate([.init(relativePath: "x/bad.crt", pem: garbage)]) }
    }
}
