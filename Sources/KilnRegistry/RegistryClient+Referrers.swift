import Foundation
import AsyncHTTPClient
import KilnOCI
import NIOCore
import NIOHTTP1

extension RegistryClient {
    /// `GET /v2/<name>/referrers/<digest>[?artifactType=…]` (distribution-spec 1.1
    /// "Listing Referrers"): the image index of the manifests whose `subject` is
    /// `digest`, or nil when the registry does not answer the API (404 or 405: then the
    /// referrers tag schema applies). A registry that ignored the filter (no
    /// `OCI-Filters-Applied: artifactType`) is filtered here.
    public func referrers(repository: String, subject digest: Digest, artifactType: String? = nil) async throws -> [Descriptor]? {
        let what = "referrers of \(registry)/\(repository)@\(digest)"
        var path = "/v2/\(repository)/referrers/\(digest)"
        if let artifactType {
            path += "?artifactType=" + (artifactType.addingPercentEncoding(withAllowedCharacters: Self.queryValueAllowed) ?? artifactType)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Accept", value: MediaType.ociIndex)
        let r = try await send(.GET, path, headers: headers, scopes: [Self.repositoryScope(repository, push: false)], what: what)
        let bytes = try await collect(r, limit: Self.manifestLimit, what: what)
        let status = Int(r.status.code)
        if status == 404 || status == 405 { return nil }
        guard status == 200 else { throw Self.httpError(status: status, body: bytes, what: what) }
        // A registry without the API may answer 200 with something else (an HTML page):
        // only an image index counts as an answer.
        guard let index = try? CanonicalJSON.decode(Index.self, from: bytes, what: what) else { return nil }
        return index.manifests.filter { artifactType == nil || $0.artifactType == artifactType }
    }

    /// Unreserved characters (RFC 3986 §2.3): `+` and `/` in a media type are escaped.
    static let queryValueAllowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    /// The tag of the referrers tag schema (distribution-spec 1.1 "Referrers Tag Schema"):
    /// `<alg>-<ref>`, the algorithm cut to 32 characters and the hex to 64: for sha256,
    /// `sha256-<hex>`.
    public static func referrersTag(_ digest: Digest) -> String {
        "\(digest.algorithm.prefix(32))-\(digest.hex.prefix(64))"
    }

    /// The manifest at `reference`, or nil when there is none (404).
    public func manifestIfPresent(repository: String, reference: String) async throws -> FetchedManifest? {
        do {
            return try await manifest(repository: repository, reference: reference)
        } catch RegistryError.notFound {
            return nil
        }
    }

    /// `PUT` of a manifest, telling whether the registry processed its `subject`
    /// (`OCI-Subject` header, distribution-spec 1.1 "Pushing Manifests with Subject"):
    /// if not, the client maintains the referrers tag itself.
    public func putManifestWithSubject(repository: String, reference: String, bytes: [UInt8],
                                       mediaType: String) async throws -> (digest: Digest, subjectProcessed: Bool) {
        let what = "manifest \(registry)/\(repository):\(reference)"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: mediaType)
        let digest = Digest.sha256(bytes)
        let (r, _) = try await sendCollect(.PUT, "/v2/\(repository)/manifests/\(reference)", headers: headers,
                                           body: { .bytes(ByteBuffer(bytes: bytes)) },
                                           scopes: [Self.repositoryScope(repository, push: true)], what: what, expect: [200, 201])
        if let header = r.headers.first(name: "Docker-Content-Digest") {
            guard let claimed = try? Digest(parsing: header), claimed == digest else {
                throw RegistryError.protocolViolation("\(what): the registry stored digest \(header), but the manifest's is \(digest)")
            }
        }
        return (digest, r.headers.first(name: "OCI-Subject") != nil)
    }

