import Foundation
import Testing

/// A base image made partly by another tool: Kiln builds a first layer from host
/// binaries (sh, coreutils, useradd with its config), then umoci repacks a change
/// (so umoci writes the `.wh.` whiteouts) and adds a hand-written layer with an opaque
/// directory (`.wh..wh..opq`). Returns the OCI layout path; the image is tagged `tool`.
///
/// Final contents: /data/keep/k, /data/added, /opt/replace/fresh (opaque: a and sub/ are
/// hidden), /etc/login.defs, /etc/default/useradd, /etc/delme (for runAsRoot to delete),
/// /srv/tree/{one,two} (for runAsRoot to replace); /data/gone and /etc/tool-deleted are
/// whited out.
func makeToolBase(in dir: TempDir) throws -> String {
    let files = dir.path + "/base-files"
    try sh("""
        mkdir -p \(files)/etc/default \(files)/data/keep \(files)/data/gone \(files)/opt/replace/sub \(files)/srv/tree
        cp /etc/login.defs \(files)/etc/ && cp /etc/default/useradd \(files)/etc/default/
        echo k > \(files)/data/keep/k && echo g > \(files)/data/gone/g
        echo a > \(files)/opt/replace/a && echo b > \(files)/opt/replace/sub/b
        echo d > \(files)/etc/delme && echo t > \(files)/etc/tool-deleted
        echo 1 > \(files)/srv/tree/one && echo 2 > \(files)/srv/tree/two
        ln \(files)/data/keep/k \(files)/data/keep/k-hardlink
        ln -s keep/k \(files)/data/k-symlink
        """)
    try dir.write("base.yaml", """
        name: kiln-test/base
        tag: v1
        contents:
          - base-files
          - closure: /bin/sh
          - closure: /usr/sbin/useradd
          - closure: /bin/rm
          - closure: /bin/mkdir
          - closure: /bin/cat
          - closure: /bin/ls
          - closure: /bin/chown
          - closure: /bin/chmod
        users:
          - {name: olduser, uid: 500}
        perms:
          - {path: "/data/keep/k*", mode: "0604", uid: 500, gid: 500}
        config:
          Env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM=base", "KEEP=yes"]
          Labels: {from: base}
          Cmd: ["/bin/sh", "-c", "cat /data/keep/k"]
          WorkingDir: /data
        """)
    let layout = dir.path + "/base-layout"
    try kiln(["build", dir.path + "/base.yaml", "--format", "oci", "-o", layout])

    let bundle = dir.path + "/umoci-bundle"
    try run("umoci", ["unpack", "--image", layout + ":v1", bundle])
    try sh("""
        rm -rf \(bundle)/rootfs/data/gone \(bundle)/rootfs/etc/tool-deleted
        echo added > \(bundle)/rootfs/data/added
        """)
    try run("umoci", ["repack", "--image", layout + ":v2", bundle])
    try FileManager.default.removeItem(atPath: bundle)

    // A layer with an opaque directory, added verbatim.
    let raw = dir.path + "/opq"
    try sh("""
        mkdir -p \(raw)/opt/replace && : > \(raw)/opt/replace/.wh..wh..opq && echo fresh > \(raw)/opt/replace/fresh
        tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 -C \(raw) -cf \(dir.path)/opq.tar opt
        """)
    try run("umoci", ["raw", "add-layer", "--image", layout + ":v2", "--tag", "tool", dir.path + "/opq.tar"])
    return layout
}

/// The layer digests and the parsed config of `layout:tag`.
func ociImage(_ layout: String, tag: String) throws -> (layers: [String], config: [String: Any]) {
    let index = try parseJSON(String(contentsOfFile: layout + "/index.json", encoding: .utf8)) as! [String: Any]
    let manifests = index["manifests"] as! [[String: Any]]
    let desc = manifests.first { ($0["annotations"] as? [String: String])?["org.opencontainers.image.ref.name"] == tag }!
    func blob(_ digest: String) throws -> [String: Any] {
        let hex = digest.split(separator: ":")[1]
        return try parseJSON(String(contentsOfFile: "\(layout)/blobs/sha256/\(hex)", encoding: .utf8)) as! [String: Any]
    }
    let manifest = try blob(desc["digest"] as! String)
    let layers = (manifest["layers"] as! [[String: Any]]).map { $0["digest"] as! String }
    let config = try blob((manifest["config"] as! [String: Any])["digest"] as! String)
    return (layers, config)
}

/// Unpacks with umoci and runs the bundle with runc, non-interactively; returns stdout.
func runWithRunc(_ layout: String, tag: String, in dir: TempDir, args: [String]? = nil) throws -> String {
    let bundle = dir.path + "/run-\(UUID().uuidString.prefix(6))"
    try run("umoci", ["unpack", "--image", "\(layout):\(tag)", bundle])
    try sh("sed -i 's/\"terminal\": true/\"terminal\": false/' config.json", cwd: bundle)
    if let args {
        // Replace process.args.
        let path = bundle + "/config.json"
        var config = try parseJSON(String(contentsOfFile: path, encoding: .utf8)) as! [String: Any]
        var process = config["process"] as! [String: Any]
        process["args"] = args
        config["process"] = process
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
    }
    let id = "kiln-base-\(UUID().uuidString.prefix(8))"
    return try run("runc", ["run", "-b", bundle, id]).stdout
}

/// Every object under a directory: type, mode, owner, size, link target and a content
/// hash, by relative path (`find -printf` plus sha256sum), for entry-by-entry comparisons.
func treeListing(_ root: String) throws -> [String: String] {
    let out = try sh("""
        cd '\(root)' && find . -mindepth 1 -printf '%P\\t%y %#m %U:%G %s %l\\n' | LC_ALL=C sort
        """).stdout
    var result: [String: String] = [:]
    for line in out.split(separator: "\n") {
        let parts = line.split(separator: "\t", maxSplits: 1)
        var value = String(parts[1])
        if value.hasPrefix("f ") {
            // Directory sizes depend on the file system; regular files get a content hash.
            let hash = try run("sha256sum", [root + "/" + parts[0]]).stdout.prefix(64)
            value += " " + hash
        } else if value.hasPrefix("d ") {
            let f = value.split(separator: " ")
            value = "\(f[0]) \(f[1]) \(f[2])"
        }
        result[String(parts[0])] = value
    }
    return result
}
