/// The image configuration (image-spec config.md), field for field.
public struct ImageConfig: Codable, Sendable, Hashable {
    public var created: String?
    public var author: String?
    public var architecture: String
    public var os: String
    public var osVersion: String?
    public var osFeatures: [String]?
    public var variant: String?
    public var config: ContainerConfig?
    public var rootfs: RootFS
    public var history: [History]?

    enum CodingKeys: String, CodingKey {
        case created, author, architecture, os, variant, config, rootfs, history
        case osVersion = "os.version"
        case osFeatures = "os.features"
    }

    public init(architecture: String, os: String, variant: String? = nil, created: String? = nil,
                config: ContainerConfig? = nil, rootfs: RootFS, history: [History]? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.created = created
        self.config = config
        self.rootfs = rootfs
        self.history = history
    }

    public var platform: Platform {
        var p = Platform(architecture: architecture, os: os, variant: variant)
        p.osVersion = osVersion
        p.osFeatures = osFeatures
        return p
    }
}

/// The execution parameters of config.md's `config` object (Docker names).
public struct ContainerConfig: Codable, Sendable, Hashable {
    public var User: String?
    public var ExposedPorts: [String: EmptyObject]?
    public var Env: [String]?
    public var Entrypoint: [String]?
    public var Cmd: [String]?
    public var Volumes: [String: EmptyObject]?
    public var WorkingDir: String?
    public var Labels: [String: String]?
    public var StopSignal: String?
    public var ArgsEscaped: Bool?
    public var Healthcheck: Healthcheck?
    public var OnBuild: [String]?
    public var Shell: [String]?

    public init() {}
}

/// Docker's HEALTHCHECK settings; durations are nanoseconds.
public struct Healthcheck: Codable, Sendable, Hashable {
    public var Test: [String]?
    public var Interval: Int64?
    public var Timeout: Int64?
    public var StartPeriod: Int64?
    public var StartInterval: Int64?
    public var Retries: Int?
    public init() {}
}

/// `{}` as used by ExposedPorts and Volumes.
public struct EmptyObject: Codable, Sendable, Hashable {
    public init() {}
}

public struct RootFS: Codable, Sendable, Hashable {
    public var type: String = "layers"
    public var diff_ids: [Digest]
    public init(diffIDs: [Digest]) { self.diff_ids = diffIDs }
}

public struct History: Codable, Sendable, Hashable {
    public var created: String?
    public var created_by: String?
    public var author: String?
    public var comment: String?
    public var empty_layer: Bool?
    public init(created: String? = nil, createdBy: String? = nil, comment: String? = nil, emptyLayer: Bool? = nil) {
        self.created = created
        self.created_by = createdBy
        self.comment = comment
        self.empty_layer = emptyLayer
    }
}
