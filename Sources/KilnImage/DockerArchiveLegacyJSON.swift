import KilnOCI

/// One layer's `<id>/json` in a docker-archive: the v1 image JSON of Docker's pre-1.10
/// layout (image/spec/v1.md). The seed writes it as its `baseJson`
/// (`created`, `architecture`, `os`, `config`) with jshon adding `checksum` (the
/// layer's tarsum), `parent` (the layer below), `id` and `Size` (the bytes of
/// `layer.tar`, `stat --printf=%s`).
///
/// Docker's legacy loader (used when `manifest.json` is missing) makes each layer an
/// image whose config is that layer's JSON minus `id`, `parent` and `Size`, so the
/// top layer must carry the image's v1 fields or the image loads with no command.
/// Lower layers carry `os` too, as `docker save` writes them: the loader checks it.
struct LegacyLayerJSON: Encodable, Sendable {
    var id: String
    var parent: String?
    var created: String?
    var checksum: String
    var Size: Int64
    var os: String
    var architecture: String?
    var variant: String?
    var author: String?
    var config: ContainerConfig?

    init(id: String, parent: String?, checksum: String, size: Int64, image: ImageConfig) {
        self.id = id
        self.parent = parent
        self.created = image.created
        self.checksum = checksum
        self.Size = size
        self.os = image.os
    }

    /// Whether the image's v1 fields are already here.
    var isTop: Bool { architecture != nil }

    /// Adds the image's own fields, for the layer an image's tag points at.
    mutating func makeTop(of image: ImageConfig) {
        architecture = image.architecture
        variant = image.variant
        author = image.author
        config = image.config
    }
}

/// The `<id>/json` documents of an archive, in the order their layers were written.
struct LegacyLayers {
    private(set) var order: [String] = []
    private(set) var documents: [String: LegacyLayerJSON] = [:]

    mutating func add(_ document: LegacyLayerJSON) {
        if documents[document.id] == nil { order.append(document.id) }
        documents[document.id] = document
    }

    /// Makes `id` the top of `image`. A layer id is its ChainID, so two images with the
    /// same layers and different configs share one JSON: the first image's fields win
    /// (their `manifest.json` entries keep their own configs).
    mutating func setTop(_ id: String, image: ImageConfig) {
        guard var document = documents[id], !document.isTop else { return }
        document.makeTop(of: image)
        documents[id] = document
    }
}
