/// A content descriptor (image-spec descriptor.md).
public struct Descriptor: Codable, Sendable, Hashable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var urls: [String]?
    public var annotations: [String: String]?
    public var platform: Platform?
    /// The artifact type of the manifest it describes (image-spec 1.1 descriptor.md), as
    /// index.json entries and referrers lists carry it.
    public var artifactType: String?

    public init(mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil, platform: Platform? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.annotations = annotations
        self.platform = platform
    }
}

/// A platform (image-spec image-index.md "platform").
public struct Platform: Codable, Sendable, Hashable, CustomStringConvertible {
    public var architecture: String
    public var os: String
    public var osVersion: String?
    public var osFeatures: [String]?
    public var variant: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }

    /// The host's platform, with GOARCH names as the OCI spec uses.
    public static var host: Platform {
        #if arch(x86_64)
        return Platform(architecture: "amd64", os: "linux")
        #elseif arch(arm64)
        return Platform(architecture: "arm64", os: "linux", variant: "v8")
        #elseif arch(arm)
        return Platform(architecture: "arm", os: "linux", variant: "v7")
        #elseif arch(i386)
        return Platform(architecture: "386", os: "linux")
        #elseif arch(powerpc64le)
        return Platform(architecture: "ppc64le", os: "linux")
        #elseif arch(s390x)
        return Platform(architecture: "s390x", os: "linux")
        #else
        return Platform(architecture: "unknown", os: "linux")
        #endif
    }
}
