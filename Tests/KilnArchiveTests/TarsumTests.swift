import Foundation
import KilnArchive
import Testing

/// Docker's published tarsum vectors (formats.md, "Docker legacy tarsum").
@Suite struct TarsumTests {
    static let emptyFileV0 = "tarsum+sha256:626c4a2e9a467d65c33ae81f7f3dedd4de8ccaee72af73223c4bc4718cbc7bbd"
    static let emptyFileV1 = "tarsum.v1+sha256:6ffd43a1573a9913325b4918e124ee982a99c0f3cba90fc032a65f5e20bdd465"
    static let anotherV1 = "tarsum.v1+sha256:862964db95e0fa7e42836ae4caab3576ab1df8d275720a45bdd01a5a3730cc63"

    static let emptyFile = TarHeader(name: "file.txt", kind: .regular, mode: 0, size: 0, mtime: 0)
    static let another = TarHeader(name: "another.txt", kind: .regular, mode: 0, uid: 1000, gid: 1000, size: 4,
                                   uname: "slartibartfast", gname: "users")

    @Test func publishedVectorV0() throws {
        let tar = try makeTar([(Self.emptyFile, [])])
        #expect(try Tarsum.compute(reader: BufferReader(tar), version: .v0) == Self.emptyFileV0)
    }

    @Test func publishedVectorV1() throws {
        let tar = try makeTar([(Self.emptyFile, [])])
        #expect(try Tarsum.compute(reader: BufferReader(tar), version: .v1) == Self.emptyFileV1)
    }

    @Test func publishedVectorWithOwnerAndBody() throws {
        let tar = try makeTar([(Self.another, Array("test".utf8))])
        #expect(try Tarsum.compute(reader: BufferReader(tar), version: .v1) == Self.anotherV1)
    }

    @Test func incrementalMatchesPublishedVectors() {
        var v0 = Tarsum(version: .v0)
        v0.beginEntry(Self.emptyFile)
        #expect(v0.finish() == Self.emptyFileV0)

        var v1 = Tarsum(version: .v1)
        v1.beginEntry(Self.another)
        v1.update(Array("te".utf8))
        v1.update(Array("st".utf8))
        #expect(v1.finish() == Self.anotherV1)
    }

    /// The same vectors from archives made by GNU tar, plain and compressed.
    @Test func gnuTarCrossCheck() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        try sh("mkdir src && : > src/file.txt && printf test > src/another.txt && chmod 0 src/file.txt src/another.txt", in: dir.path)
        try sh("tar --format=ustar --mtime=@0 --owner=root:0 --group=root:0 -cf empty.tar -C src file.txt", in: dir.path)
        try sh("tar --format=gnu --mtime=@1234 --owner=slartibartfast:1000 --group=users:1000 -cf another.tar -C src another.txt", in: dir.path)
        try sh("gzip -9 -c empty.tar > empty.tar.gz && zstd -q -c empty.tar > empty.tar.zst", in: dir.path)

