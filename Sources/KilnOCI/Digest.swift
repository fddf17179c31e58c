import Crypto
import Foundation

/// A content digest, `algorithm:hex` (OCI image-spec, descriptor.md "Digests").
/// Only sha256 is produced; sha512 is accepted when parsing.
public struct Digest: Hashable, Sendable, Codable, CustomStringConvertible, Comparable {
    public let algorithm: String
    public let hex: String

    public init(algorithm: String = "sha256", hex: String) {
        self.algorithm = algorithm
        self.hex = hex
    }

    /// Parses `sha256:<64 lowercase hex>`; anything else is an error.
    public init(parsing string: String) throws {
        guard let colon = string.firstIndex(of: ":") else { throw OCIError.invalidDigest(string) }
        let algo = String(string[..<colon])
        let hex = String(string[string.index(after: colon)...])
        let expected: Int
        switch algo {
        case "sha256": expected = 64
        case "sha512": expected = 128
        default: throw OCIError.invalidDigest(string)
        }
        guard hex.count == expected, hex.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else {
            throw OCIError.invalidDigest(string)
        }
        self.init(algorithm: algo, hex: hex)
    }

    public var description: String { "\(algorithm):\(hex)" }

    public static func < (a: Digest, b: Digest) -> Bool { a.description < b.description }

    /// The sha256 digest of `bytes`.
    public static func sha256<D: DataProtocol>(_ bytes: D) -> Digest {
        var h = SHA256Hasher()
        h.update(bytes)
        return h.finalize()
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        try self.init(parsing: s)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// Incremental SHA-256, for hashing streams as they pass through.
public struct SHA256Hasher: Sendable {
    private var inner = SHA256()
    public private(set) var count: Int64 = 0

    public init() {}

    public mutating func update<D: DataProtocol>(_ bytes: D) {
        inner.update(data: bytes)
        count += Int64(bytes.count)
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) {
        inner.update(bufferPointer: buffer)
        count += Int64(buffer.count)
    }

    public func finalize() -> Digest {
        Digest(hex: inner.finalize().hexString)
    }
}

extension Sequence where Element == UInt8 {
    public var hexString: String {
        let table: [Character] = Array("0123456789abcdef")
        var s = ""
        for b in self {
            s.append(table[Int(b >> 4)])
            s.append(table[Int(b & 0xF)])
        }
        return s
    }
}

extension Digest {
    /// ChainID (image-spec config.md "Layer ChainID"): ChainID(L0) = DiffID(L0),
    /// ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln)).
    public static func chainIDs(_ diffIDs: [Digest]) -> [Digest] {
        var out: [Digest] = []
        for d in diffIDs {
            if let last = out.last {
                out.append(.sha256(Array("\(last) \(d)".utf8)))
            } else {
                out.append(d)
            }
        }
        return out
    }
}
