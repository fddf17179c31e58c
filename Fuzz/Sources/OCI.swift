import KilnOCI
@testable import KilnImage
import KilnRegistry

enum FuzzOCI {
    /// The first byte picks the document; the rest is its JSON. A document that decodes
    /// must survive Kiln's canonical encoding and decode to the same value (what Kiln
    /// writes and hashes must say what it read).
    static func documents(_ data: [UInt8]) {
        guard let kind = data.first else { return }
        let json = Array(data.dropFirst())
        switch kind % 6 {
        case 0:
            guard let m = try? CanonicalJSON.decode(Manifest.self, from: json, what: "fuzz") else { return }
            roundTrip(m)
        case 1:
            guard let i = try? CanonicalJSON.decode(Index.self, from: json, what: "fuzz") else { return }
            roundTrip(i)
        case 2:
            guard let c = try? CanonicalJSON.decode(ImageConfig.self, from: json, what: "fuzz") else { return }
            _ = Digest.chainIDs(c.rootfs.diff_ids)
            roundTrip(c)
        case 3:
            // docker-archive's manifest.json.
            guard let entries = try? CanonicalJSON.decode([DockerArchiveManifestEntry].self, from: json, what: "fuzz") else { return }
            _ = entries.flatMap { $0.RepoTags ?? [] }.map(DockerArchiveSource.split)
        case 4:
            // An index, then the platform choice a pull makes from it.
            guard let i = try? CanonicalJSON.decode(Index.self, from: json, what: "fuzz") else { return }
            _ = try? PlatformSelection.select(from: i, platform: Platform(architecture: "amd64", os: "linux"), what: "fuzz")
            _ = try? PlatformSelection.select(from: i, platform: Platform(architecture: "arm", os: "linux", variant: "v7"), what: "fuzz")
        default:
            // References and digests as users and registries write them.
            let text = String(decoding: json, as: UTF8.self)
            _ = try? CanonicalJSON.canonical(json)
            _ = try? Digest(parsing: text)
            _ = try? RegistryReference(parsing: text)
            _ = try? ImageReference(parsing: text)
            _ = try? PlatformSelection.parse(text)
        }
    }

    static func roundTrip<T: Codable & Equatable>(_ value: T) {
        guard let bytes = try? CanonicalJSON.encode(value) else { return }
        guard let again = try? CanonicalJSON.decode(T.self, from: bytes, what: "re-encoded") else {
            fatalError("canonical encoding of a decoded \(T.self) does not decode: \(String(decoding: bytes, as: UTF8.self))")
        }
        precondition(again == value, "canonical encoding of a decoded \(T.self) changed it: \(String(decoding: bytes, as: UTF8.self))")
    }
}