        for name in ["empty.tar", "empty.tar.gz", "empty.tar.zst"] {
            #expect(try Tarsum.compute(reader: FileReader(path: dir.file(name)), version: .v0) == Self.emptyFileV0)
            #expect(try Tarsum.compute(reader: FileReader(path: dir.file(name)), version: .v1) == Self.emptyFileV1)
        }
        // v1 ignores mtime, so GNU tar's --mtime does not matter; uname/gname are
        // hashed empty whatever the archive says.
        #expect(try Tarsum.compute(reader: FileReader(path: dir.file("another.tar")), version: .v1) == Self.anotherV1)
    }

    @Test func emptyArchiveHashesNothing() throws {
        let tar = try makeTar([])
        #expect(try Tarsum.compute(reader: BufferReader(tar), version: .v1)
            == "tarsum.v1+sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var t = Tarsum(version: .v0)
        #expect(t.finish() == "tarsum+sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    /// A writer computing the tarsum as it writes must agree with reading back.
    @Test func incrementalMatchesComputeOnRichArchive() throws {
        let longName = "deep/" + String(repeating: "d", count: 120) + "/" + String(repeating: "n", count: 150) + ".txt"
        let entries: [(TarHeader, [UInt8])] = [
            (TarHeader(name: "dir/", kind: .directory, mode: 0o755, mtime: 1_700_000_000), []),
            (TarHeader(name: "dir/a", kind: .regular, mode: 0o4755, uid: 3_000_000, gid: 12, size: 5, mtime: -5,
                       uname: String(repeating: "u", count: 40), xattrs: ["user.b": [1, 2], "security.capability": [0, 9], "user.empty": []]), Array("hello".utf8)),
            (TarHeader(name: longName, kind: .regular, size: 300_000, mtime: 99), sampleData(300_000)),
            (TarHeader(name: "dir/link", kind: .symlink, mode: 0o777, linkName: String(repeating: "t", count: 120)), []),
            (TarHeader(name: "dir/hard", kind: .hardlink, linkName: "dir/a"), []),
            (TarHeader(name: "dev/null", kind: .charDevice, mode: 0o666, devMajor: 1, devMinor: 3), []),
            (TarHeader(name: "dir/a", kind: .regular, size: 1), [7]), // duplicates count twice
        ]
        let tar = try makeTar(entries)
        for version in TarsumVersion.allCases {
            var t = Tarsum(version: version)
            for (h, body) in entries {
                t.beginEntry(h)
                t.update(body)
            }
            let incremental = t.finish()
            #expect(try Tarsum.compute(reader: BufferReader(tar), version: version) == incremental)
            let gz = try compress(tar) { GzipWriter($0) }
            #expect(try Tarsum.compute(reader: BufferReader(gz), version: version) == incremental)
        }
    }

    @Test func fieldSensitivity() throws {
        func sum(_ h: TarHeader, _ v: TarsumVersion) -> String {
            var t = Tarsum(version: v)
            t.beginEntry(h)
            return t.finish()
        }
        var h = TarHeader(name: "f", kind: .regular, mode: 0o644, uid: 1, mtime: 10, uname: "alice")
        let base0 = sum(h, .v0), base1 = sum(h, .v1)
        h.uname = "bob"
        h.gname = "staff"
        #expect(sum(h, .v0) == base0) // owner names are hashed empty
        h.mtime = 11
        #expect(sum(h, .v0) != base0) // v0 hashes mtime
        #expect(sum(h, .v1) == base1) // v1 does not
        h.xattrs = ["user.x": [1]]
        #expect(sum(h, .v1) != base1) // v1 hashes xattrs
        h.xattrs = ["user.x": []]
        #expect(sum(h, .v1) == base1) // an empty xattr vanishes, as in Go's reader
    }

    /// Go's reader reports a pax global header as an entry of its own (typeflag
    /// `g`, zero time, size 0): Docker's tarsum hashes it.
    @Test func paxGlobalHeaderCountsAsAnEntryLikeGo() throws {
        // What `git archive` writes first: a global header with a comment (plus,
        // here, a uid that a POSIX reader applies to the entries after it).
        let tar = try paxGlobalHeader([("comment", "abc"), ("uid", "7"), ("SCHILY.xattr.user.g", "v")])
            + makeTar([(TarHeader(name: "f", kind: .regular, mode: 0o644, size: 2), Array("hi".utf8))])
        let entries = try readTar(tar)
        #expect(entries.map(\.0.name) == ["f"])
        #expect(entries.first?.0.uid == 7)
        #expect(entries.first?.0.xattrs == ["user.g": Array("v".utf8)])

        let xattr = TarRawHeader.Xattr(key: Array("user.g".utf8), value: Array("v".utf8))
        let global = TarRawHeader(name: Array("pax_global_header".utf8), typeflag: UInt8(ascii: "g"),
                                  mtime: -62_135_596_800, xattrs: [xattr])
        for version in TarsumVersion.allCases {
            var t = Tarsum(version: version)
            t.beginEntry(raw: global)
            t.beginEntry(TarHeader(name: "f", kind: .regular, mode: 0o644, size: 2)) // uid 0: Go ignores globals
            t.update(Array("hi".utf8))
            #expect(try Tarsum.compute(reader: BufferReader(tar), version: version) == t.finish())
        }
    }

    @Test func versionFromChecksum() {
        #expect(TarsumVersion(checksum: Self.emptyFileV0) == .v0)
        #expect(TarsumVersion(checksum: Self.anotherV1) == .v1)
        #expect(TarsumVersion(checksum: "tarsum.dev+sha256:00") == nil)
        #expect(TarsumVersion(checksum: "tarsum+md5:00") == nil)
    }
}
