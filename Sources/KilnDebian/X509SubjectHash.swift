import Crypto

/// OpenSSL's certificate subject hash, the name of the `HHHHHHHH.N` links in a CApath
/// directory such as `/etc/ssl/certs` (openssl-rehash(1), `X509_LOOKUP_hash_dir`).
///
/// The value is `X509_NAME_hash_ex` (OpenSSL ≥ 1.0, `openssl x509 -subject_hash`): SHA-1
/// over the subject Name's *canonical encoding*, whose first four bytes are read as a
/// little-endian `UInt32`. The canonical encoding (OpenSSL `x509_name_canon` and
/// `asn1_string_canon` in crypto/x509/x_name.c) is:
///
/// - the RDNSequence without its outer SEQUENCE header: each non-empty
///   RelativeDistinguishedName re-encoded as a DER `SET OF` (elements sorted by their
///   encodings, X.690 §11.6), concatenated;
/// - in each AttributeTypeAndValue, a value of type UTF8String, PrintableString,
///   T61String (read as Latin-1), IA5String, BMPString (UCS-2) or UniversalString
///   (UCS-4) converted to UTF-8, ASCII whitespace (`" \t\n\v\f\r"`) trimmed at both ends
///   and runs of it inside collapsed to one space, ASCII letters lowercased, and encoded
///   as a UTF8String; other value types re-encoded unchanged.
///
/// Values are decoded as OpenSSL's `X509_NAME_ENTRY` template does (`ASN1_PRINTABLE`):
/// a value type outside that set (OCTET STRING, VisibleString, INTEGER, a non-universal
/// tag, …) makes OpenSSL reject the certificate, and it makes this throw too. So do
/// strings that are not valid in their encoding (odd-length BMPString, surrogates,
/// invalid UTF-8): OpenSSL fails to canonicalise them and rejects the certificate.
public enum X509SubjectHash {
    /// The subject hash of one DER-encoded X.509 certificate (the whole
    /// `Certificate` SEQUENCE, nothing after it).
    public static func hash(certificateDER: [UInt8]) throws -> UInt32 {
        var reader = DERReader(certificateDER)
        let certificate = try reader.read(expecting: DERReader.sequence, "Certificate")
        guard reader.isAtEnd else {
            throw X509Error.malformedDER(offset: reader.position, reason: "bytes after the Certificate")
        }
        return try subjectHash(certificateDER, certificate)
    }

    /// The subject hash of every certificate block (`CERTIFICATE`, `X509 CERTIFICATE`,
    /// `TRUSTED CERTIFICATE`) in a PEM file, in file order; other blocks are skipped.
    public static func hash(pem: [UInt8]) throws -> [UInt32] {
        try PEM.blocks(pem).compactMap { block in
            guard block.isCertificate else { return nil }
            return try certificate(in: block).subjectHash
        }
    }

    /// A certificate from a PEM block: its DER bytes (for `TRUSTED CERTIFICATE`, without
    /// the trust settings after it, as `X509_digest` sees it) and its subject hash.
    struct Certificate: Sendable {
        var der: ArraySlice<UInt8>
        var subjectHash: UInt32
    }

    static func certificate(in block: PEM.Block) throws -> Certificate {
        var reader = DERReader(block.der)
        let element = try reader.read(expecting: DERReader.sequence, "Certificate")
        // Only a TRUSTED CERTIFICATE carries something (X509_CERT_AUX) after the certificate.
        guard reader.isAtEnd || block.label == "TRUSTED CERTIFICATE" else {
            throw X509Error.malformedDER(offset: reader.position, reason: "bytes after the Certificate")
        }
        let hash = try subjectHash(block.der, element)
        return Certificate(der: block.der[element.whole], subjectHash: hash)
    }

