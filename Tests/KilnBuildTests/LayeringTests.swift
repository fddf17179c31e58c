import Testing
@testable import KilnBuild

@Suite struct LayeringTests {
    func file(_ n: Int) -> FileNode { FileNode(.file(.inline([UInt8](repeating: 1, count: n))), mode: 0o644) }

    /// Three "closures": app1 and app2 share libc; app1 alone has a big lib; plus /etc/passwd from users.
    func sample() -> (FileTree, [String: Set<Int>]) {
        var t = FileTree()
        var prov: [String: Set<Int>] = [:]
        func add(_ p: String, _ n: Int, _ items: Set<Int>) {
            t.insert(p, file(n))
            if !items.isEmpty { prov[p] = items }
        }
        add("usr/lib/libc.so", 2000, [0, 1])
        add("usr/lib/libbig.so", 5000, [0])
        add("usr/bin/app1", 100, [0])
        add("usr/bin/app2", 300, [1])
        add("opt/data/x", 10, [2])
        add("etc/passwd", 5, [])
        return (t, prov)
    }

    func names(_ plan: LayerPlan) -> [[String]] {
        plan.layers.map { $0.entries(mtime: 0).map(\.header.name) }
    }

    @Test func autoGivesSharedFilesTheirOwnLayerAndKeepsCustomisationLast() throws {
        let (t, prov) = sample()
        let plan = try t.split(provenance: prov, strategy: .auto, budget: 10)
        #expect(names(plan) == [
            ["usr/", "usr/lib/", "usr/lib/libc.so"],
            ["usr/", "usr/bin/", "usr/bin/app1", "usr/lib/", "usr/lib/libbig.so"],
            ["usr/", "usr/bin/", "usr/bin/app2"],
            ["opt/", "opt/data/", "opt/data/x"],
            ["etc/", "etc/passwd"],
        ])
        // Deterministic.
        #expect(names(try t.split(provenance: prov, strategy: .auto, budget: 10)) == names(plan))
    }

    @Test func budgetMergesTheSmallestGroups() throws {
        let (t, prov) = sample()
        let plan = try t.split(provenance: prov, strategy: .auto, budget: 3)
        #expect(plan.layers.count == 3)
        // The largest group (app1 + libbig) keeps its own layer; the rest share one; etc last.
        #expect(names(plan)[0].contains("usr/lib/libbig.so"))
        #expect(names(plan)[1].contains("usr/lib/libc.so") && names(plan)[1].contains("opt/data/x"))
        #expect(names(plan)[2] == ["etc/", "etc/passwd"])
        // Every file lands exactly once.
        let files = names(plan).flatMap { $0 }.filter { !$0.hasSuffix("/") }
        #expect(files.sorted() == ["etc/passwd", "opt/data/x", "usr/bin/app1", "usr/bin/app2", "usr/lib/libbig.so", "usr/lib/libc.so"])
        #expect(try t.split(provenance: prov, strategy: .auto, budget: 1).layers.count == 1)
    }

    @Test func popularityPutsTheMostSharedFirst() throws {
        let (t, prov) = sample()
        let plan = try t.split(provenance: prov, strategy: .popularity, budget: 3)
        #expect(names(plan)[0] == ["usr/", "usr/lib/", "usr/lib/libc.so"])
    }

    @Test func explicitGroupsThenTheRest() throws {
        let (t, prov) = sample()
        let plan = try t.split(provenance: prov, strategy: .explicit([["/usr/lib/**"], ["/opt/**", "/etc/*"]]), budget: 10)
        #expect(names(plan) == [
            ["usr/", "usr/lib/", "usr/lib/libbig.so", "usr/lib/libc.so"],
            ["etc/", "etc/passwd", "opt/", "opt/data/", "opt/data/x"],
            ["usr/", "usr/bin/", "usr/bin/app1", "usr/bin/app2"],
        ])
        #expect(throws: BuildError.self) { try t.split(provenance: prov, strategy: .explicit([["/usr/lib/**"], ["/opt/**"]]), budget: 2) }
    }

    @Test func mergeKeepsExplicitDirectoryMetadataOverImplicitParents() {
        var a = FileTree()
        a.insert("opt", FileNode(.directory, mode: 0o700, uid: 5))
        var b = FileTree()
        b.insert("opt/x", file(1))
        a.merge(b)
        #expect(a["opt"]?.mode == 0o700 && a["opt"]?.uid == 5)
        #expect(a["opt/x"] != nil)
    }
}
