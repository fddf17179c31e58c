/// An image location in skopeo's transport syntax (containers-transports(5)).
public enum ImageReference: Sendable, Equatable, CustomStringConvertible {
    /// `docker-archive:PATH`
    case dockerArchive(path: String)
    /// `oci:DIR[:TAG]`
    case oci(path: String, tag: String?)
    /// `oci-archive:PATH[:TAG]`
    case ociArchive(path: String, tag: String?)

    public init(parsing s: String) throws {
        guard let colon = s.firstIndex(of: ":") else {
            throw ImageError.invalid("\"\(s)\" names no transport: use docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH[:TAG]")
        }
        let transport = s[..<colon]
        let rest = String(s[s.index(after: colon)...])
        guard !rest.isEmpty else { throw ImageError.invalid("\"\(s)\": missing path after \"\(transport):\"") }
        switch transport {
        case "docker-archive":
            self = .dockerArchive(path: rest)
        case "oci":
            let (p, t) = ImageReference.splitTag(rest)
            self = .oci(path: p, tag: t)
        case "oci-archive":
            let (p, t) = ImageReference.splitTag(rest)
            self = .ociArchive(path: p, tag: t)
        default:
            throw ImageError.invalid("unknown transport \"\(transport)\" in \"\(s)\" (supported: docker-archive, oci, oci-archive)")
        }
    }

    /// `PATH:TAG` splits at the last colon whose right side holds no `/`.
    static func splitTag(_ s: String) -> (String, String?) {
        guard let c = s.lastIndex(of: ":") else { return (s, nil) }
        let tag = s[s.index(after: c)...]
        if tag.contains("/") || c == s.startIndex { return (s, nil) }
        return (String(s[..<c]), tag.isEmpty ? nil : String(tag))
    }

    public var description: String {
        switch self {
        case .dockerArchive(let p): return "docker-archive:\(p)"
        case .oci(let p, let t): return "oci:\(p)" + (t.map { ":\($0)" } ?? "")
        case .ociArchive(let p, let t): return "oci-archive:\(p)" + (t.map { ":\($0)" } ?? "")
        }
    }

    /// The source that reads this reference.
    public func source() throws -> any ImageSource {
        switch self {
        case .dockerArchive(let p): return try DockerArchiveSource(path: p)
        case .oci(let p, let t): return OCILayoutSource(blobs: DirectoryBlobs(root: p), tag: t, what: description)
        case .ociArchive(let p, let t): return OCILayoutSource(blobs: try TarIndex(path: p), tag: t, what: description)
        }
    }
}
