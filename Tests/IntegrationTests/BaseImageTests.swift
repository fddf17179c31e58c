import Foundation
import Testing

/// `fromImage`: building on an image made by another tool (umoci), with whiteouts and
/// opaque directories in its layers.
@Suite(.serialized) struct BaseImageTests {
    @Test func buildsOnAnUmociImageReusingItsLayersByteForByte() throws {
        let dir = try TempDir()
        let base = try makeToolBase(in: dir)
        let baseImage = try ociImage(base, tag: "tool")
        #expect(baseImage.layers.count == 3)

        try dir.write("app-files/opt/app/run", "#!/bin/sh\necho app\n", mode: 0o755)
        try dir.write("app.yaml", """
            name: kiln-test/app
            tag: v1
            fromImage: oci:base-layout:tool
            contents:
              - app-files
            users:
              - {name: app, uid: 1000}
            config:
              Env: ["FROM=app", "NEW=1"]
              Labels: {app: "1"}
            """)
        try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", dir.path + "/app"])
        let app = try ociImage(dir.path + "/app", tag: "v1")

        // Same blobs, same digests, in front; one new layer.
        #expect(app.layers.count == 4)
        #expect(Array(app.layers.prefix(3)) == baseImage.layers)
        for d in baseImage.layers {
            let hex = d.split(separator: ":")[1]
            #expect(try dir.bytes("base-layout/blobs/sha256/\(hex)") == dir.bytes("app/blobs/sha256/\(hex)"))
        }
        let baseDiffs = (baseImage.config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        let appDiffs = (app.config["rootfs"] as! [String: Any])["diff_ids"] as! [String]
        #expect(Array(appDiffs.prefix(3)) == baseDiffs)

        // Config inherited field by field.
        let c = app.config["config"] as! [String: Any]
        #expect(c["Env"] as? [String] == ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "FROM=app", "KEEP=yes", "NEW=1"])
        #expect(c["Labels"] as? [String: String] == ["from": "base", "app": "1"])
        #expect(c["Cmd"] as? [String] == ["/bin/sh", "-c", "cat /data/keep/k"])
        #expect(c["WorkingDir"] as? String == "/data")
        #expect(app.config["architecture"] as? String == baseImage.config["architecture"] as? String)
        let history = app.config["history"] as! [[String: Any]]
        #expect(history.filter { $0["empty_layer"] as? Bool != true }.count == 4)
        #expect(history.last?["created_by"] as? String == "kiln build")

        // umoci applies the whiteouts and the opaque directory; runc runs the base's Cmd.
        let bundle = dir.path + "/check"
        try run("umoci", ["unpack", "--image", dir.path + "/app:v1", bundle])
        let fm = FileManager.default
        #expect(!fm.fileExists(atPath: bundle + "/rootfs/data/gone"))
        #expect(!fm.fileExists(atPath: bundle + "/rootfs/etc/tool-deleted"))
        #expect(try fm.contentsOfDirectory(atPath: bundle + "/rootfs/opt/replace") == ["fresh"])
        #expect(fm.fileExists(atPath: bundle + "/rootfs/opt/app/run"))
        let passwd = try String(contentsOfFile: bundle + "/rootfs/etc/passwd", encoding: .utf8)
        #expect(passwd.contains("olduser:x:500:500:") && passwd.contains("app:x:1000:1000:"))
        #expect(try runWithRunc(dir.path + "/app", tag: "v1", in: dir) == "k\n")

        // Written as a docker-archive too: same layers (uncompressed there), loadable by skopeo.
        try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/app.tar"])
        let inspect = try parseJSON(try run("skopeo", ["inspect", "--config", "docker-archive:\(dir.path)/app.tar"]).stdout) as! [String: Any]
        #expect(((inspect["rootfs"] as! [String: Any])["diff_ids"] as! [String]) == appDiffs)
    }

    @Test func fromImageNameAndTagChooseAmongImagesOfOneArchive() throws {
        let dir = try TempDir()
        for (name, label) in [("kiln-test/first", "first"), ("kiln-test/second", "second")] {
            try dir.write("\(label)/marker", label)
            try dir.write("\(label).yaml", """
                name: \(name)
                tag: v2
                contents: [\(label)]
                config: {Labels: {which: \(label)}}
                """)
            try kiln(["build", dir.path + "/\(label).yaml", "-o", dir.path + "/\(label).tar"])
        }
        // One docker-archive holding both images (as `docker save a b` writes).
        try run("python3", ["-c", """
            import io, json, tarfile, sys
            out = tarfile.open(sys.argv[3], "w")
            manifest, repos, seen = [], {}, set()
            for path in sys.argv[1:3]:
                t = tarfile.open(path)
                for m in t.getmembers():
                    data = t.extractfile(m).read() if m.isfile() else None
                    if m.name == "manifest.json": manifest += json.loads(data); continue
                    if m.name == "repositories": repos.update(json.loads(data)); continue
                    if m.name in seen: continue
                    seen.add(m.name)
                    out.addfile(m, io.BytesIO(data) if data is not None else None)
            for name, obj in (("manifest.json", manifest), ("repositories", repos)):
                b = json.dumps(obj).encode(); i = tarfile.TarInfo(name); i.size = len(b); out.addfile(i, io.BytesIO(b))
            out.close()
            """, dir.path + "/first.tar", dir.path + "/second.tar", dir.path + "/both.tar"])

        var count = 0
        func build(_ selection: String) throws -> (RunResult, String) {
            count += 1
            let out = dir.path + "/out-\(count)"
            try dir.write("app.yaml", "name: kiln-test/app\ntag: v1\nfromImage: docker-archive:both.tar\(selection)\n")
            return (try kiln(["build", dir.path + "/app.yaml", "--format", "oci", "-o", out], check: false), out)
        }
        func label(_ built: (RunResult, String)) throws -> String? {
            #expect(built.0.status == 0, "\(built.0)")
            return ((try ociImage(built.1, tag: "v1").config["config"] as! [String: Any])["Labels"] as? [String: String])?["which"]
        }
        #expect(try label(try build("\nfromImageName: kiln-test/second\nfromImageTag: v2")) == "second")
        #expect(try label(try build("\nfromImageName: kiln-test/first")) == "first")
        // The reference can carry the choice too, as skopeo's docker-archive:PATH:NAME:TAG.
        #expect(try label(try build(":kiln-test/second:v2")) == "second")

        let (missing, _) = try build("\nfromImageName: kiln-test/third")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("app.yaml:3: fromImage:") && missing.stderr.contains("kiln-test/first:v2"), "\(missing)")
        let (ambiguous, _) = try build("\nfromImageTag: v2")
        #expect(ambiguous.status != 0 && ambiguous.stderr.contains("2 images match"), "\(ambiguous)")
    }

    @Test func aMissingOrBrokenBaseIsOneClearError() throws {
        let dir = try TempDir()
        try dir.write("app.yaml", "name: kiln-test/app\nfromImage: oci:nowhere:v1\n")
        let r = try kiln(["build", dir.path + "/app.yaml", "-o", dir.path + "/out.tar"], check: false)
        #expect(r.status == 1)
        #expect(r.stderr.split(separator: "\n").count == 1)
        #expect(r.stderr.contains("app.yaml:2: fromImage:") && r.stderr.contains("nowhere"), "\(r)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/out.tar"))
    }
}
