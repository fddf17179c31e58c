import Foundation
import Testing

/// Per layer of a docker-archive: regular files (hard links counted), their bytes and
/// the paths of everything but directories, read by Python's tarfile (not Kiln).
func layerListing(_ archive: String) throws -> [(files: Int, bytes: Int, paths: [String])] {
    let script = """
        import json, sys, tarfile
        arc = tarfile.open(sys.argv[1])
        m = json.load(arc.extractfile('manifest.json'))
        out = []
        for name in m[0]['Layers']:
            t = tarfile.open(fileobj=arc.extractfile(name))
            files = size = 0
            paths = []
            for e in t:
                if e.isreg() or e.islnk():
                    files += 1
                    if e.isreg(): size += e.size
                if not e.isdir(): paths.append(e.name.lstrip('./'))
            out.append({'files': files, 'bytes': size, 'paths': paths})
        print(json.dumps(out))
        """
    let r = try run("python3", ["-c", script, archive])
    return (try parseJSON(r.stdout) as! [[String: Any]]).map {
        ($0["files"] as! Int, $0["bytes"] as! Int, $0["paths"] as! [String])
    }
}

/// The number of distinct colours of a PNG (8-bit RGB or RGBA, as Chromium writes its
/// screenshots), decoded with Python's zlib: filters undone row by row.
func distinctColours(_ png: String) throws -> Int {
    let script = """
        import struct, sys, zlib
        data = open(sys.argv[1], 'rb').read()
        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n'
        pos, idat = 8, b''
        while pos < len(data):
            n, kind = struct.unpack('>I4s', data[pos:pos + 8])
            body = data[pos + 8:pos + 8 + n]
            if kind == b'IHDR': w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
            if kind == b'IDAT': idat += body
            pos += 12 + n
        assert depth == 8 and ctype in (2, 6)
        bpp = 3 if ctype == 2 else 4
        raw = zlib.decompress(idat)
        stride = w * bpp
        prev = bytearray(stride)
        colours = set()
        for y in range(h):
            f = raw[y * (stride + 1)]
            row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if f == 1: row[i] = (row[i] + a) & 255
                elif f == 2: row[i] = (row[i] + b) & 255
                elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255
                elif f == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            for x in range(0, stride, bpp * 7):
                colours.add(bytes(row[x:x + 3]))
            prev = row
        print(len(colours))
        """
    return Int(try run("python3", ["-c", script, png]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}

/// Two content items: `app` (a program and a text file) at `/`, and `data` (a library
/// and a copy of the program) at `/opt/data`.
func writeTwoItems(_ dir: TempDir) throws -> String {
    try sh("""
        mkdir -p app/bin app/share data/lib
        head -c 400000 /dev/urandom > app/bin/tool
        head -c 120000 /dev/urandom > app/share/notes.txt
        head -c 250000 /dev/urandom > data/lib/libdata.so
        cp app/bin/tool data/lib/tool-copy
        """, cwd: dir.path)
    return "contents: [app, {source: data, target: /opt/data}]"
}

@Suite struct ProvenanceReportTests {
    static var hasChromium: Bool { hasTool("chromium") }

    /// A cold build and a build whose plan comes from the plan cache describe their
    /// layers with the same bytes, as does a build without any cache.
    @Test func coldAndPlanCacheBuildsGiveTheSameProvenance() throws {
        let dir = try TempDir()
        let contents = try writeTwoItems(dir)
        try dir.write("image.yaml", """
            name: kiln-test/prov
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(contents)
            """)
        let spec = dir.path + "/image.yaml", cache = dir.path + "/cache"
        try kiln(["build", spec, "-o", dir.path + "/a.tar", "--cache-dir", cache, "--provenance", dir.path + "/cold.json"])
        let warm = try kiln(["build", spec, "-o", dir.path + "/b.tar", "--cache-dir", cache, "--provenance", dir.path + "/warm.json"])
        #expect(warm.stderr.contains("from the cache, unplanned"), "the second build was planned again: \(warm)")
        try kiln(["build", spec, "-o", dir.path + "/c.tar", "--no-cache", "--provenance", dir.path + "/none.json"])
        let cold = try dir.bytes("cold.json")
        #expect(cold == (try dir.bytes("warm.json")))
        #expect(cold == (try dir.bytes("none.json")))
        let doc = try parseJSON(String(decoding: cold, as: UTF8.self)) as! [String: Any]
        #expect(doc["mediaType"] as? String == "application/vnd.kiln.provenance.v1+json")
        let layers = doc["layers"] as! [[String: Any]]
        let items = Set(layers.flatMap { ($0["items"] as? [[String: Any]] ?? []).map { $0["index"] as! Int } })
        #expect(items == [0, 1], "\(layers)")
    }

    /// Per layer, the files and bytes the document gives are those of the layer's tar;
    /// the package layers name their package and version as the history does; each
    /// content item's files are those below where it put them.
    @Test(.enabled(if: TestRepo.available, "needs dpkg-deb, dpkg-scanpackages, gpg, gpgv, gcc and xz"))
    func provenanceOfContentsAndPackagesMatchesTheLayers() throws {
        let dir = try TempDir()
        _ = try writeTwoItems(dir)
        // Under /srv: the packages' merged /usr would place `app`'s bin/ through /bin -> usr/bin.
        let contents = "contents: [{source: app, target: /srv/app}, {source: data, target: /opt/data}]"
        let spec = try writePackageSpec(in: dir, packages: ["kiln-hello"], extra: "created: 2024-01-01T00:00:00Z\n" + contents)
        try kiln(["build", spec, "-o", dir.path + "/img.tar", "--provenance", dir.path + "/prov.json",
                  "--cache-dir", dir.path + "/cache"])
        let doc = try parseJSON(String(decoding: try dir.bytes("prov.json"), as: UTF8.self)) as! [String: Any]
        let layers = doc["layers"] as! [[String: Any]]
        let listing = try layerListing(dir.path + "/img.tar")
        try #require(layers.count == listing.count, "\(layers.count) layers described, \(listing.count) in the image")
        let history = try layersByComment(dir.path + "/img.tar")
        var itemFiles: [Int: Int] = [:]
        var packages: [String] = []
        for (l, listed) in zip(layers, listing) {
            #expect(l["files"] as? Int == listed.files && l["bytes"] as? Int == listed.bytes,
                    "layer \(l["diffID"] ?? "?"): \(l["files"] ?? "-") files, \(l["bytes"] ?? "-") bytes; the tar has \(listed.files), \(listed.bytes)")
            switch l["source"] as? String {
            case "packages":
                for p in l["packages"] as! [[String: Any]] {
                    let name = "\(p["name"]!) \(p["version"]!)"
                    packages.append(name)
                    #expect(history[name] == l["diffID"] as? String, "\(name): layer \(l["diffID"] ?? "?"), history \(history[name] ?? "none")")
                }
            case "contents":
                for i in l["items"] as! [[String: Any]] { itemFiles[i["index"] as! Int, default: 0] += i["files"] as! Int }
            default: break
            }
        }
        #expect(Set(packages) == ["kiln-hello 1.0-1", "kiln-greeting 1.0", "kiln-base-files 1.0", "kiln-alt-utils 1.0"], "\(packages)")
        #expect(layers.contains { $0["source"] as? String == "generated" })
        // The report lists the packages with their versions, from the SBOM given.
        try kiln(["build", spec, "-o", dir.path + "/img2.tar", "--sbom", dir.path + "/sbom.json", "--cache-dir", dir.path + "/cache"])
        try kiln(["report", "docker-archive:" + dir.path + "/img2.tar", "-o", dir.path + "/r.html", "--sbom", dir.path + "/sbom.json"])
        let html = String(decoding: try dir.bytes("r.html"), as: UTF8.self)
        #expect(html.contains("<tr><td>kiln-hello</td><td>1.0-1</td>") && html.contains("<tr><td>kiln-greeting</td><td>1.0</td>"), "\(html)")
        // Or from the SBOM attached beside the image.
        try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout", "--attach-sbom", "--cache-dir", dir.path + "/cache"])
        try kiln(["report", "oci:" + dir.path + "/layout:v1", "-o", dir.path + "/attached.html"])
        let attached = String(decoding: try dir.bytes("attached.html"), as: UTF8.self)
        #expect(attached.contains("<tr><td>kiln-hello</td><td>1.0-1</td>"), "\(attached)")
        let contentPaths = zip(layers, listing).filter { $0.0["source"] as? String == "contents" }.flatMap(\.1.paths)
        #expect(itemFiles[0] == contentPaths.filter { $0.hasPrefix("srv/app/") }.count && itemFiles[0] == 2, "\(itemFiles) \(contentPaths)")
        #expect(itemFiles[1] == contentPaths.filter { $0.hasPrefix("opt/data/") }.count && itemFiles[1] == 2, "\(itemFiles) \(contentPaths)")
    }

    /// `inspect --files` names each file's layer and origin: the content item from the
    /// provenance given, or the layer without one.
    @Test func inspectFilesShowsOrigins() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/files
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--provenance", dir.path + "/prov.json"])
        let image = "docker-archive:" + dir.path + "/img.tar"
        let r = try kiln(["inspect", "--files", image, "--provenance", dir.path + "/prov.json"])
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let tool = try #require(lines.first { $0.contains(" /bin/tool ") }, "\(r.stdout)")
        #expect(tool.hasPrefix("400000  ") && tool.hasSuffix("[contents[0] directory app]"), "\(tool)")
        let lib = try #require(lines.first { $0.contains(" /opt/data/lib/libdata.so ") }, "\(r.stdout)")
        #expect(lib.hasSuffix("[contents[1] source data]"), "\(lib)")
        // The layer column is the first 12 hex digits of a layer of the image.
        let layerIDs = try parseJSON(try kiln(["inspect", image, "--json"]).stdout) as! [String: Any]
        let names = Set((layerIDs["layers"] as! [[String: Any]]).map { String(($0["digest"] as! String).dropFirst(7).prefix(12)) })
        #expect(names.contains(String(tool.split(separator: " ", omittingEmptySubsequences: true)[1])), "\(tool) \(names)")

        let json = try parseJSON(try kiln(["inspect", "--files", "--json", image, "--provenance", dir.path + "/prov.json"]).stdout) as! [[String: Any]]
        #expect(json.contains { $0["path"] as? String == "/share/notes.txt" && $0["origin"] as? String == "contents[0] directory app" && $0["size"] as? Int == 120000 })
        // Without a document (none given or attached, none in this cache) a file is named by its layer.
        let plain = try kiln(["inspect", "--files", image, "--cache-dir", dir.path + "/no-cache"])
        #expect(plain.stdout.contains("/bin/tool  [layer "), "\(plain.stdout)")
        // On a base: its layers are the base's, named as the spec names it.
        try dir.write("top/hello", "hi\n")
        try dir.write("based.yaml", "name: kiln-test/based\ncreated: 2024-01-01T00:00:00Z\nfromImage: docker-archive:img.tar\ncontents: [top]\n")
        try kiln(["build", dir.path + "/based.yaml", "-o", dir.path + "/based.tar", "--provenance", dir.path + "/based.json"])
        let based = try kiln(["inspect", "--files", "docker-archive:" + dir.path + "/based.tar", "--provenance", dir.path + "/based.json"]).stdout
        #expect(based.contains("/bin/tool  [base docker-archive:img.tar]") && based.contains("/hello  [contents[0] directory top]"), "\(based)")
        // Another image's document is refused, in one line.
        try dir.write("other.yaml", "name: kiln-test/other\ncreated: 2024-01-01T00:00:00Z\ncontents: [app]\nconfig: {Env: [X=1]}\n")
        try dir.write("app/extra", "x\n")
        try kiln(["build", dir.path + "/other.yaml", "-o", dir.path + "/other.tar"])
        let wrong = try kiln(["inspect", "--files", "docker-archive:" + dir.path + "/other.tar", "--provenance", dir.path + "/prov.json"], check: false)
        #expect(wrong.status == 1 && wrong.stderr.hasPrefix("kiln: error: ") && wrong.stderr.split(separator: "\n").count == 1, "\(wrong)")
    }

    /// One layer holding two items and the spec's accounts: `origins` splits it by path,
    /// and every file's origin is the one that put it there.
    @Test func oneLayerOfSeveralOriginsIsSplitByPath() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/single
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: single
            \(try writeTwoItems(dir))
            users: [{name: app, uid: 1000}]
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--provenance", dir.path + "/prov.json"])
        let doc = try parseJSON(String(decoding: try dir.bytes("prov.json"), as: UTF8.self)) as! [String: Any]
        let layers = doc["layers"] as! [[String: Any]]
        try #require(layers.count == 1)
        let origins = (layers[0]["origins"] as! [[String: Any]]).map { ($0["name"] as! String, $0["paths"] as! [String], $0["files"] as! Int) }
        #expect(origins.map(\.0) == ["contents[0] directory app", "contents[1] source data", "spec: accounts, extraCommands, generated files"], "\(origins)")
        #expect(origins[0].1 == ["bin", "share"] && origins[1].1 == ["opt"] && origins[0].2 == 2 && origins[1].2 == 2, "\(origins)")
        let files = try parseJSON(try kiln(["inspect", "--files", "--json", "docker-archive:" + dir.path + "/img.tar",
                                            "--provenance", dir.path + "/prov.json"]).stdout) as! [[String: Any]]
        let origin = Dictionary(uniqueKeysWithValues: files.map { ($0["path"] as! String, $0["origin"] as! String) })
        #expect(origin["/bin/tool"] == "contents[0] directory app" && origin["/opt/data/lib/tool-copy"] == "contents[1] source data"
                && origin["/etc/passwd"] == "spec: accounts, extraCommands, generated files", "\(origin)")
    }

    /// `--attach-provenance`: the document goes beside the image (a layout's referrer, a
    /// registry's), the image's digest is the one of a build without it, and `inspect
    /// --files` and `report` find it there with no --provenance.
    @Test(.enabled(if: registryToolsPresent, "needs docker-registry"))
    func attachedProvenanceIsFoundBesideTheImage() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/attached
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        let spec = dir.path + "/image.yaml"
        let plain = try parseJSON(try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/plain", "--json"]).stdout) as! [String: Any]
        let with = try parseJSON(try kiln(["build", spec, "--format", "oci", "-o", dir.path + "/layout", "--json",
                                           "--attach-provenance", "--provenance", dir.path + "/prov.json"]).stdout) as! [String: Any]
        #expect(plain["manifestDigest"] as? String == with["manifestDigest"] as? String)
        let referrers = try kiln(["referrers", "oci:\(dir.path)/layout:v1"])
        #expect(referrers.stdout.contains("application/vnd.kiln.provenance.v1+json"), "\(referrers)")
        let files = try kiln(["inspect", "--files", "oci:\(dir.path)/layout:v1"]).stdout
        #expect(files.contains("/opt/data/lib/libdata.so  [contents[1] source data]"), "\(files)")
        try kiln(["report", "oci:\(dir.path)/layout:v1", "-o", dir.path + "/r.html"])
        #expect(String(decoding: try dir.bytes("r.html"), as: UTF8.self).contains("contents[0] directory app"))

        let reg = try TestRegistry()
        defer { kill(reg.process.processIdentifier, SIGKILL); reg.process.waitUntilExit() }
        let env = try KilnEnv()
        let ref = "docker://\(reg.host)/kiln/attached:v1"
        try env.kiln(["build", spec, "--push", ref, "--attach-provenance"])
        let remote = try env.kiln(["inspect", "--files", ref]).stdout
        #expect(remote.contains("/bin/tool  [contents[0] directory app]"), "\(remote)")
        // A docker-archive holds no artifacts: a usage error before any work.
        let bad = try kiln(["build", spec, "-o", dir.path + "/img.tar", "--attach-provenance"], check: false)
        #expect(bad.status == 64 && !FileManager.default.fileExists(atPath: dir.path + "/img.tar"), "\(bad)")
    }

    /// The page, rendered by headless Chromium: a screenshot that is not blank, and the
    /// treemap's labels (layer names, an origin) in the DOM. The same image gives the
    /// same bytes.
    @Test(.enabled(if: hasChromium, "needs Debian's chromium (scripts/setup --test installs it)"))
    func reportRendersInChromium() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", """
            name: kiln-test/report
            tag: v1
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        try kiln(["build", dir.path + "/image.yaml", "--format", "oci", "-o", dir.path + "/layout", "--provenance", dir.path + "/prov.json"])
        let image = "oci:" + dir.path + "/layout:v1"
        try kiln(["report", image, "-o", dir.path + "/report.html", "--provenance", dir.path + "/prov.json"])
        try kiln(["report", image, "-o", dir.path + "/again.html", "--provenance", dir.path + "/prov.json"])
        #expect(try dir.bytes("report.html") == dir.bytes("again.html"))
        let html = String(decoding: try dir.bytes("report.html"), as: UTF8.self)
        for external in ["src=\"http", "href=\"http", "@import", "url(", "<link"] {
            #expect(!html.contains(external), "the page loads \(external)")
        }

        let url = "file://" + dir.path + "/report.html"
        let chromium = ["--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + dir.path + "/profile"]
        try run("chromium", chromium + ["--screenshot=" + dir.path + "/out.png", "--window-size=1280,900", url])
        let colours = try distinctColours(dir.path + "/out.png")
        #expect(colours >= 8, "the screenshot has \(colours) colours")
        let dom = try run("chromium", chromium + ["--dump-dom", url]).stdout
        let layers = (try parseJSON(try kiln(["inspect", image, "--json"]).stdout) as! [String: Any])["layers"] as! [[String: Any]]
        for l in layers {
            let name = String((l["digest"] as! String).dropFirst(7).prefix(12))
            #expect(dom.contains(">\(name)</div>"), "treemap label \(name) missing")
        }
        #expect(dom.contains(">contents[1] source data</div>") || dom.contains(">contents[0] directory app</div>"), "no origin label in the treemap")
        #expect(dom.contains("id=\"largest\"") && dom.contains("/bin/tool"))
        // app's tool and data's copy of it are in two layers: 400 kB shipped twice.
        let duplicates = try #require(html.range(of: "<table id=\"duplicates\">").map { String(html[$0.lowerBound...]) }, "no duplicates table")
        #expect(duplicates.contains("<code>/bin/tool</code>") && duplicates.contains("<code>/opt/data/lib/tool-copy</code>")
                && duplicates.contains("<td>400.0 kB</td>"), "\(duplicates.prefix(1500))")
        #expect(html.contains("identical files in several layers: 1 content, 400.0 kB"), "\(html)")
    }

    /// Wasted bytes: a base's file replaced by the contents above it is counted as
    /// overwritten (in the base's layer, hidden by the new one), and a file whose bytes
    /// another layer holds too is listed as a duplicate.
    @Test func wastedBytesNameOverwrittenAndDuplicatedFiles() throws {
        let dir = try TempDir()
        try dir.write("base.yaml", """
            name: kiln-test/base
            created: 2024-01-01T00:00:00Z
            layering: auto
            \(try writeTwoItems(dir))
            """)
        try kiln(["build", dir.path + "/base.yaml", "-o", dir.path + "/base.tar"])
        try sh("mkdir -p new/bin && head -c 123456 /dev/urandom > new/bin/tool", cwd: dir.path)
        try dir.write("image.yaml", """
            name: kiln-test/over
            created: 2024-01-01T00:00:00Z
            fromImage: docker-archive:base.tar
            contents: [{source: new, target: /, onConflict: replace}]
            """)
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar", "--provenance", dir.path + "/prov.json"])
        try kiln(["report", "docker-archive:" + dir.path + "/img.tar", "-o", dir.path + "/r.html", "--provenance", dir.path + "/prov.json"])
        let html = String(decoding: try dir.bytes("r.html"), as: UTF8.self)
        let wasted = try #require(html.range(of: "<table id=\"wasted\">").map { String(html[$0.lowerBound...]) }, "no wasted table")
        let row = try #require(wasted.split(separator: "\n").first { $0.contains("<code>/bin/tool</code>") }, "\(wasted.prefix(2000))")
        #expect(row.contains("400.0 kB") && row.contains("base docker-archive:base.tar") && row.contains(">overwritten<"), "\(row)")
        #expect(html.contains("overwritten by a later layer: 1 file, 400.0 kB"), "\(html)")
        // The base's tool and its copy were identical; the tool is replaced now.
        #expect(!html.contains("<table id=\"duplicates\">"), "no file of the image has a twin in another layer")
    }

    /// 100k files: small files are gathered per directory, the page stays well under
    /// 5 MB, and is the same twice.
    @Test func reportOf100kFilesIsSmallAndDeterministic() throws {
        let dir = try TempDir()
        // A docker-archive written directly (a build of 100k files would test the build).
        try run("python3", ["-c", """
            import hashlib, io, json, tarfile
            with tarfile.open('layer.tar', 'w', format=tarfile.USTAR_FORMAT) as t:
                for i in range(100000):
                    data = (b'%d' % i) * (1 + i % 50)
                    info = tarfile.TarInfo('data/d%03d/f%06d.txt' % (i % 400, i))
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
            h = hashlib.sha256()
            with open('layer.tar', 'rb') as f:
                for block in iter(lambda: f.read(1 << 20), b''): h.update(block)
            config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {},
                                 'rootfs': {'type': 'layers', 'diff_ids': ['sha256:' + h.hexdigest()]}}).encode()
            cname = hashlib.sha256(config).hexdigest() + '.json'
            manifest = json.dumps([{'Config': cname, 'RepoTags': ['kiln-test/many:v1'], 'Layers': ['layer.tar']}]).encode()
            with tarfile.open('img.tar', 'w') as t:
                for name, data in ((cname, config), ('manifest.json', manifest)):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    t.addfile(info, io.BytesIO(data))
                t.add('layer.tar')
            """], cwd: dir.path)
        let image = "docker-archive:" + dir.path + "/img.tar"
        try kiln(["report", image, "-o", dir.path + "/a.html"])
        try kiln(["report", image, "-o", dir.path + "/b.html"])
        let a = try dir.bytes("a.html")
        #expect(a.count < 5_000_000, "\(a.count) bytes")
        #expect(a == (try dir.bytes("b.html")))
        let html = String(decoding: a, as: UTF8.self)
        let boxes = html.components(separatedBy: "<div class=\"r ").count - 1
        #expect(boxes > 10 && boxes < 5000, "\(boxes) treemap boxes")
        #expect(html.contains("small file"))
        if Self.hasChromium {
            let url = "file://" + dir.path + "/a.html"
            let r = try run("/usr/bin/timeout", ["120", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                                 "--user-data-dir=" + dir.path + "/profile", "--dump-dom", url])
            #expect(r.stdout.contains("id=\"treemap\""))
        }
    }

    /// An output path that is a directory: one line, non-zero, before any work, and the
    /// directory (and for build, the image) untouched.
    @Test func anOutputThatIsADirectoryIsOneLine() throws {
        let dir = try TempDir()
        try dir.write("image.yaml", "name: kiln-test/dir\ncreated: 2024-01-01T00:00:00Z\ncontents: [app]\n")
        try dir.write("app/f", "x\n")
        try dir.write("taken/keep", "keep\n")
        try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/img.tar"])
        let r = try kiln(["report", "docker-archive:" + dir.path + "/img.tar", "-o", dir.path + "/taken"], check: false)
        #expect(r.status == 1 && r.stderr.hasPrefix("kiln: error: ") && r.stderr.contains("is a directory")
                && r.stderr.split(separator: "\n").count == 1, "\(r)")
        let b = try kiln(["build", dir.path + "/image.yaml", "-o", dir.path + "/new.tar", "--provenance", dir.path + "/taken"], check: false)
        #expect(b.status == 1 && b.stderr.hasPrefix("kiln: error: ") && b.stderr.contains("is a directory")
                && b.stderr.split(separator: "\n").count == 1, "\(b)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/new.tar"))
        #expect(try snapshot(dir.path + "/taken") == ["keep": Data("keep\n".utf8)])
        // An image that cannot be read: one line, exit 1, nothing written.
        let bad = try kiln(["report", "docker-archive:" + dir.path + "/absent.tar", "-o", dir.path + "/r.html"], check: false)
        #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1, "\(bad)")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/r.html"))
    }
}
