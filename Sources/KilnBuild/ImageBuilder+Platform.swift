#if canImport(Glibc)
import Glibc
#endif
import KilnOCI

/// Where a content item's files come from when the spec builds for a platform of its
/// `platforms` (`Spec.buildPlatform`): for `closure:` items, and `source:` items outside
/// the spec's directory, the platform's sysroot when it has one, where the path as
/// written is taken (a closure's interpreter and libraries are found inside it too,
/// through its own `ld.so.cache` and library directories). A platform other than the
/// host's needs a sysroot for them. `source:` paths inside the spec's directory are the
/// project's own files, the same for every platform. An ELF file whose machine is not
/// the platform's is an error.
extension ImageBuilder {
    /// The host path of `item` for this build's platform: `item.path` itself, or where it
    /// is inside the sysroot (symlinks resolved inside it). Checks the ELF machine of a
    /// closure's program or a single-file source.
    func platformHostPath(_ item: ContentItem, prefix: String) throws -> String {
        guard let platform = spec.buildPlatform, item.kind == .source || item.kind == .closure else { return item.path }
        var path = item.path
        if !isProjectFile(item) {
            if let root = try sysrootDirectory(platform) {
                let canonical: String
                do { canonical = try PathWalker(prefix: root).walk(item.path, followFinal: true).canonical } catch let e as PathWalker.Failure {
                    throw BuildError("\(prefix): \(e.message) in the sysroot of \(platform) (\(root))")
                }
                path = root + canonical
            } else if !platform.isHost {
                throw BuildError("\(prefix): \(item.path): \(platform) is not the host's platform (\(Platform.host)): its files come from its sysroot, `sysroots: {\(platform): DIR}`, which the spec lacks")
            }
        }
        var st = stat()
        if stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, let elf = try? ELFFile(path: path),
           let why = elf.mismatch(with: platform) {
            throw BuildError("\(prefix): \(item.path) \(why)")
        }
        return path
    }

    /// Whether a content item is read from the platform's sysroot: the plan cache, which
    /// fingerprints the paths as written, then does not vouch for the plan.
    var readsSysroot: Bool {
        guard spec.buildSysroot != nil else { return false }
        return spec.contents.contains { ($0.kind == .closure || $0.kind == .source) && !isProjectFile($0) }
    }

    /// A `source:` item inside the spec's directory: the project's own file, the same for
    /// every platform (never looked up in a sysroot).
    func isProjectFile(_ item: ContentItem) -> Bool {
        item.kind == .source && spec.directory != "/" && item.path.hasPrefix(spec.directory + "/")
    }

    /// The closure resolver for this build's platform: inside its sysroot, else the host's.
    func platformClosureResolver() throws -> ClosureResolver {
        guard let platform = spec.buildPlatform, let root = try sysrootDirectory(platform) else { return ClosureResolver() }
        return ClosureResolver(root: root)
    }

    /// The platform's sysroot, checked to be a directory; nil when the spec gives none.
    func sysrootDirectory(_ platform: Platform) throws -> String? {
        guard let root = spec.sysroots[platform] else { return nil }
        var st = stat()
        guard stat(root, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            let loc = spec.keyLocations["sysroots"].map { "\($0): " } ?? ""
            let why = errno == ENOENT || st.st_mode & S_IFMT != S_IFDIR ? "no such directory" : String(cString: strerror(errno))
            throw BuildError("\(loc)sysroots.\(platform): \(root): \(why)")
        }
        return root
    }

    /// A script run as root runs on the host's processor: a build for another platform
    /// cannot run one (no emulation is set up). Nor does `swift build` of a `swift:` item
    /// make programs for another platform than the host's.
    func checkScriptsCanRun() throws {
        guard let platform = spec.buildPlatform, !platform.isHost else { return }
        if let (i, item) = spec.contents.enumerated().first(where: { $0.element.kind == .swift }) {
            throw BuildError("\(item.location): contents[\(i)].swift: `swift build` makes programs for the host (\(Platform.host)), not \(platform); build the product for it and add it with `closure:` from its sysroot")
        }
        guard runAsRootScript != nil else { return }
        let key = spec.runAsRoot != nil ? "runAsRoot" : "configure"
        let loc = spec.keyLocations[key].map { "\($0): " } ?? ""
        throw BuildError("\(loc)\(key): runs programs of the image, which cannot run here for \(platform) (the host is \(Platform.host)); build that platform on a machine of its own")
    }
}

extension ImageBuilder {
    /// A base that is one image (not an index) must be of the platform being built, when
    /// the spec lists `platforms`: an amd64 base under an arm64 image would not run.
    func checkBasePlatform(_ base: BaseImage?) throws {
        guard let platform = spec.buildPlatform, let base else { return }
        let have = base.image.config.platform
        guard !BaseImage.matches(have, platform) && !BaseImage.matches(platform, have) else { return }
        let loc = spec.keyLocations["fromImage"].map { "\($0): " } ?? ""
        throw BuildError("\(loc)fromImage: \(base.reference) is an image for \(have), not \(platform) (a base for several platforms is an image index)")
    }
}