    /// Walks Certificate → TBSCertificate → subject (RFC 5280 §4.1) and hashes the
    /// subject's canonical encoding. Fields after the subject are not examined.
    private static func subjectHash(_ der: [UInt8], _ certificate: DERElement) throws -> UInt32 {
        var outer = DERReader(der, certificate.content)
        let tbs = try outer.read(expecting: DERReader.sequence, "TBSCertificate")
        _ = try outer.read(expecting: DERReader.sequence, "signatureAlgorithm")
        _ = try outer.read(expecting: DERReader.bitString, "signatureValue")
        guard outer.isAtEnd else {
            throw X509Error.malformedDER(offset: outer.position, reason: "extra element in Certificate")
        }
        var fields = DERReader(der, tbs.content)
        var serial = try fields.read("serialNumber")
        if serial.tag == 0xA0 {  // version [0] EXPLICIT, absent for v1 certificates
            serial = try fields.read("serialNumber")
        }
        guard serial.tag == DERReader.integer else {
            throw X509Error.malformedDER(offset: serial.start, reason: "serialNumber is not an INTEGER")
        }
        _ = try fields.read(expecting: DERReader.sequence, "signature")
        _ = try fields.read(expecting: DERReader.sequence, "issuer")
        _ = try fields.read(expecting: DERReader.sequence, "validity")
        let subject = try fields.read(expecting: DERReader.sequence, "subject")
        let canonical = try canonicalEncoding(der, name: subject)
        let digest = Array(Insecure.SHA1.hash(data: canonical))
        return UInt32(digest[0]) | UInt32(digest[1]) << 8 | UInt32(digest[2]) << 16 | UInt32(digest[3]) << 24
    }

    // MARK: - Canonical encoding of a Name

    /// The canonical encoding of the Name whose element is `name` (see the type's docs).
    static func canonicalEncoding(_ der: [UInt8], name: DERElement) throws -> [UInt8] {
        var output: [UInt8] = []
        var rdns = DERReader(der, name.content)
        while !rdns.isAtEnd {
            let rdn = try rdns.read(expecting: DERReader.set, "RelativeDistinguishedName")
            var entries: [[UInt8]] = []
            var attributes = DERReader(der, rdn.content)
            while !attributes.isAtEnd {
                let attribute = try attributes.read(expecting: DERReader.sequence, "AttributeTypeAndValue")
                var parts = DERReader(der, attribute.content)
                let type = try parts.read(expecting: DERReader.objectIdentifier, "attribute type")
                try checkObjectIdentifier(der, type)
                let value = try parts.read("attribute value")
                guard parts.isAtEnd else {
                    throw X509Error.malformedDER(offset: parts.position, reason: "extra element in AttributeTypeAndValue")
                }
                var entry = DER.encode(tag: DERReader.objectIdentifier, content: der[type.content])
                entry += try canonicalValue(der, value)
                entries.append(DER.encode(tag: DERReader.sequence, content: entry[...]))
            }
            // An empty RDN has no entries, and OpenSSL's canonical form groups entries.
            guard !entries.isEmpty else { continue }
            entries.sort { $0.lexicographicallyPrecedes($1) }
            output += DER.encode(tag: DERReader.set, content: Array(entries.joined())[...])
        }
        return output
    }

    /// An OBJECT IDENTIFIER's contents as OpenSSL's `c2i_ASN1_OBJECT` accepts them: not
    /// empty, the last octet ends a subidentifier, no subidentifier starts with 0x80.
    private static func checkObjectIdentifier(_ der: [UInt8], _ oid: DERElement) throws {
        let content = der[oid.content]
        guard let last = content.last, last & 0x80 == 0 else {
            throw X509Error.invalidName(offset: oid.start, reason: "malformed OBJECT IDENTIFIER")
        }
        var previous: UInt8 = 0
        for byte in content {
            if byte == 0x80 && previous & 0x80 == 0 {
                throw X509Error.invalidName(offset: oid.start, reason: "OBJECT IDENTIFIER subidentifier with a leading 0x80")
            }
            previous = byte
        }
    }

    /// Universal tag numbers OpenSSL's `B_ASN1_UNKNOWN` admits in a name value; their
    /// contents are kept as they are.
    private static let keptUnknownTags: Set<UInt8> = [7, 8, 9, 11, 13, 14, 15, 29]

