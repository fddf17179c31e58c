#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnImage
import KilnOCI

/// The image a spec builds on (`fromImage`). Its layers are reused as they are stored;
/// its root file system is only flattened when something needs to look inside it
/// (`users`/`groups` merged into its account files, `runAsRoot`).
public final class BaseImage {
    public let reference: String
    public let image: SourceImage
    private let staging: Staging
    private var flattened: Rootfs?

    /// Limits for decompressing the base's layers (`--max-layer-size`).
    public let limits: RootfsLimits

    public init(reference: String, image: SourceImage, staging: Staging, limits: RootfsLimits = RootfsLimits()) {
        self.reference = reference
        self.image = image
        self.staging = staging
        self.limits = limits
    }

    /// Reads the base image named by the spec. `fromImageName`/`fromImageTag` choose
    /// among the images of a docker-archive (by `RepoTags`) or, for an OCI layout, the
    /// tag (`org.opencontainers.image.ref.name`).
    public static func load(spec: Spec, staging: Staging, limits: RootfsLimits = RootfsLimits()) throws -> BaseImage? {
        guard let from = spec.fromImage else { return nil }
        let location = spec.keyLocations["fromImage"].map { "\($0): " } ?? ""
        if try registryReference(of: spec) != nil {
            throw BuildError("\(location)fromImage: \(from): a registry base is opened by the command line and handed over as ImageBuilder.base")
        }
        do {
            let ref = try ImageReference(parsing: from)
            let source: any ImageSource
            switch ref {
            case .dockerArchive(let path, let reference):
                var name = spec.fromImageName, tag = spec.fromImageTag
                if name == nil, tag == nil, let reference {
                    (name, tag) = DockerArchiveSource.split(reference)
                }
                source = try DockerArchiveSource(path: path, name: name, tag: tag, maxDecompressedSize: limits.maxLayerSize)
            case .oci(let path, let tag):
                // An index in the layout gives the manifest of the platform being built.
                let t = spec.fromImageTag != nil || spec.fromImageName != nil ? try ociTag(spec, tag) : tag
                source = try layoutSource(DirectoryBlobs(root: path), tag: t, spec: spec,
                                          what: ImageReference.oci(path: path, tag: t).description)
            case .ociArchive(let path, let tag):
                let t = spec.fromImageTag != nil || spec.fromImageName != nil ? try ociTag(spec, tag) : tag
                source = try layoutSource(try TarIndex(path: path), tag: t, spec: spec,
                                          what: ImageReference.ociArchive(path: path, tag: t).description)
            }
            return BaseImage(reference: from, image: try source.image(), staging: staging, limits: limits)
        } catch let e as BuildError {
            throw BuildError("\(location)fromImage: \(e.message)")
        } catch {
            throw BuildError("\(location)fromImage: \(from): \(error)")
        }
    }

    /// The spec's `fromImage` when it names a registry image (`docker://`), else nil.
    /// KilnBuild does not talk to registries: the command line opens such a base and
    /// hands it over as `ImageBuilder.base`. `fromImageName`/`fromImageTag` are refused
    /// here as for every reference that is not an archive or layout.
    public static func registryReference(of spec: Spec) throws -> String? {
        guard let from = spec.fromImage, BaseReference.isRegistry(from) else { return nil }
        if spec.fromImageName != nil || spec.fromImageTag != nil {
            throw BuildError("\(spec.keyLocations["fromImage"].map { "\($0): " } ?? "")fromImage: \(chooserMisuse)")
        }
        return from
    }

    static let chooserMisuse = "fromImageName and fromImageTag only choose among the images of an archive or layout; put the name and tag in the reference"

    /// An OCI layout's image `tag`, for the spec's platform when the layout holds an index.
    private static func layoutSource(_ files: any LayoutFiles, tag: String?, spec: Spec, what: String) throws -> any ImageSource {
        if let manifest = try platformManifest(files, tag: tag, platform: wantedPlatform(spec), what: what) {
            return OCILayoutSource(blobs: files, tag: tag, what: what, manifest: manifest)
        }
        return OCILayoutSource(blobs: files, tag: tag, what: what)
    }

    /// The tag to pick in an OCI layout: `fromImageTag`, else the reference's own; a
    /// `fromImageName` is matched as `NAME:TAG` ref names, as some tools write them.
    private static func ociTag(_ spec: Spec, _ own: String?) throws -> String? {
        let tag = spec.fromImageTag ?? own
        if let name = spec.fromImageName { return "\(name):\(tag ?? "latest")" }
        return tag
    }

