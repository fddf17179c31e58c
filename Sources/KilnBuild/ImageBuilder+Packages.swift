#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnDebian
import KilnImage
import KilnOCI

/// The layers a build's Debian packages become, and what Kiln writes in place of their
/// maintainer scripts.
struct PackageLayers {
    /// One layer per package (the least popular merged into the last when the budget is
    /// short), bottom to top, with a history comment each.
    var layers: [Layer]
    /// Kiln's own files: dpkg metadata, the CA bundle, `/etc/localtime`, the merged-/usr
    /// symlinks. A layer of its own above the packages.
    var generated: FileTree
    /// What went into the image, for the SBOM and `--json`.
    var unpacked: [(package: FetchedPackage, files: Int, bytes: Int64, license: String?)]
    /// Packages with maintainer scripts that Kiln did not run.
    var withScripts: [String]
    /// Every package layer and the generated files merged: what the contents above them
    /// see (and follow the symlinks of).
    var view = FileTree()

    /// One package layer and the packages it holds.
    struct Layer {
        var input: LayerInput
        var comment: String
        /// The packages of the layer, as indices into `unpacked`, in the order they were
        /// unpacked into it (the provenance document and the SBOM name them from here, so
        /// nothing re-derives the grouping).
        var packages: [Int]
    }

    /// The packages of layer `i`, bottom to top.
    func packages(ofLayer i: Int) -> [(package: FetchedPackage, files: Int, bytes: Int64, license: String?)] {
        layers[i].packages.map { unpacked[$0] }
    }
}

