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
