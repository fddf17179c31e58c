import KilnImage
import KilnOCI

/// Any image location the CLI accepts, in skopeo's transport syntax: the local
/// transports of `ImageReference` (docker-archive:, oci:, oci-archive:) and
/// `docker://` registries. KilnImage knows nothing of registries; this is where the
/// transports meet, so every command that names an image goes through here.
public enum ImageLocation: Sendable, CustomStringConvertible {
    case local(ImageReference)
    case registry(RegistryReference)

    public init(parsing s: String) throws {
        if s.hasPrefix("docker:") {
            self = .registry(try RegistryReference(parsing: s))
            return
        }
        do {
            self = .local(try ImageReference(parsing: s))
        } catch {
            if !s.contains(":") || s.hasPrefix("docker") {
                throw ImageError.invalid("\"\(s)\" names no transport: use docker://HOST/REPO[:TAG], docker-archive:PATH, oci:DIR[:TAG] or oci-archive:PATH[:TAG]")
            }
            let transport = s.prefix { $0 != ":" }
            if !["docker-archive", "oci", "oci-archive"].contains(String(transport)) {
                throw ImageError.invalid("unknown transport \"\(transport)\" in \"\(s)\" (supported: docker, docker-archive, oci, oci-archive)")
            }
            throw error
        }
    }

    public func source(options: RegistryOptions, platform: Platform = .host) throws -> any ImageSource {
        switch self {
        case .local(let r): return try r.source()
        case .registry(let r): return try RegistrySource(reference: r, options: options, platform: platform)
        }
    }

    public func sink(options: RegistryOptions) throws -> any ImageSink {
        switch self {
        case .local(let r): return try r.sink()
        case .registry(let r):
            guard r.digest == nil || r.tag == nil else {
                throw RegistryError.invalidReference(r.description, reason: "a destination takes a tag or a digest, not both")
            }
            return try RegistrySink(reference: r, options: options)
        }
    }

    /// The name and tag this location gives an image written to it.
    public var destinationName: (name: String?, tag: String?) {
        switch self {
        case .local(let r): return r.destinationName
        case .registry(let r): return (r.name, r.tag)
        }
    }

    public var description: String {
        switch self {
        case .local(let r): return r.description
        case .registry(let r): return r.description
        }
    }
}