    /// One attribute value in canonical form: the full TLV to append.
    private static func canonicalValue(_ der: [UInt8], _ value: DERElement) throws -> [UInt8] {
        let content = der[value.content]
        switch value.tag {
        case 0x30:  // SEQUENCE: kept whole, header included, as OpenSSL stores it
            return Array(der[value.whole])
        case 0x0C, 0x13, 0x14, 0x16, 0x1C, 0x1E:
            let text = try utf8(of: content, tag: value.tag, offset: value.start)
            return DER.encode(tag: 0x0C, content: canonicalText(text)[...])
        case 0x12:  // NumericString: admitted, but not canonicalised
            return DER.encode(tag: value.tag, content: content)
        case 0x03:  // BIT STRING, as c2i/i2c_ASN1_BIT_STRING round-trip it
            guard let unused = content.first, unused <= 7 else {
                throw X509Error.invalidName(offset: value.start, reason: "BIT STRING with a bad unused-bits octet")
            }
            if content.count == 1 { return [0x03, 0x01, 0x00] }
            var bits = Array(content)
            bits[bits.count - 1] &= UInt8(truncatingIfNeeded: 0xFF << unused)
            return DER.encode(tag: 0x03, content: bits[...])
        case let tag where keptUnknownTags.contains(tag):
            return DER.encode(tag: tag, content: content)
        default:
            if value.tag & 0xC0 != 0 {
                throw X509Error.invalidName(offset: value.start, reason: "attribute value with a non-universal tag 0x\(hex(value.tag))")
            }
            if value.tag & 0x20 != 0 {
                throw X509Error.unsupportedEncoding(offset: value.start, reason: "constructed attribute value (tag 0x\(hex(value.tag)))")
            }
            throw X509Error.invalidName(offset: value.start, reason: "attribute value of a type OpenSSL does not accept in a name (tag 0x\(hex(value.tag)))")
        }
    }

    /// The value's characters as UTF-8, as `ASN1_STRING_to_UTF8` converts them: the
    /// one-byte types as Latin-1, BMPString as UCS-2, UniversalString as UCS-4; code
    /// points that are surrogates or above U+10FFFF are rejected.
    private static func utf8(of content: ArraySlice<UInt8>, tag: UInt8, offset: Int) throws -> [UInt8] {
        func invalid(_ reason: String) -> X509Error { .invalidName(offset: offset, reason: reason) }
        var scalars: [UInt32] = []
        switch tag {
        case 0x0C:
            guard let valid = validatedUTF8(content) else { throw invalid("UTF8String is not valid UTF-8") }
            return valid
        case 0x1E:
            guard content.count % 2 == 0 else { throw invalid("BMPString of odd length") }
            var index = content.startIndex
            while index < content.endIndex {
                scalars.append(UInt32(content[index]) << 8 | UInt32(content[index + 1]))
                index += 2
            }
        case 0x1C:
            guard content.count % 4 == 0 else { throw invalid("UniversalString length not a multiple of 4") }
            var index = content.startIndex
            while index < content.endIndex {
                var value: UInt32 = 0
                for byte in content[index..<index + 4] { value = value << 8 | UInt32(byte) }
                scalars.append(value)
                index += 4
            }
        default:
            scalars = content.map(UInt32.init)
        }
        var output: [UInt8] = []
        output.reserveCapacity(scalars.count)
        for value in scalars {
            guard let scalar = Unicode.Scalar(value) else { throw invalid("character U+\(hex(value)) is not a Unicode scalar") }
            output += UTF8.encode(scalar)!
        }
        return output
    }

    /// `bytes` if they are well-formed UTF-8 (no overlong forms, no surrogates, nothing
    /// above U+10FFFF), else nil.
    private static func validatedUTF8(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return Array(bytes)
            case .error: return nil
            }
        }
    }

    /// OpenSSL's `ossl_isspace`: the C locale's white space, ASCII only.
    private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    /// Trim, collapse white space runs to one space, lowercase ASCII letters; bytes of
    /// multi-byte characters are copied unchanged.
    static func canonicalText(_ text: [UInt8]) -> [UInt8] {
        guard let first = text.firstIndex(where: { !isSpace($0) }),
              let last = text.lastIndex(where: { !isSpace($0) }) else { return [] }
        var output: [UInt8] = []
        output.reserveCapacity(last - first + 1)
        var inSpace = false
        for byte in text[first...last] {
            if isSpace(byte) {
                if !inSpace { output.append(0x20) }
                inSpace = true
                continue
            }
            inSpace = false
            output.append((0x41...0x5A).contains(byte) ? byte | 0x20 : byte)
        }
        return output
    }

    private static func hex<T: BinaryInteger>(_ value: T) -> String { String(value, radix: 16, uppercase: true) }
}

