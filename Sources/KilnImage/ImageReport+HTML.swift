import Foundation
import KilnOCI

/// The report as one HTML page with its CSS and script inline: no network, no external
/// script or font (the system's sans-serif and monospace faces). The treemap is drawn
/// as positioned boxes computed here, so the page shows it even with scripts off; the
/// small script only highlights a layer's boxes when its row is clicked and filters the
/// file table. Lists are capped (the 100 largest of each kind) and sorted; no date,
/// host or path of the machine goes in, so the bytes depend on the image only.
extension ImageReport {
    public static let treemapWidth = 1200.0
    public static let treemapHeight = 640.0
    /// How many rows each list shows.
    public static let listLimit = 100

    public func html() -> String {
        var h = HTMLWriter()
        let title = "Kiln report: " + reference
        h.raw("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
        h.raw("<meta name=\"generator\" content=\"kiln report\">\n<title>")
        h.text(title)
        h.raw("</title>\n<style>\n\(Self.css)</style>\n</head>\n<body>\n<h1>")
        h.text(title)
        h.raw("</h1>\n")
        summary(&h)
        treemap(&h)
        layerTable(&h)
        largestFiles(&h)
        waste(&h)
        packageTable(&h)
        configSection(&h)
        h.raw("<script>\n\(Self.script)</script>\n</body>\n</html>\n")
        return h.out
    }

    private func summary(_ h: inout HTMLWriter) {
        let visibleFiles = files.visible.filter { $0.kind == .file }
        h.raw("<table class=\"kv\">\n")
        func row(_ k: String, _ v: String, code: Bool = false) {
            h.raw("<tr><th>"); h.text(k); h.raw(code ? "</th><td><code>" : "</th><td>")
            h.text(v); h.raw(code ? "</code></td></tr>\n" : "</td></tr>\n")
        }
        row("Image", reference)
        row("Manifest", manifestDigest.description, code: true)
        row("Platform", config.platform.description)
        row("Layers", "\(layers.count)")
        row("Files", "\(visibleFiles.count) (\(formatBytes(visibleFiles.reduce(0) { $0 + $1.size })) in the image, \(formatBytes(totalBytes)) shipped in layers)")
        row("Wasted", "\(formatBytes(wastedBytes)) (overwritten, deleted or duplicated across layers)")
        row("Provenance", provenance == nil ? "not known: files are named by layer" : "Kiln provenance document (\(Provenance.mediaType))")
        h.raw("</table>\n")
    }

    private func treemap(_ h: inout HTMLWriter) {
        h.raw("<h2 id=\"treemap-title\">Treemap: layers, origins, directories</h2>\n")
        let rects = Self.layout(treemapTree(), width: Self.treemapWidth, height: Self.treemapHeight)
        h.raw("<div id=\"treemap\" style=\"width:\(Self.px(Self.treemapWidth));height:\(Self.px(Self.treemapHeight))\">\n")
        for r in rects {
            let hue = (r.layer * 67 + 200) % 360
            let light = min(30 + r.depth * 14, 88)
            h.raw("<div class=\"r \(r.kind)\(r.isContainer ? " c" : "")\" data-layer=\"\(r.layer)\" style=\"left:\(Self.px(r.x));top:\(Self.px(r.y));width:\(Self.px(r.w));height:\(Self.px(r.h));background:hsl(\(hue),55%,\(light)%);color:\(light > 58 ? "#111" : "#fff")\" title=\"")
            h.text(r.title)
            h.raw("\">")
            if let label = r.label { h.text(label) }
            h.raw("</div>\n")
        }
        h.raw("</div>\n")
    }

    private func layerTable(_ h: inout HTMLWriter) {
        h.raw("<h2>Layers</h2>\n<table id=\"layers\">\n<tr><th>#</th><th>layer</th><th>stored</th><th>files</th><th>bytes</th><th>origin</th><th>created by</th></tr>\n")
        for l in layers {
            h.raw("<tr data-layer=\"\(l.index)\"><td>\(l.index + 1)</td><td><code title=\"")
            h.text(l.digest.description + "\ndiffID " + l.diffID.description)
            h.raw("\">\(l.shortName)</code></td><td>\(formatBytes(l.size))</td><td>\(l.files)</td><td>\(formatBytes(l.bytes))</td><td>")
            if let p = l.provenance {
                h.text(p.name)
                let parts = (p.items ?? []).map { "\($0.name): \($0.files) files, \(formatBytes($0.bytes))" }
                    + (p.origins ?? []).filter { o in !(p.items ?? []).contains { $0.name == o.name } }.map { "\($0.name): \($0.files) files, \(formatBytes($0.bytes))" }
                    + ((p.packages ?? []).count > 1 ? (p.packages ?? []).map { "\($0.name) \($0.version): \($0.files) files, \(formatBytes($0.bytes))" } : [])
                if !parts.isEmpty {
                    h.raw("<ul>")
                    for part in parts { h.raw("<li>"); h.text(part); h.raw("</li>") }
                    h.raw("</ul>")
                }
            } else {
                h.raw("<span class=\"dim\">unknown</span>")
            }
            h.raw("</td><td>")
            h.text(l.createdBy ?? "")
            h.raw("</td></tr>\n")
        }
        h.raw("</table>\n")
    }

    private func largestFiles(_ h: inout HTMLWriter) {
        let top = files.visible.filter { $0.kind == .file }
            .sorted { $0.size != $1.size ? $0.size > $1.size : $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
            .prefix(Self.listLimit)
        h.raw("<h2>Largest files</h2>\n<input id=\"filter\" placeholder=\"filter paths\">\n<table id=\"largest\">\n<tr><th>size</th><th>path</th><th>layer</th><th>origin</th></tr>\n")
        for f in top {
            h.raw("<tr><td>\(formatBytes(f.size))</td><td><code>/")
            h.text(f.path)
            h.raw("</code></td><td><code>\(layers[f.layer].shortName)</code></td><td>")
            h.text(origin(layer: f.layer, path: f.path))
            h.raw("</td></tr>\n")
        }
        h.raw("</table>\n")
    }

    private func waste(_ h: inout HTMLWriter) {
        let overwritten = files.wasted.filter { $0.why == .overwritten }
        let removed = files.wasted.filter { $0.why == .removed }
        func sum(_ w: [ImageFiles.Waste]) -> Int64 { w.reduce(0) { $0 + $1.entry.size } }
        h.raw("<h2>Wasted bytes: \(formatBytes(wastedBytes))</h2>\n<ul>\n")
        func fileCount(_ n: Int) -> String { n == 1 ? "1 file" : "\(n) files" }
        h.raw("<li>overwritten by a later layer: \(fileCount(overwritten.count)), \(formatBytes(sum(overwritten)))</li>\n")
        h.raw("<li>deleted by a later layer: \(fileCount(removed.count)), \(formatBytes(sum(removed)))</li>\n")
        // Counted by content: one file shipped in three layers is one line of the table.
        h.raw("<li>identical files in several layers: \(duplicates.count == 1 ? "1 content" : "\(duplicates.count) contents"), \(formatBytes(duplicates.reduce(0) { $0 + $1.wasted }))</li>\n</ul>\n")
        let sorted = files.wasted.filter { $0.entry.size > 0 }.sorted { a, b in
            a.entry.size != b.entry.size ? a.entry.size > b.entry.size
                : a.entry.layer != b.entry.layer ? a.entry.layer < b.entry.layer
                : a.entry.path.utf8.lexicographicallyPrecedes(b.entry.path.utf8)
        }.prefix(Self.listLimit)
        if !sorted.isEmpty {
            h.raw("<table id=\"wasted\">\n<tr><th>size</th><th>path</th><th>shipped in</th><th>hidden by</th><th>how</th></tr>\n")
            for w in sorted {
                h.raw("<tr><td>\(formatBytes(w.entry.size))</td><td><code>/")
                h.text(w.entry.path)
                h.raw("</code></td><td><code>\(layers[w.entry.layer].shortName)</code> ")
                h.text(origin(layer: w.entry.layer, path: w.entry.path))
                h.raw("</td><td><code>\(layers[w.by].shortName)</code></td><td>\(w.why == .removed ? "deleted" : w.identical ? "overwritten (identical bytes)" : "overwritten")</td></tr>\n")
            }
            h.raw("</table>\n")
        }
        if !duplicates.isEmpty {
            h.raw("<table id=\"duplicates\">\n<tr><th>wasted</th><th>size</th><th>copies</th><th>digest</th></tr>\n")
            for d in duplicates.prefix(Self.listLimit) {
                h.raw("<tr><td>\(formatBytes(d.wasted))</td><td>\(formatBytes(d.size))</td><td>")
                for (i, p) in d.paths.enumerated() {
                    if i > 0 { h.raw("<br>") }
                    h.raw("<code>\(layers[p.layer].shortName)</code> <code>/")
                    h.text(p.path)
                    h.raw("</code>")
                }
                h.raw("</td><td><code>\(d.digest.hex.prefix(12))</code></td></tr>\n")
            }
            h.raw("</table>\n")
        }
    }

    private func packageTable(_ h: inout HTMLWriter) {
        h.raw("<h2>Packages</h2>\n")
        guard !packages.isEmpty else {
            h.raw("<p class=\"dim\">No SBOM or provenance lists packages for this image.</p>\n")
            return
        }
        h.raw("<table id=\"packages\">\n<tr><th>package</th><th>version</th><th>license</th></tr>\n")
        for p in packages {
            h.raw("<tr><td>"); h.text(p.name); h.raw("</td><td>"); h.text(p.version); h.raw("</td><td>")
            h.text(p.license ?? "unknown"); h.raw("</td></tr>\n")
        }
        h.raw("</table>\n")
    }

    private func configSection(_ h: inout HTMLWriter) {
        h.raw("<h2>Config</h2>\n<pre id=\"config\">")
        var pretty = String(decoding: configBytes, as: UTF8.self)
        if let object = try? JSONSerialization.jsonObject(with: Data(configBytes)),
           let data = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
            pretty = String(decoding: data, as: UTF8.self)
        }
        h.text(pretty)
        h.raw("</pre>\n")
    }

    /// A pixel length with one decimal, from integers (no locale, no float printing).
    static func px(_ v: Double) -> String {
        let tenths = Int((v * 10).rounded())
        return tenths % 10 == 0 ? "\(tenths / 10)px" : "\(tenths / 10).\(tenths % 10)px"
    }

    static let css = """
        body{font:14px/1.4 sans-serif;margin:20px;color:#222;background:#fff}
        h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:24px 0 8px}
        table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
        th{background:#f3f3f3}table.kv th{width:110px}code,pre{font-family:monospace;font-size:12px}
        pre{background:#f7f7f7;border:1px solid #ddd;padding:8px;overflow:auto;max-height:480px}
        ul{margin:2px 0;padding-left:18px}.dim{color:#888}
        #treemap{position:relative;border:1px solid #999;background:#eee;overflow:hidden}
        #treemap .r{position:absolute;box-sizing:border-box;border:1px solid rgba(0,0,0,.35);overflow:hidden;white-space:nowrap;
        text-overflow:ellipsis;font-size:11px;line-height:14px;padding:0 2px}
        #treemap .c{font-weight:bold}#treemap .hl{outline:3px solid #f80;z-index:1}
        #layers tr[data-layer]{cursor:pointer}#layers tr.sel{background:#fff3e0}
        #filter{margin:4px 0;width:300px}

        """

    static let script = """
        (function(){
          var rows=document.querySelectorAll('#layers tr[data-layer]');
          rows.forEach(function(row){row.addEventListener('click',function(){
            var l=row.getAttribute('data-layer'),on=!row.classList.contains('sel');
            rows.forEach(function(r){r.classList.remove('sel')});
            document.querySelectorAll('#treemap .layer').forEach(function(b){
              b.classList.toggle('hl',on&&b.getAttribute('data-layer')===l)});
            if(on)row.classList.add('sel');
          })});
          var f=document.getElementById('filter');
          if(f)f.addEventListener('input',function(){
            var q=f.value.toLowerCase();
            document.querySelectorAll('#largest tr').forEach(function(r,i){
              if(i>0)r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':''})});
        })();

        """
}

/// Builds the page as one string, escaping text for HTML (&, <, >, quotes).
struct HTMLWriter {
    var out = ""

    mutating func raw(_ s: String) { out += s }

    mutating func text(_ s: String) {
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
    }
}
