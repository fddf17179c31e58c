import Foundation
@testable import KilnImage
import KilnOCI
import Testing

/// The report's pieces that need no image: layers applied lexically with whiteouts, the
/// provenance's origin paths, the squarified layout and the byte formatting.
@Suite struct ImageReportTests {
    func entry(_ path: String, _ layer: Int, size: Int64 = 10, kind: ImageFiles.Kind = .file, digest: String? = nil) -> ImageFiles.Entry {
        ImageFiles.Entry(path: path, kind: kind, size: kind == .file ? size : 0, mode: 0o644, uid: 0, gid: 0, target: nil,
                         digest: digest.map { .sha256(Array($0.utf8)) }, layer: layer)
    }

    @Test func laterLayersOverwriteDeleteAndHide() {
        let layers: [[ImageFiles.Entry]] = [
            [entry("etc", 0, kind: .directory), entry("etc/a", 0, digest: "a"), entry("etc/b", 0), entry("opt/x/y", 0, size: 7),
             entry("var/cache/c1", 0, size: 3), entry("same", 0, digest: "s")],
            [entry("etc/a", 1, size: 20), entry("same", 1, digest: "s"), entry("var/cache/new", 1, size: 4)],
        ]
        let files = ImageFiles.apply(layers: layers, whiteouts: [[], ["etc/b", "opt/x"]], opaque: [[], ["var/cache"]])
        let visible = files.visible.map(\.path)
        #expect(visible == ["etc", "etc/a", "opt", "same", "var", "var/cache", "var/cache/new"], "\(visible)")
        let waste = Dictionary(uniqueKeysWithValues: files.wasted.map { ($0.entry.path, $0) })
        #expect(waste["etc/a"]?.why == .overwritten && waste["etc/a"]?.identical == false)
        #expect(waste["same"]?.why == .overwritten && waste["same"]?.identical == true)
        #expect(waste["etc/b"]?.why == .removed && waste["opt/x/y"]?.why == .removed && waste["var/cache/c1"]?.why == .removed)
        #expect(files.wasted.count == 5)
        #expect(files.visible.first { $0.path == "etc/a" }?.layer == 1)
    }

    @Test func originPathsAreTheHighestDirectoriesOfOneOrigin() {
        let paths = Provenance.originPaths([
            "app/bin/tool": "A", "app/share/doc": "A", "usr/lib/libc.so": "B", "usr/lib/libm.so": "B",
            "usr/bin/x": "A", "top": "C",
        ])
        #expect(paths["A"] == ["app", "usr/bin"])
        #expect(paths["B"] == ["usr/lib"])
        #expect(paths["C"] == ["top"])
        let layer = Provenance.Layer(source: .contents, origins: [
            Provenance.Origin(name: "A", files: 3, bytes: 0, paths: paths["A"]!),
            Provenance.Origin(name: "B", files: 2, bytes: 0, paths: paths["B"]!),
        ])
        #expect(layer.origin(of: "usr/bin/x") == "A" && layer.origin(of: "usr/lib/libm.so") == "B")
        #expect(layer.origin(of: "usr/lib/libm.so", index: layer.originIndex()) == "B")
    }

    @Test func squarifiedRectanglesFillTheBox() {
        let areas = [600.0, 600, 400, 400, 200, 200]
        let rects = ImageReport.squarify(areas, (0, 0, 60, 40))
        #expect(rects.count == areas.count)
        let total = rects.reduce(0) { $0 + $1.w * $1.h }
        #expect(abs(total - 2400) < 0.001)
        for (r, a) in zip(rects, areas) {
            #expect(abs(r.w * r.h - a) < 0.001)
            #expect(r.x >= -0.001 && r.y >= -0.001 && r.x + r.w <= 60.001 && r.y + r.h <= 40.001)
        }
    }

    @Test func bytesAreFormattedWithoutTheLocale() {
        #expect(formatBytes(0) == "0 B" && formatBytes(999) == "999 B")
        #expect(formatBytes(1000) == "1.0 kB" && formatBytes(1_550_000) == "1.6 MB")
        #expect(ImageReport.px(12.25) == "12.3px" || ImageReport.px(12.25) == "12.2px")
        #expect(ImageReport.px(40) == "40px")
    }
}
