/// An image location in skopeo's transport syntax (containers-transports(5)).
public enum ImageReference: Sendable, Equatable, CustomStringConvertible {
    /// `docker-archive:PATH[:NAME[:TAG]]` (the name only matters when writing)
    case dockerArchive(path: String, reference: String? = nil)
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
            if let c = rest.firstIndex(of: ":") {
                let ref = String(rest[rest.index(after: c)...])
                self = .dockerArchive(path: String(rest[..<c]), reference: ref.isEmpty ? nil : ref)
            } else {
                self = .dockerArchive(path: rest)
            }
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

    /// The sink that writes this reference.
    /// - Parameter maxLayerSize: the most bytes a layer may decompress to where the
    ///   format stores plain tars (docker-archive).
    public func sink(maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize) throws -> any ImageSink {
        switch self {
        case .dockerArchive(let p, _):
            var sink = try DockerArchiveSink(path: p)
            sink.maxLayerSize = maxLayerSize
            return sink
        case .oci(let p, _): return OCISink(store: try DirectoryStore(path: p))
        case .ociArchive(let p, _): return OCISink(store: try TarStore(path: p))
        }
    }

    /// The name and tag this reference gives an image it writes, if any.
    public var destinationName: (name: String?, tag: String?) {
        switch self {
        case .dockerArchive(_, let r?):
            if let c = r.lastIndex(of: ":"), !r[r.index(after: c)...].contains("/") {
                return (String(r[..<c]), String(r[r.index(after: c)...]))
            }
            return (r, "latest")
        case .oci(_, let t), .ociArchive(_, let t): return (nil, t)
        default: return (nil, nil)
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
        case .dockerArchive(let p, let r): return "docker-archive:\(p)" + (r.map { ":\($0)" } ?? "")
        case .oci(let p, let t): return "oci:\(p)" + (t.map { ":\($0)" } ?? "")
        case .ociArchive(let p, let t): return "oci-archive:\(p)" + (t.map { ":\($0)" } ?? "")
        }
    }

    /// The source that reads this reference.
    /// - Parameter maxLayerSize: for a docker-archive compressed as a whole, the most
    ///   bytes it may decompress to.
    public func source(maxLayerSize: Int64 = RootfsLimits.defaultMaxLayerSize) throws -> any ImageSource {
        switch self {
        case .dockerArchive(let p, let r):
            // docker-archive:PATH:NAME:TAG picks that image among several, as skopeo does.
            let (name, tag) = r.map { DockerArchiveSource.split($0) } ?? (nil, nil)
            return try DockerArchiveSource(path: p, name: name, tag: tag, maxDecompressedSize: maxLayerSize)
        case .oci(let p, let t): return OCILayoutSource(blobs: DirectoryBlobs(root: p), tag: t, what: description)
        case .ociArchive(let p, let t): return OCILayoutSource(blobs: try TarIndex(path: p), tag: t, what: description)
        }
    }
}