/// Errors from reading a certificate: its PEM armour, its DER structure, its subject
/// name. Each description is one line naming the place (byte offset into the DER, or
/// PEM line) and what is wrong there.
public enum X509Error: Error, CustomStringConvertible, Sendable, Equatable {
    /// The DER is truncated or structurally wrong (tag, length, missing element).
    case malformedDER(offset: Int, reason: String)
    /// BER forms accepted by some readers but not here (indefinite lengths, high tag
    /// numbers, constructed strings); X.509 certificates are DER (RFC 5280 §4.1).
    case unsupportedEncoding(offset: Int, reason: String)
    /// The subject name holds something OpenSSL rejects (so no subject hash exists).
    case invalidName(offset: Int, reason: String)
    /// The PEM armour or its base64 is damaged.
    case malformedPEM(line: Int, reason: String)

    public var description: String {
        switch self {
        case .malformedDER(let offset, let reason):
            return "malformed certificate DER at byte \(offset): \(reason)"
        case .unsupportedEncoding(let offset, let reason):
            return "unsupported certificate encoding at byte \(offset): \(reason)"
        case .invalidName(let offset, let reason):
            return "invalid certificate subject name at byte \(offset): \(reason)"
        case .malformedPEM(let line, let reason):
            return "malformed PEM at line \(line): \(reason)"
        }
    }
}

// MARK: - DER

/// One element read from DER: its tag octet and where its header and contents lie in
/// the buffer it was read from.
struct DERElement: Sendable {
    var tag: UInt8
    var start: Int
    var contentStart: Int
    var end: Int
    var content: Range<Int> { contentStart..<end }
    var whole: Range<Int> { start..<end }
}

/// A bounds-checked reader of DER tag-length-value elements (X.690 §8.1) within a
/// range of a buffer. Only definite lengths and low tag numbers (< 31) are accepted;
/// every length is checked against the bytes that remain, so hostile input throws.
struct DERReader {
    static let integer: UInt8 = 0x02
    static let bitString: UInt8 = 0x03
    static let objectIdentifier: UInt8 = 0x06
    static let sequence: UInt8 = 0x30
    static let set: UInt8 = 0x31

    let bytes: [UInt8]
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8]) { self.init(bytes, bytes.indices) }

    init(_ bytes: [UInt8], _ range: Range<Int>) {
        self.bytes = bytes
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var isAtEnd: Bool { position >= end }

    /// The next element; `what` names it in errors.
    mutating func read(_ what: String = "element") throws -> DERElement {
        let start = position
        guard position < end else {
            throw X509Error.malformedDER(offset: start, reason: "\(what) missing (end of data)")
        }
        let tag = bytes[position]
        if tag & 0x1F == 0x1F {
            throw X509Error.unsupportedEncoding(offset: start, reason: "high tag number form in \(what)")
        }
        position += 1
        guard position < end else {
            throw X509Error.malformedDER(offset: start, reason: "\(what) truncated in its length")
        }
        let first = bytes[position]
        position += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else if first == 0x80 {
            throw X509Error.unsupportedEncoding(offset: start, reason: "indefinite length in \(what)")
        } else {
            let count = Int(first & 0x7F)
            guard count <= 4 else {
                throw X509Error.malformedDER(offset: start, reason: "\(what) length of \(count) octets is too large")
            }
            guard end - position >= count else {
                throw X509Error.malformedDER(offset: start, reason: "\(what) truncated in its length")
            }
            for _ in 0..<count {
                length = length << 8 | Int(bytes[position])
                position += 1
            }
        }
        guard length <= end - position else {
            throw X509Error.malformedDER(offset: start, reason: "\(what) of \(length) bytes runs past the end of its container")
        }
        let element = DERElement(tag: tag, start: start, contentStart: position, end: position + length)
        position += length
        return element
    }

    /// The next element, which must have tag `tag`.
    mutating func read(expecting tag: UInt8, _ what: String) throws -> DERElement {
        let element = try read(what)
        guard element.tag == tag else {
            throw X509Error.malformedDER(offset: element.start, reason: "\(what) has tag 0x\(String(element.tag, radix: 16)), expected 0x\(String(tag, radix: 16))")
        }
        return element
    }
}

