import Foundation
import Testing
@testable import KilnBuild
import KilnArchive
#if canImport(Glibc)
import Glibc
#endif

/// The cache repo's portable layer key: the same inputs anywhere give the same key;
/// anything that changes the layer's bytes changes it; host identity never matters.
@Suite struct PortableKeyTests {
    /// A directory with two files, written at `dir`.
    private func makeTree(_ dir: String, hello: String = "hello\n") throws {
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        try hello.write(toFile: dir + "/hello", atomically: false, encoding: .utf8)
        try "two\n".write(toFile: dir + "/sub/two", atomically: false, encoding: .utf8)
    }

    private func key(_ dir: String, mtime: Int64 = 1, compression: Compression = .gzip,
                     memo: ContentDigestMemo? = nil, staging: Staging) throws -> String {
        var tree = FileTree()
        try tree.addHost(dir, at: "/app", xattrs: false)
        let layer = try TreeLayer(tree: tree, mtime: mtime)
        return try PortableKeyer(staging: staging, memo: memo).key(for: layer, compression: compression)
    }

    @Test func sameInputsAtOtherPathsAndTimesGiveTheSameKey() throws {
        let staging = try Staging()
        defer { staging.remove() }
        let a = NSTemporaryDirectory() + "/kiln-pk-a-\(getpid())", b = NSTemporaryDirectory() + "/kiln-pk-b-\(getpid())"
        defer { FileSystem.removeTree(a); FileSystem.removeTree(b) }
        try makeTree(a)
        try makeTree(b)
        // Other host mtimes (the tar's come from the spec): same key.
        var times = [timespec(tv_sec: 1000, tv_nsec: 0), timespec(tv_sec: 1000, tv_nsec: 0)]
        utimensat(AT_FDCWD, b + "/hello", &times, 0)
        let k = try key(a, staging: staging)
        #expect(k.count == 64)
        #expect(try key(b, staging: staging) == k)
        // What changes the layer's bytes changes the key.
        #expect(try key(a, mtime: 2, staging: staging) != k)
        #expect(try key(a, compression: .zstd, staging: staging) != k)
        try "hellO\n".write(toFile: b + "/hello", atomically: false, encoding: .utf8)
        #expect(try key(b, staging: staging) != k)
        chmod(a + "/sub/two", 0o755)
        #expect(try key(a, staging: staging) != k)
    }

    @Test func contentDigestsAreRememberedByStatIdentity() throws {
        let staging = try Staging()
        defer { staging.remove() }
        let dir = NSTemporaryDirectory() + "/kiln-pk-m-\(getpid())", cache = dir + "-cache"
        defer { FileSystem.removeTree(dir); FileSystem.removeTree(cache) }
        try makeTree(dir)
        try FileSystem.makeDirectories(cache)
        // Files older than the racy window are remembered.
        var old = [timespec(tv_sec: 1000, tv_nsec: 0), timespec(tv_sec: 1000, tv_nsec: 0)]
        utimensat(AT_FDCWD, dir + "/hello", &old, 0)
        utimensat(AT_FDCWD, dir + "/sub/two", &old, 0)
        sleep(2)  // the ctime (set by utimensat) leaves the racy window
        let memo = ContentDigestMemo(cacheRoot: cache)
        let k = try key(dir, memo: memo, staging: staging)
        try memo.save()
        let saved = try String(contentsOfFile: cache + "/content-digests.v1", encoding: .utf8)
        #expect(saved.split(separator: "\n").count == 2, "\(saved)")
        // A later build reads the digests back: the same key.
        #expect(try key(dir, memo: ContentDigestMemo(cacheRoot: cache), staging: staging) == k)
        // A file changed since (new ctime): hashed again, not taken from the memo.
        try "other\n".write(toFile: dir + "/hello", atomically: false, encoding: .utf8)
        #expect(try key(dir, memo: ContentDigestMemo(cacheRoot: cache), staging: staging) != k)
    }

    /// A layer whose files changed between the plan (and the hashing) and its build is
    /// built for this image but not offered to the cache repo under the old key.
    @Test func aLayerWhoseFilesChangedWhileBuiltIsNotShared() throws {
        let staging = try Staging()
        defer { staging.remove() }
        let dir = NSTemporaryDirectory() + "/kiln-pk-c-\(getpid())", cacheDir = dir + "-cache"
        defer { FileSystem.removeTree(dir); FileSystem.removeTree(cacheDir) }
        try makeTree(dir)
        let spec = try Spec.parse(text: "name: t/x\ncontents:\n  - \(dir)\n", path: dir + "/../spec.yaml")
        var builder = ImageBuilder(spec: spec, staging: staging)
        builder.cache = try LayerCache(root: cacheDir)
        builder.deferLayerMisses = true
        let image = try builder.plan()
        let deferred = ImageBuilder.deferredLayers(of: image)
        #expect(deferred.count == 1)
        let keyer = builder.portableKeyer()
        let keys = Dictionary(uniqueKeysWithValues: try deferred.map { ($0.localKey, try keyer.key(for: $0)) })

        // Unchanged: built and offered.
        var resolved = try builder.resolveDeferred(image, portableKeys: keys, remote: [:])
        #expect(resolved.built.count == 1 && resolved.fromRepo == 0)
        guard case .stored = resolved.image.layers.last! else { Issue.record("not settled"); return }

        // Changed after the plan, same size (so the tar is still written): not offered.
        FileSystem.removeTree(cacheDir)
        builder.cache = try LayerCache(root: cacheDir)
        let image2 = try builder.plan()
        let deferred2 = ImageBuilder.deferredLayers(of: image2)
        let keys2 = Dictionary(uniqueKeysWithValues: try deferred2.map { ($0.localKey, try keyer.key(for: $0)) })
        try "HELLO\n".write(toFile: dir + "/hello", atomically: false, encoding: .utf8)
        resolved = try builder.resolveDeferred(image2, portableKeys: keys2, remote: [:])
        #expect(resolved.built.isEmpty)
    }

    @Test func justWrittenFilesAreNotRemembered() throws {
        let staging = try Staging()
        defer { staging.remove() }
        let dir = NSTemporaryDirectory() + "/kiln-pk-r-\(getpid())", cache = dir + "-cache"
        defer { FileSystem.removeTree(dir); FileSystem.removeTree(cache) }
        try makeTree(dir)
        try FileSystem.makeDirectories(cache)
        let memo = ContentDigestMemo(cacheRoot: cache)
        _ = try key(dir, memo: memo, staging: staging)
        try memo.save()
        #expect(!FileManager.default.fileExists(atPath: cache + "/content-digests.v1"))
    }
}