    /// The base's root file system, flattened once (bodies spooled in the staging area).
    public func rootfs() throws -> Rootfs {
        if let flattened { return flattened }
        let fs = try Rootfs(spoolDirectory: staging.newPath("base-rootfs"), limits: limits)
        for (i, layer) in image.layers.enumerated() {
            try fs.apply(layer, what: "\(reference): layer \(i + 1) of \(image.layers.count) (\(layer.descriptor.digest))")
        }
        flattened = fs
        return fs
    }
}

extension ImageConfig {
    /// The config of an image built on `base`: every field of the base is inherited
    /// unless the spec sets it. `Env` is merged by variable name (the spec's value
    /// replaces the base's in place, new variables come after) and `Labels` key by key.
    /// The platform comes from the base unless the spec names one. History is the
    /// base's (padded to one entry per base layer) followed by `newHistory`; `rootfs`
    /// is left for the sink, which lists every layer's diffID.
    public static func inherited(from base: ImageConfig, spec: Spec, created: String, newHistory: [History]) -> ImageConfig {
        var c = base
        c.created = created
        if let arch = spec.architecture {
            c.architecture = arch
            c.variant = spec.variant
        } else if let v = spec.variant {
            c.variant = v
        }
        if spec.keyLocations["os"] != nil { c.os = spec.os }
        c.config = ContainerConfig.merged(base.config ?? ContainerConfig(), spec.config)

        var history = base.history ?? []
        let nonEmpty = history.filter { $0.empty_layer != true }.count
        for _ in nonEmpty..<max(nonEmpty, base.rootfs.diff_ids.count) {
            history.append(History(created: base.created, comment: "base layer"))
        }
        c.history = history + newHistory
        c.rootfs = RootFS(diffIDs: [])
        return c
    }
}

extension ContainerConfig {
    /// `base` with every field `spec` sets replaced; `Env` and `Labels` merged.
    public static func merged(_ base: ContainerConfig, _ spec: ContainerConfig) -> ContainerConfig {
        var c = base
        if let v = spec.User { c.User = v }
        if let v = spec.ExposedPorts { c.ExposedPorts = v }
        if let v = spec.Env { c.Env = mergeEnv(base.Env ?? [], v) }
        if let v = spec.Entrypoint { c.Entrypoint = v }
        if let v = spec.Cmd { c.Cmd = v }
        if let v = spec.Volumes { c.Volumes = v }
        if let v = spec.WorkingDir { c.WorkingDir = v }
        if let v = spec.Labels { c.Labels = (base.Labels ?? [:]).merging(v) { _, new in new } }
        if let v = spec.StopSignal { c.StopSignal = v }
        if let v = spec.ArgsEscaped { c.ArgsEscaped = v }
        if let v = spec.Healthcheck { c.Healthcheck = v }
        if let v = spec.OnBuild { c.OnBuild = v }
        if let v = spec.Shell { c.Shell = v }
        return c
    }

    /// `NAME=VALUE` lists merged by name: base order, the spec's values winning, the
    /// spec's new names appended in its order.
    public static func mergeEnv(_ base: [String], _ spec: [String]) -> [String] {
        func name(_ s: String) -> Substring { s.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] }
        var specByName: [Substring: String] = [:]
        for s in spec { specByName[name(s)] = s }
        var out: [String] = []
        var used = Set<Substring>()
        for b in base {
            let n = name(b)
            if used.contains(n) { continue }
            used.insert(n)
            out.append(specByName[n] ?? b)
        }
        for s in spec where !used.contains(name(s)) {
            used.insert(name(s))
            out.append(specByName[name(s)]!)
        }
        return out
    }
}

/// `fromImage` references as written in a spec.
public enum BaseReference {
    /// Checks the reference and makes a local transport's relative path absolute
    /// (relative to the spec's directory, like content paths).
    public static func resolve(_ s: String, relativeTo directory: String) throws -> String {
        // Registry references are checked by the command line when it opens them.
        if isRegistry(s) { return s }
        let ref = try ImageReference(parsing: s)
        func absolute(_ p: String) -> String { p.hasPrefix("/") ? p : SpecPaths.clean(directory + "/" + p) }
        switch ref {
        case .dockerArchive(let p, let r): return ImageReference.dockerArchive(path: absolute(p), reference: r).description
        case .oci(let p, let t): return ImageReference.oci(path: absolute(p), tag: t).description
        case .ociArchive(let p, let t): return ImageReference.ociArchive(path: absolute(p), tag: t).description
        @unknown default: return s
        }
    }
}

extension BaseReference {
    /// Whether `s` names an image in a registry (`docker://HOST/REPO[:TAG][@DIGEST]`,
    /// skopeo's docker transport) rather than a local archive or layout.
    public static func isRegistry(_ s: String) -> Bool { s.hasPrefix("docker:") }
}