enum DER {
    /// A TLV with a minimal (DER) length.
    static func encode(tag: UInt8, content: ArraySlice<UInt8>) -> [UInt8] {
        var output: [UInt8] = [tag]
        let count = content.count
        if count < 0x80 {
            output.append(UInt8(count))
        } else {
            var lengthBytes: [UInt8] = []
            var remaining = count
            while remaining > 0 {
                lengthBytes.insert(UInt8(remaining & 0xFF), at: 0)
                remaining >>= 8
            }
            output.append(0x80 | UInt8(lengthBytes.count))
            output += lengthBytes
        }
        output += content
        return output
    }
}

// MARK: - PEM

/// PEM armour (RFC 7468) as OpenSSL's `PEM_read_bio` reads it: text outside
/// `-----BEGIN label-----` … `-----END label-----` is ignored; the body is base64.
enum PEM {
    struct Block: Sendable {
        var label: String
        var der: [UInt8]
        /// 1-based line of the BEGIN line.
        var line: Int

        /// A block `PEM_X509_INFO_read_bio` reads as a certificate.
        var isCertificate: Bool {
            label == "CERTIFICATE" || label == "X509 CERTIFICATE" || label == "TRUSTED CERTIFICATE"
        }
        /// A block `PEM_X509_INFO_read_bio` reads as a certificate revocation list.
        var isCRL: Bool { label == "X509 CRL" }
    }

    static func blocks(_ text: [UInt8]) throws -> [Block] {
        var blocks: [Block] = []
        var open: (label: [UInt8], line: Int, body: [UInt8])?
        var lineNumber = 0
        for rawLine in text.split(separator: 0x0A, omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            while let last = line.last, last == 0x0D || last == 0x20 || last == 0x09 { line.removeLast() }
            if var current = open {
                if let label = marker(line, "-----END ") {
                    guard label == current.label else {
                        throw X509Error.malformedPEM(line: lineNumber, reason: "END line does not match BEGIN on line \(current.line)")
                    }
                    let der = try base64Decode(current.body, line: current.line)
                    blocks.append(Block(label: String(decoding: label, as: UTF8.self), der: der, line: current.line))
                    open = nil
                } else {
                    current.body += line
                    open = current
                }
            } else if let label = marker(line, "-----BEGIN ") {
                open = (label, lineNumber, [])
            }
        }
        if let current = open {
            throw X509Error.malformedPEM(line: current.line, reason: "no END line for this BEGIN line")
        }
        return blocks
    }

    /// The label of a `<prefix>label-----` line, or nil.
    private static func marker(_ line: ArraySlice<UInt8>, _ prefix: String) -> [UInt8]? {
        let prefixBytes = Array(prefix.utf8)
        let dashes = Array("-----".utf8)
        guard line.count >= prefixBytes.count + dashes.count,
              line.starts(with: prefixBytes),
              line.suffix(dashes.count).elementsEqual(dashes) else { return nil }
        return Array(line.dropFirst(prefixBytes.count).dropLast(dashes.count))
    }

    private static func base64Decode(_ body: [UInt8], line: Int) throws -> [UInt8] {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(body.count)
        var padding = 0
        for byte in body {
            if byte == 0x20 || byte == 0x09 || byte == 0x0D { continue }
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0, let value = base64Value(byte) else {
                throw X509Error.malformedPEM(line: line, reason: "invalid base64 in the block starting here")
            }
            symbols.append(value)
        }
        guard padding <= 2, symbols.count % 4 != 1, (symbols.count + padding) % 4 == 0 || padding == 0 else {
            throw X509Error.malformedPEM(line: line, reason: "base64 of a wrong length in the block starting here")
        }
        var output: [UInt8] = []
        output.reserveCapacity(symbols.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for value in symbols {
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8(truncatingIfNeeded: accumulator >> UInt32(bits)))
            }
        }
        return output
    }

    private static func base64Value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
