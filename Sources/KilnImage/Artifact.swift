import KilnArchive
import KilnOCI

/// An artifact on its way to an OCI layout or a registry (image-spec 1.1 manifest.md,
/// "Guidelines for Artifact Usage"): an image manifest whose `artifactType` says what it
/// is, whose config is the empty descriptor (`application/vnd.oci.empty.v1+json`, `{}`),
/// whose layers are the artifact's files, and whose `subject` is the manifest it
/// describes — how an SBOM or a signature travels with its image.
///
/// Reproducible: the same type, files, names and annotations give the same manifest
/// digest (canonical JSON; no timestamp unless an annotation holds one).
public struct PendingArtifact: Sendable {
    /// One file of the artifact.
    public struct Blob: Sendable {
        public enum Content: Sendable {
            case bytes([UInt8])
            case file(String)
        }
        public var mediaType: String
        public var content: Content
        /// `org.opencontainers.image.title` (the file name, as oras writes it) and any other.
        public var annotations: [String: String]?

        public init(mediaType: String, content: Content, annotations: [String: String]? = nil) {
            self.mediaType = mediaType
            self.content = content
            self.annotations = annotations
        }

        /// A file, titled with its base name.
        public static func file(_ path: String, mediaType: String) -> Blob {
            let name = path.split(separator: "/").last.map(String.init) ?? path
            return Blob(mediaType: mediaType, content: .file(path), annotations: [AnnotationKey.title: name])
        }

        /// Opens the bytes; a missing or unreadable file is one clear line.
        public func open() throws -> ByteReader {
            switch content {
            case .bytes(let b): return BufferReader(b)
            case .file(let p):
                do { return try FileReader(path: p) } catch {
                    throw ImageError.notFound("\(p): cannot read the artifact's file (\(error))")
                }
            }
        }

        /// Its descriptor, hashing the file (synchronous: call it on a thread of its own).
        public func descriptor() throws -> Descriptor {
            let hasher = HashingWriter(NullWriter())
            _ = try open().copy(to: hasher)
            try hasher.finish()
            return Descriptor(mediaType: mediaType, digest: hasher.digest, size: hasher.count, annotations: annotations)
        }
    }

    public var artifactType: String
    public var blobs: [Blob]
    /// The manifest's annotations (what `kiln referrers` and the referrers API show).
    public var annotations: [String: String]?

    public init(artifactType: String, blobs: [Blob], annotations: [String: String]? = nil) {
        self.artifactType = artifactType
        self.blobs = blobs
        self.annotations = annotations?.isEmpty == true ? nil : annotations
    }

    /// The empty JSON object every artifact uses as its config (image-spec manifest.md
    /// "Guidance for an Empty Descriptor").
    public static let emptyConfig: [UInt8] = Array("{}".utf8)
    public static let emptyDescriptor = Descriptor(mediaType: MediaType.ociEmpty, digest: .sha256(emptyConfig), size: 2)

    /// Checks the media types (RFC 6838 `type/subtype`).
    public func validate() throws {
        guard MediaTypeGrammar.isValid(artifactType) else {
            throw ImageError.invalid("artifact type \"\(artifactType)\" is not a media type (type/subtype, as application/spdx+json)")
        }
        for b in blobs where !MediaTypeGrammar.isValid(b.mediaType) {
            throw ImageError.invalid("media type \"\(b.mediaType)\" is not a media type (type/subtype)")
        }
    }

    /// The manifest over `layers` (the blobs' descriptors, in order) referring to `subject`,
    /// and its descriptor as referrers lists give it (with `artifactType` and annotations).
    public func manifest(layers: [Descriptor], subject: Descriptor) throws -> (bytes: [UInt8], descriptor: Descriptor) {
        var m = Manifest(mediaType: MediaType.ociManifest, config: Self.emptyDescriptor,
                         layers: layers.isEmpty ? [Self.emptyDescriptor] : layers, annotations: annotations)
        m.artifactType = artifactType
        m.subject = Descriptor(mediaType: subject.mediaType, digest: subject.digest, size: subject.size)
        let bytes = try CanonicalJSON.encode(m)
        var d = Descriptor(mediaType: MediaType.ociManifest, digest: .sha256(bytes), size: Int64(bytes.count), annotations: annotations)
        d.artifactType = artifactType
        return (bytes, d)
    }
}

/// An artifact manifest ready to store: its bytes, its descriptor as referrers lists give
/// it, its subject, and its blobs (config and layers). Made from a `PendingArtifact`
/// (`referrer(subject:)`), or read from a source to copy it unchanged (`kiln copy --referrers`).
public struct ReferrerManifest: Sendable {
    public struct Part: Sendable {
        public var descriptor: Descriptor
        public var content: PendingArtifact.Blob.Content

        public init(descriptor: Descriptor, content: PendingArtifact.Blob.Content) {
            self.descriptor = descriptor
            self.content = content
        }

        public func open() throws -> ByteReader {
            try PendingArtifact.Blob(mediaType: descriptor.mediaType, content: content).open()
        }
    }

    public var bytes: [UInt8]
    public var descriptor: Descriptor
    public var subject: Descriptor
    public var parts: [Part]

    public init(bytes: [UInt8], descriptor: Descriptor, subject: Descriptor, parts: [Part]) {
        self.bytes = bytes
        self.descriptor = descriptor
        self.subject = subject
        self.parts = parts
    }
}

extension PendingArtifact {
    /// The manifest referring to `subject`, its files hashed (synchronous: call it on a
    /// thread of its own).
    public func referrer(subject: Descriptor) throws -> ReferrerManifest {
        try validate()
        let layers = try blobs.map { try $0.descriptor() }
        let (bytes, descriptor) = try manifest(layers: layers, subject: subject)
        var parts = [ReferrerManifest.Part(descriptor: Self.emptyDescriptor, content: .bytes(Self.emptyConfig))]
        parts += zip(layers, blobs).map { ReferrerManifest.Part(descriptor: $0, content: $1.content) }
        return ReferrerManifest(bytes: bytes, descriptor: descriptor, subject: subject, parts: parts)
    }
}

/// The media type grammar of RFC 6838 §4.2 (`type/subtype`, restricted names), which
/// OCI's `mediaType` and `artifactType` follow.
public enum MediaTypeGrammar {
    public static func isValid(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy(isRestrictedName)
    }

    static func isRestrictedName(_ s: Substring) -> Bool {
        guard let first = s.utf8.first, (1...127).contains(s.utf8.count), isAlphaNum(first) else { return false }
        return s.utf8.allSatisfy { isAlphaNum($0) || "!#$&-^_.+".utf8.contains($0) }
    }

    static func isAlphaNum(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
    }
}

