import AsyncHTTPClient
import KilnOCI
import NIOCore
import NIOHTTP1

/// A manifest or index as a registry serves it.
public struct FetchedManifest: Sendable {
    public var bytes: [UInt8]
    public var mediaType: String
    public var digest: Digest
}

extension RegistryClient {
    /// Every manifest type Kiln reads; the distribution registry refuses a manifest GET
    /// without an Accept header naming its type.
    static let manifestAccept = [MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList]
        .joined(separator: ", ")

    /// Manifests and indexes are small; a larger answer is refused (spec.md suggests 4 MiB).
    static let manifestLimit = 4 << 20

    /// `GET /v2/<name>/manifests/<reference>` (spec.md "Pulling manifests"). The bytes
    /// are checked against the digest when `reference` is one, against `expectedSize`
    /// when given, and against `Docker-Content-Digest` when the registry sends it.
    public func manifest(repository: String, reference: String, expectedSize: Int64? = nil) async throws -> FetchedManifest {
        let what = "manifest \(registry)/\(repository):\(reference)".replacingOccurrences(of: ":sha256:", with: "@sha256:")
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: Self.manifestAccept)
        let (r, bytes) = try await sendCollect(.GET, "/v2/\(repository)/manifests/\(reference)", headers: headers,
                                               scopes: [Self.repositoryScope(repository, push: false)], what: what,
                                               expect: [200], limit: Self.manifestLimit)
        let actual = Digest.sha256(bytes)
        if let pinned = try? Digest(parsing: reference), pinned != actual {
            throw RegistryError.digestMismatch(what: what, expected: pinned, actual: actual)
        }
        if let expectedSize, Int64(bytes.count) != expectedSize {
            throw RegistryError.sizeMismatch(what: what, expected: expectedSize, actual: Int64(bytes.count))
        }
        if let header = r.headers.first(name: "Docker-Content-Digest"), let claimed = try? Digest(parsing: header),
           claimed.algorithm == "sha256", claimed != actual {
            throw RegistryError.digestMismatch(what: what, expected: claimed, actual: actual)
        }
        var type = r.headers.first(name: "Content-Type")?.split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        if let embedded = Self.embeddedMediaType(bytes) { type = embedded }
        return FetchedManifest(bytes: bytes, mediaType: type, digest: actual)
    }

    /// The document's own `mediaType` field, which wins over a generic Content-Type.
    static func embeddedMediaType(_ bytes: [UInt8]) -> String? {
        struct M: Decodable { var mediaType: String?; var manifests: [Descriptor]?; var config: Descriptor? }
        guard let m = try? CanonicalJSON.decode(M.self, from: bytes, what: "manifest") else { return nil }
        if let t = m.mediaType { return t }
        if m.manifests != nil { return MediaType.ociIndex }
        if m.config != nil { return MediaType.ociManifest }
        return nil
    }

    /// `PUT /v2/<name>/manifests/<reference>` with the document's media type
    /// (spec.md "Pushing Manifests"); checks the `Docker-Content-Digest` the registry returns.
    @discardableResult
    public func putManifest(repository: String, reference: String, bytes: [UInt8], mediaType: String) async throws -> Digest {
        try await putManifestWithSubject(repository: repository, reference: reference, bytes: bytes, mediaType: mediaType).digest
    }

    /// `HEAD /v2/<name>/manifests/<reference>`: the digest if the manifest exists.
    public func manifestDigest(repository: String, reference: String) async throws -> Digest? {
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: Self.manifestAccept)
        let what = "manifest \(registry)/\(repository):\(reference)"
        let r = try await send(.HEAD, "/v2/\(repository)/manifests/\(reference)", headers: headers,
                               scopes: [Self.repositoryScope(repository, push: false)], what: what)
        await drain(r)
        if r.status.code == 404 { return nil }
        guard r.status.code == 200 else { throw RegistryError.http(status: Int(r.status.code), what: what, detail: "") }
        return r.headers.first(name: "Docker-Content-Digest").flatMap { try? Digest(parsing: $0) }
    }
}