    /// `PUT` of the referrers tag's index with `If-Match: "<digest it was read at>"` (or
    /// `If-None-Match: *` when there was none), so a registry that honours conditional
    /// requests refuses a lost update with 412; returns false then.
    func putReferrersIndex(repository: String, tag: String, bytes: [UInt8], readAt: Digest?) async throws -> Bool {
        let what = "referrers tag \(registry)/\(repository):\(tag)"
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: MediaType.ociIndex)
        if let readAt { headers.add(name: "If-Match", value: "\"\(readAt)\"") } else { headers.add(name: "If-None-Match", value: "*") }
        let r = try await send(.PUT, "/v2/\(repository)/manifests/\(tag)", headers: headers,
                               body: { .bytes(ByteBuffer(bytes: bytes)) },
                               scopes: [Self.repositoryScope(repository, push: true)], what: what)
        let body = try await collect(r, limit: 1 << 20, what: what)
        let status = Int(r.status.code)
        if status == 412 { return false }
        guard status == 200 || status == 201 else { throw Self.httpError(status: status, body: body, what: what) }
        return true
    }

    /// Adds `referrer` to the referrers tag of `subject` (the fallback for registries
    /// without the referrers API): read the tag's index (none: an empty one), add the
    /// descriptor unless it is there, put it back conditionally, then read it again, now
    /// and once more after `settle` seconds. Whenever the put is refused (412) or an index
    /// read back lacks `referrer` (another client, having read the index before our put,
    /// replaced it), start over from the index as it is, up to 8 times. A registry that
    /// ignores conditional requests (distribution 2.8) lets two clients read the same
    /// index and each put its own addition; the later put wins, and the client it
    /// overwrote sees its artifact missing on the delayed read and adds it again. An
    /// overwrite landing more than `settle` after our put (a writer whose read and put
    /// are that far apart) is not seen.
    public func addToReferrersTag(repository: String, subject: Digest, referrer: Descriptor, settle: Double = 0.2) async throws {
        let tag = Self.referrersTag(subject)
        func listed(_ m: FetchedManifest?) -> Bool {
            guard let m, let i = try? CanonicalJSON.decode(Index.self, from: m.bytes, what: tag) else { return false }
            return i.manifests.contains { $0.digest == referrer.digest }
        }
        for _ in 0..<8 {
            let current = try await manifestIfPresent(repository: repository, reference: tag)
            var index = Index(mediaType: MediaType.ociIndex, manifests: [])
            if let current {
                guard current.mediaType == MediaType.ociIndex else {
                    throw RegistryError.unsupported("\(registry)/\(repository):\(tag) is a \(current.mediaType), not the referrers index the tag schema expects")
                }
                index = try CanonicalJSON.decode(Index.self, from: current.bytes, what: "\(registry)/\(repository):\(tag)")
            }
            if index.manifests.contains(where: { $0.digest == referrer.digest }) { return }
            index.manifests.append(referrer)
            let bytes = try CanonicalJSON.encode(index)
            guard try await putReferrersIndex(repository: repository, tag: tag, bytes: bytes, readAt: current?.digest) else { continue }
            guard listed(try await manifestIfPresent(repository: repository, reference: tag)) else { continue }
            try await Task.sleep(nanoseconds: UInt64(settle * 1e9))
            if listed(try await manifestIfPresent(repository: repository, reference: tag)) { return }
        }
        throw RegistryError.transport("\(registry)/\(repository):\(tag): the referrers index kept changing under concurrent writers; try again")
    }

    /// What refers to `subject`: the referrers API if the registry answers it, else the
    /// referrers tag schema's index (none: nothing refers to it).
    public func listReferrers(repository: String, subject: Digest, artifactType: String? = nil) async throws -> [Descriptor] {
        if let listed = try await referrers(repository: repository, subject: subject, artifactType: artifactType) { return listed }
        guard let tagged = try await manifestIfPresent(repository: repository, reference: Self.referrersTag(subject)) else { return [] }
        let index = try CanonicalJSON.decode(Index.self, from: tagged.bytes, what: "\(registry)/\(repository):\(Self.referrersTag(subject))")
        return index.manifests.filter { artifactType == nil || $0.artifactType == artifactType }
    }
}