/// Debian's default `PATH` (base-files' /etc/profile and login.defs).
let debianDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extension ImageBuilder {
    /// Unpacks the selected packages into layers. A package's layer depends only on the
    /// package (its files, modes, owners and mtimes as shipped), so the same package at
    /// the same version is the same layer in every image, shared in every registry.
    ///
    /// On a base, a package its dpkg status lists at the same version is not added again;
    /// another version of an installed package is an error unless `onConflict: replace`.
    /// Each package's files are placed through the base's symlinks (and those of the
    /// packages below it) as dpkg writes through them, but never trimmed file by file.
    func packageLayers(_ selection: PackageSelection, budget: Int, mergedUsr: Bool, base: BaseImage?,
                       baseFiles: (any BaseFiles)?, contentHasLocaltime: Bool) throws -> PackageLayers {
        let location = spec.keyLocations["packages"].map { "\($0): packages" } ?? "packages"
        let baseStatus = try base?.rootfs().contents(of: "var/lib/dpkg/status", limit: 64 << 20).map { String(decoding: $0, as: UTF8.self) }
        var installed: [String: InstalledPackage] = [:]
        if let baseStatus {
            do {
                for p in try InstalledPackage.parseStatus(baseStatus) { installed[p.name] = p }
            } catch {
                throw BuildError("\(base?.reference ?? "fromImage"): /var/lib/dpkg/status: \(error)")
            }
        }
        var replaced = Set<String>()
        let wanted = try selection.packages.filter { p in
            guard let have = installed[p.package.name] else { return true }
            if have.version.description == p.package.version { return false }
            guard spec.onConflict == .replace else {
                throw BuildError("\(location): \(p.package.name) \(p.package.version) would replace \(p.package.name) \(have.version) installed in the base \(base?.reference ?? ""); set `onConflict: replace` to replace it")
            }
            replaced.insert(p.package.name)
            return true
        }
        // Most depended-on packages lowest in the stack (they change least), then by name.
        let ordered = wanted.sorted { a, b in
            a.package.requiredBy.count != b.package.requiredBy.count
                ? a.package.requiredBy.count > b.package.requiredBy.count : a.package.name < b.package.name
        }
        var groups: [[FetchedPackage]] = ordered.map { [$0] }
        if groups.count > budget {
            let keep = max(budget - 1, 0)
            let rest = Array(ordered[keep...])
            groups = Array(groups.prefix(keep)) + [rest]
        }
        var out = PackageLayers(layers: [], generated: FileTree(), unpacked: [], withScripts: [])
        var status: [String] = []
        var caInputs: [CACertificates.Input] = []
        var hasTzdata = false
        var infoFiles: [(String, [UInt8])] = []
        // Top-level directories the packages ship (before merged-/usr placement).
        var usrTops = Set<String>()
        for group in groups {
            var layerTree = FileTree()
            let first = out.unpacked.count
            for p in group {
                let what = "\(location): \(p.package.name) \(p.package.version) (\(p.debPath))"
                let deb: DebArchive
                do { deb = try DebArchive(path: p.debPath) } catch { throw BuildError("\(what): \(error)") }
                guard let control = deb.control else { throw BuildError("\(what): the package has no control file") }
                if !deb.maintainerScripts.isEmpty { out.withScripts.append(p.package.name) }
                let unpacked = try FileTree.unpackDebian(deb, what: what, mergedUsr: mergedUsr, staging: staging)
                try layerTree.mergeResolving(unpacked.tree, below: ImageView(base: baseFiles, trees: [out.view]))
                for path in unpacked.packagePaths {
                    let top = path.split(separator: "/").first.map(String.init) ?? ""
                    if FileTree.mergedUsrDirectories.contains(top) { usrTops.insert(top) }
                }
                var license: String?
                if case .file(.host(let path, _, _))? = unpacked.tree["usr/share/doc/\(p.package.name)/copyright"]?.content {
                    license = DebianLicense.licenses(atPath: path)
                }
                out.unpacked.append((p, unpacked.fileCount, unpacked.byteCount, license))
                var paragraph = control
                while paragraph.hasSuffix("\n") { paragraph.removeLast() }
                status.append(paragraph)
                out.generated.insert("var/lib/dpkg/status.d/\(p.package.name)", FileNode(.file(.inline(Array((paragraph + "\n").utf8))), mode: 0o644))
                if let sums = deb.controlMembers["md5sums"] {
                    out.generated.insert("var/lib/dpkg/status.d/\(p.package.name).md5sums", FileNode(.file(.inline(sums)), mode: 0o644))
                    infoFiles.append(("\(p.package.name).md5sums", sums))
                }
                // For `configure: true`, dpkg finds the maintainer scripts where it keeps them.
                if spec.configure {
                    for member in ["preinst", "postinst", "prerm", "postrm", "config", "templates", "triggers", "conffiles", "shlibs", "symbols"] {
                        if let bytes = deb.controlMembers[member] { infoFiles.append(("\(p.package.name).\(member)", bytes)) }
                    }
                }
                infoFiles.append(("\(p.package.name).list", Array(unpacked.packagePaths.map { $0 + "\n" }.joined().utf8)))
                if p.package.name == "ca-certificates" {
                    caInputs = try collectCertificates(unpacked.tree)
                }
                if p.package.name == "tzdata" { hasTzdata = true }
            }
            let comment = group.count == 1 ? "\(group[0].package.name) \(group[0].package.version)"
                : "\(group.count) packages: " + group.map(\.package.name).joined(separator: " ")
            // A package's layer has the package's own mtimes; the few directories no
            // package lists get 0, never the spec's `mtime`, so the layer is the same in
            // every image.
            out.layers.append(PackageLayers.Layer(input: try layerInput(try TreeLayer(tree: layerTree, mtime: 0)), comment: comment,
                                                  packages: Array(first..<out.unpacked.count)))
            out.view.merge(layerTree)
        }
        try addGenerated(to: &out.generated, mergedUsr: mergedUsr, base: base, baseStatus: baseStatus, replaced: replaced,
                         contentHasLocaltime: contentHasLocaltime,
                         caInputs: caInputs, hasTzdata: hasTzdata, status: status, infoFiles: infoFiles,
                         selection: selection, usrTops: usrTops)
        out.view.merge(out.generated)
        return out
    }

    /// The certificates `update-ca-certificates` would bundle: every `.crt` below
    /// `/usr/share/ca-certificates`.
    private func collectCertificates(_ tree: FileTree) throws -> [CACertificates.Input] {
        let prefix = "usr/share/ca-certificates/"
        var inputs: [CACertificates.Input] = []
        for p in FileTree.sortedPaths(tree.paths) where p.hasPrefix(prefix) && p.hasSuffix(".crt") {
            guard case .file(.host(let path, _, _))? = tree[p]?.content else { continue }
            let bytes = try FileReader(path: path).readAll(limit: 16 << 20)
            inputs.append(CACertificates.Input(relativePath: String(p.dropFirst(prefix.count)), pem: bytes))
        }
        return inputs
    }

    private func addGenerated(to tree: inout FileTree, mergedUsr: Bool, base: BaseImage?, baseStatus: String?,
                              replaced: Set<String>, contentHasLocaltime: Bool,
                              caInputs: [CACertificates.Input], hasTzdata: Bool, status: [String],
                              infoFiles: [(String, [UInt8])], selection: PackageSelection, usrTops: Set<String>) throws {
        if mergedUsr && base == nil {
            // bin, sbin and lib always (as Debian's base-files layout has them); lib64 and
            // the others when a package ships files there (lib64 holds x86-64's ELF
            // interpreter, /lib64/ld-linux-x86-64.so.2).
            for dir in FileTree.mergedUsrDirectories where ["bin", "sbin", "lib"].contains(dir) || usrTops.contains(dir) {
                tree.insert(dir, FileNode(.symlink("usr/" + dir), mode: 0o777))
            }
        }
        if !caInputs.isEmpty {
            let ca = try CACertificates.generate(caInputs)
            tree.insert("etc/ssl/certs/ca-certificates.crt", FileNode(.file(.inline(ca.bundle)), mode: 0o644))
            // What the package's postinst writes, so a later update-ca-certificates works.
            tree.insert("etc/ca-certificates.conf", FileNode(.file(.inline(try CACertificates.configuration(caInputs))), mode: 0o644))
            for link in ca.links {
                tree.insert("etc/ssl/certs/" + link.name, FileNode(.symlink(link.target), mode: 0o777))
            }
        }
        if hasTzdata && !contentHasLocaltime {
            tree.insert("etc/localtime", FileNode(.symlink("/usr/share/zoneinfo/Etc/UTC"), mode: 0o777))
            tree.insert("etc/timezone", FileNode(.file(.inline(Array("Etc/UTC\n".utf8))), mode: 0o644))
        }
        // On a base that has dpkg's database, the packages join it, so `dpkg -l` lists them.
        if baseStatus != nil || spec.configure {
            if spec.configure, try base?.rootfs().item(at: "usr/bin/dpkg") == nil, !selection.packages.contains(where: { $0.package.name == "dpkg" }) {
                let loc = spec.keyLocations["configure"].map { "\($0): " } ?? ""
                throw BuildError("\(loc)configure: the image has no dpkg to run the maintainer scripts (add `dpkg` to packages or build on a base that has it)")
            }
            // Unpacked, not yet configured, when `dpkg --configure -a` is to run.
            let state = spec.configure ? "install ok unpacked" : "install ok installed"
            // The base's paragraphs, less those of the packages replaced at another version.
            var text = (baseStatus ?? "").components(separatedBy: "\n\n").filter { paragraph in
                let name = paragraph.split(separator: "\n").first { $0.hasPrefix("Package:") }
                    .map { String($0.dropFirst("Package:".count).drop { $0 == " " || $0 == "\t" }) }
                return name.map { !replaced.contains($0) } ?? true
            }.joined(separator: "\n\n")
            if !text.isEmpty && !text.hasSuffix("\n\n") { text += text.hasSuffix("\n") ? "\n" : "\n\n" }
            for paragraph in status {
                var lines = paragraph.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                let at = lines.firstIndex { $0.hasPrefix("Package:") }.map { $0 + 1 } ?? 0
                lines.insert("Status: \(state)", at: at)
                text += lines.joined(separator: "\n") + "\n\n"
            }
            if text.hasSuffix("\n\n") { text.removeLast() }
            tree.insert("var/lib/dpkg/status", FileNode(.file(.inline(Array(text.utf8))), mode: 0o644))
            let scripts: Set<String> = ["preinst", "postinst", "prerm", "postrm", "config"]
            for (name, bytes) in infoFiles {
                let ext = name.split(separator: ".").last.map(String.init) ?? ""
                tree.insert("var/lib/dpkg/info/" + name, FileNode(.file(.inline(bytes)), mode: scripts.contains(ext) ? 0o755 : 0o644))
            }
        }
    }
}
