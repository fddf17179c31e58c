#if canImport(Glibc)
import Glibc
#endif
import KilnArchive
import KilnImage
import KilnOCI

extension ImageBuilder {
    /// `users`/`groups` on a base image: merged into the base's account files (see
    /// `AccountFiles.merging`), which go into the new layer with the base's modes and
    /// owners; home directories the base lacks are created for their users.
    func addAccounts(to tree: inout FileTree, base: BaseImage) throws {
        let fs = try base.rootfs()
        func text(_ path: String) throws -> String? {
            try fs.contents(of: path).map { String(decoding: $0, as: UTF8.self) }
        }
        let merged = try AccountFiles(passwd: text("etc/passwd"), group: text("etc/group"),
                                      shadow: text("etc/shadow"), gshadow: text("etc/gshadow"))
            .merging(users: spec.users, groups: spec.groups)
        if tree["etc"] == nil {
            var etc = FileNode.directory()
            if let m = fs.metadata(at: "etc") { (etc.mode, etc.uid, etc.gid) = m }
            tree.insert("etc", etc)
        }
        for (name, text, mode) in [("passwd", merged.passwd, UInt32(0o644)), ("group", merged.group, 0o644),
                                   ("shadow", merged.shadow, 0o640), ("gshadow", merged.gshadow, 0o640)] {
            var node = FileNode(.file(.inline(Array((text ?? "").utf8))), mode: mode)
            if let m = fs.metadata(at: "etc/" + name) { (node.mode, node.uid, node.gid) = m }
            tree.insert("etc/" + name, node)
        }
        for u in spec.users {
            let home = FileTree.normalize(u.home)
            guard !home.isEmpty, home != "var/empty", home != "nonexistent" else { continue }
            if let existing = tree[home] {
                guard existing.isDirectory else { continue }
                tree.update(home) { $0.uid = u.uid; $0.gid = u.gid }
            } else if fs.item(at: home) == nil {
                var node = FileNode.directory(mode: u.uid == 0 ? 0o700 : 0o755)
                node.uid = u.uid
                node.gid = u.gid
                tree.insert(home, node)
            }
        }
    }

    /// Puts the base layers in front of the new one and the runAsRoot layer after it,
    /// and builds the config on the base's. Without a base or runAsRoot, `image` is
    /// returned as it is.
    func assemble(_ image: PendingImage, hasContents: Bool, base: BaseImage?,
                  created: String, createdEpoch: Int64, mtime: Int64) throws -> PendingImage {
        guard base != nil || runAsRootScript != nil else { return image }
        var out = image
        var layers: [LayerInput] = base?.image.layers.map { .stored($0) } ?? []
        var history: [History] = []
        // On a base, an empty contents layer is left out (the plan drops it already when
        // there are packages, whose layers are kept).
        let withContents = base == nil || hasContents || (packages.map { !$0.packages.isEmpty } ?? false)
        if withContents {
            layers += image.layers
            history += image.config.history ?? []
        }
        var config = image.config
        if let base {
            config = ImageConfig.inherited(from: base.image.config, spec: spec, created: created, newHistory: [])
            config.config = config.config.map { Self.swiftEntrypoint($0, spec: spec) }   // SwiftProduct.swift
        }
        if let script = runAsRootScript {
            let location = spec.keyLocations["runAsRoot"].map { "\($0): " } ?? ""
            var env = config.config?.Env ?? []
            let names = Set(env.map { $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)[0] })
            if !names.contains("PATH") { env.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") }
            if !names.contains("HOME") { env.append("HOME=/root") }
            // Tools that stamp dates (useradd's last password change) then stay reproducible.
            env.append("SOURCE_DATE_EPOCH=\(createdEpoch)")
            // Every new layer, in order: packages, Kiln's generated files, contents.
            layers.append(try runAsRootLayer(script: script, base: base, newLayers: withContents ? image.layers : [],
                                             environment: env, mtime: mtime, location: location))
            history.append(History(created: created, createdBy: "kiln runAsRoot", comment: spec.path.split(separator: "/").last.map(String.init)))
        }
        config.history = (base == nil ? [] : config.history ?? []) + history
        out.config = config
        out.layers = layers
        return out
    }
}
