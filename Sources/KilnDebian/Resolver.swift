/// The packages to install for a set of requests, and why.
public struct Resolution: Sendable {
    /// Every package to install, sorted by name (then architecture).
    public var packages: [PackageRecord]
    /// Package name → names of resolved packages that depend on it (sorted); every
    /// resolved package has an entry. Used as popularity when splitting into layers.
    public var dependents: [String: [String]]
    /// Installed (base image) packages that satisfied a request or a dependency (sorted).
    public var satisfiedByInstalled: [String]
    /// Package name → one chain of real package names from a request to it,
    /// e.g. `["python3", "python3.11", "libpython3.11-stdlib"]`.
    public var reasons: [String: [String]]
}

/// apt's choice of packages, implemented without apt: candidates, dependency closure,
/// alternatives, virtual packages, installed packages and conflicts.
///
/// - Candidates: packages of the image architecture or `all`; among versions of one name
///   the highest wins, ties going to the lower `repositoryIndex` (apt's candidate with
///   equal pins, sources in order). `name=version` pins exactly.
/// - Pre-Depends and Depends (and Recommends when asked; an unsatisfiable recommendation
///   is skipped, as apt does) are followed breadth-first in field order, so the result is
///   deterministic. A relation the candidate does not satisfy takes the highest version
///   that does. There is no backtracking: a version chosen earlier that a later relation
///   rejects is an error, as is a Conflicts/Breaks between two chosen packages.
/// - Alternatives: the first already chosen or installed wins, else the first that can be
///   satisfied without a Conflicts/Breaks against a chosen package (apt passes over those
///   too), else the first that can be satisfied.
/// - Virtual packages (Policy §7.5): a versioned dependency is satisfied only by a
///   versioned Provides whose version satisfies it; among several providers the one whose
///   name sorts first is taken. Packages the base already has are not reinstalled as
///   providers.
/// - Installed packages of the base satisfy relations they meet and are not installed
///   again; one that a relation rejects is an error (the base is not upgraded implicitly).
/// - `Essential: yes` packages are not added implicitly.
public struct Resolver: Sendable {
    let architecture: String
    /// Candidate-architecture records sorted by name, then version (highest first), then
    /// repository index, architecture, filename.
    let records: SortedRecords
    let byName: [String: Range<Int>]
    /// Virtual name → providing records, in `records` order (name, then version).
    let providers: [String: [Provider]]
    /// Installed packages by name, the native or `all` one when several architectures are.
    let installed: [String: InstalledPackage]
    let installedProviders: [String: [(package: String, version: DebianVersion?)]]

    /// The available records in sorted order without copying them: a record is a large
    /// struct and the index holds tens of thousands.
    struct SortedRecords: Sendable {
        let all: [PackageRecord]
        let order: [Int]
        var count: Int { order.count }
        subscript(i: Int) -> PackageRecord {
            _read { yield all[order[i]] }
        }
    }

    struct Provider: Sendable {
        let record: Int
        let version: DebianVersion?
    }

    public init(available: [PackageRecord], installed: [InstalledPackage] = [], architecture: String) {
        self.architecture = architecture
        // Sort indices, not the records: a record is a large struct and moving it during
        // the sort costs more than the comparisons.
        var order = available.indices.filter { available[$0].architecture == architecture || available[$0].architecture == "all" }
        // Names compared from their own array, and fields read in place: copying a record
        // per comparison would dominate in debug builds.
        let names = available.map(\.name)
        order.sort { i, j in
            if names[i] != names[j] { return names[i] < names[j] }
            let c = DebianVersion.compare(available[i].version, available[j].version)
            if c != 0 { return c > 0 }
            if available[i].repositoryIndex != available[j].repositoryIndex {
                return available[i].repositoryIndex < available[j].repositoryIndex
            }
            if available[i].architecture != available[j].architecture {
                return available[i].architecture < available[j].architecture
            }
            if available[i].filename != available[j].filename { return available[i].filename < available[j].filename }
            return available[i].sha256 < available[j].sha256
        }
        let usable = SortedRecords(all: available, order: order)
        var byName: [String: Range<Int>] = [:]
        byName.reserveCapacity(usable.count)
        var providers: [String: [Provider]] = [:]
        var start = 0
        for i in 0..<usable.count {
            let name = usable[i].name
            if i + 1 == usable.count || usable[i + 1].name != name {
                byName[name] = start..<(i + 1)
                start = i + 1
            }
            for p in usable[i].provides {
                providers[p.name, default: []].append(Provider(record: i, version: p.constraint?.version))
            }
        }
        self.records = usable
        self.byName = byName
        self.providers = providers

        var inst: [String: InstalledPackage] = [:]
        var instProviders: [String: [(package: String, version: DebianVersion?)]] = [:]
        let sortedInstalled = installed.sorted { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
        for p in sortedInstalled {
            let native = p.architecture == architecture || p.architecture == "all"
            if let existing = inst[p.name], existing.architecture == architecture || existing.architecture == "all" || !native {
                continue
            }
            inst[p.name] = p
        }
        for p in inst.values.sorted(by: { $0.name < $1.name }) {
            for v in p.provides {
                instProviders[v.name, default: []].append((p.name, v.constraint?.version))
            }
        }
        self.installed = inst
        self.installedProviders = instProviders
    }

    /// Resolves `requests` (and, with `recommends`, their Recommends) into the packages to
    /// install. Throws `ResolveError` naming the request's origin or the chain of packages.
    public func resolve(_ requests: [PackageRequest], recommends: Bool = false) throws(ResolveError) -> Resolution {
        var run = Run(resolver: self)
        try run.request(requests)
        try run.close(recommends: recommends)
        try run.checkConflicts()
        return run.resolution()
    }

    // MARK: shared helpers

    /// Whether an architecture qualifier can be met in a single-architecture image:
    /// none, `any`, `native`, the image's or `all`. Foreign-architecture packages are not
    /// candidates, so a dependency on one cannot be satisfied.
    func archAllowed(_ dep: PackageDependency) -> Bool {
        guard let q = dep.archQualifier else { return true }
        return q == "any" || q == "native" || q == architecture || q == "all"
    }

    /// A real package satisfies `dep` by name and version; `:any` also needs
    /// `Multi-Arch: allowed` (dpkg's rule for the `:any` qualifier).
    func recordSatisfies(_ i: Int, _ dep: PackageDependency) -> Bool {
        let r = records[i]
        guard r.name == dep.name else { return false }
        if let c = dep.constraint, !c.allows(r.version) { return false }
        if dep.archQualifier == "any" && r.multiArch != "allowed" { return false }
        return true
    }

    /// Policy §7.5 and apt: an unversioned dependency is satisfied by any Provides of the
    /// name; a versioned one only by a versioned Provides whose version satisfies it.
    static func provideSatisfies(_ provided: DebianVersion?, _ dep: PackageDependency) -> Bool {
        guard let c = dep.constraint else { return true }
        guard let v = provided else { return false }
        return c.allows(v)
    }

    /// Versions of `name` available for the image, highest first, without repeats.
    func availableVersions(_ name: String) -> [String] {
        guard let range = byName[name] else { return [] }
        var out: [String] = []
        var last: DebianVersion?
        for i in range where last != records[i].version {
            out.append(records[i].version.description)
            last = records[i].version
        }
        return out
    }

    /// Up to three known names closest to `name` by edit distance (apt's "did you mean"
    /// is similar in spirit): real, virtual and installed names.
    func suggestions(for name: String) -> [String] {
        let target = Array(name.utf8)
        let limit = max(2, target.count / 3)
        var scored: [(Int, String)] = []
        func consider(_ candidate: String) {
            let c = candidate.utf8
            guard abs(c.count - target.count) <= limit else { return }
            if let d = Self.editDistance(target, Array(c), limit: limit) { scored.append((d, candidate)) }
        }
        for n in byName.keys { consider(n) }
        for n in providers.keys where byName[n] == nil { consider(n) }
        for n in installed.keys where byName[n] == nil && providers[n] == nil { consider(n) }
        scored.sort { $0 < $1 }
        return scored.prefix(3).map(\.1)
    }

    /// Levenshtein distance, or nil when it exceeds `limit` (stops once a whole row does).
    static func editDistance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int? {
        if a.isEmpty || b.isEmpty {
            let d = max(a.count, b.count)
            return d <= limit ? d : nil
        }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            var rowMin = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                rowMin = min(rowMin, cur[j])
            }
            if rowMin > limit { return nil }
            swap(&prev, &cur)
        }
        return prev[b.count] <= limit ? prev[b.count] : nil
    }
}

/// The state of one `resolve` call.
private struct Run {
    let r: Resolver
    /// Real package name → index in `r.records`.
    var chosen: [String: Int] = [:]
    /// Choice order, which is also the breadth-first queue.
    var queue: [Int] = []
    var reasons: [String: [String]] = [:]
    var dependents: [String: Set<String>] = [:]
    var satisfied: Set<String> = []
    /// Virtual name → chosen records providing it.
    var chosenProviders: [String: [Resolver.Provider]] = [:]
    /// Name → the Conflicts and Breaks of chosen packages that name it.
    var conflictsOn: [String: [(by: Int, relation: PackageDependency)]] = [:]
    /// Requested name → the request (for origins in messages).
    var requested: [String: PackageRequest] = [:]

    init(resolver: Resolver) { r = resolver }

    // MARK: requests

    /// Pinned requests first, so that dependencies see the pinned versions, then plain ones.
    mutating func request(_ requests: [PackageRequest]) throws(ResolveError) {
        for req in requests where req.version != nil { try pinned(req) }
        for req in requests where req.version == nil { try plain(req) }
    }

    private mutating func pinned(_ req: PackageRequest) throws(ResolveError) {
        let text = req.version!
        let version: DebianVersion
        do { version = try DebianVersion(text) } catch {
            throw .invalidRequest("\(req.name)=\(text)", origin: req.origin, reason: "\(error)")
        }
        if let earlier = requested[req.name] {
            if let v = earlier.version, (try? DebianVersion(v)) == version { return }
            throw .conflictingRequests(req.name, first: spec(earlier), firstOrigin: earlier.origin,
                                       second: spec(req), secondOrigin: req.origin)
        }
        requested[req.name] = req
        if let inst = r.installed[req.name], inst.version == version {
            satisfied.insert(inst.name)
            return
        }
        guard let range = r.byName[req.name] else {
            if r.installed[req.name] == nil && r.providers[req.name] == nil {
                throw .unknownPackage(req.name, origin: req.origin, suggestions: r.suggestions(for: req.name))
            }
            throw .versionNotAvailable(req.name, version: text, available: [], origin: req.origin)
        }
        guard let i = range.first(where: { r.records[$0].version == version }) else {
            throw .versionNotAvailable(req.name, version: text, available: r.availableVersions(req.name), origin: req.origin)
        }
        choose(i, chain: [req.name])
    }

    private mutating func plain(_ req: PackageRequest) throws(ResolveError) {
        if requested[req.name] != nil || chosen[req.name] != nil { return }
        requested[req.name] = req
        if let inst = r.installed[req.name] {
            satisfied.insert(inst.name)
            return
        }
        if let range = r.byName[req.name] {
            choose(range.lowerBound, chain: [req.name])
            return
        }
        // A virtual package: already provided by the base or a chosen package, or
        // provided by exactly one real package (apt installs that one).
        if let inst = r.installedProviders[req.name]?.first {
            satisfied.insert(inst.package)
            return
        }
        if chosenProviders[req.name] != nil { return }
        if let provs = r.providers[req.name] {
            var names: [String] = []
            for p in provs where names.last != r.records[p.record].name { names.append(r.records[p.record].name) }
            guard names.count == 1 else {
                throw .ambiguousVirtual(req.name, providers: names, origin: req.origin)
            }
            choose(provs[0].record, chain: [names[0]])
            return
        }
        throw .unknownPackage(req.name, origin: req.origin, suggestions: r.suggestions(for: req.name))
    }

    private func spec(_ req: PackageRequest) -> String {
        req.version.map { "\(req.name)=\($0)" } ?? req.name
    }

    private mutating func choose(_ i: Int, chain: [String]) {
        let rec = r.records[i]
        chosen[rec.name] = i
        reasons[rec.name] = chain
        for p in rec.provides {
            chosenProviders[p.name, default: []].append(.init(record: i, version: p.constraint?.version))
        }
        for c in rec.conflicts { conflictsOn[c.name, default: []].append((i, c)) }
        for c in rec.breaks { conflictsOn[c.name, default: []].append((i, c)) }
        queue.append(i)
    }

    /// Whether record `i` would conflict with (or be broken by) a chosen package, either
    /// way round and through Provides. Used to pass over such alternatives, as apt does.
    private func clashes(_ i: Int) -> Bool {
        let rec = r.records[i]
        for (by, c) in conflictsOn[rec.name] ?? [] where r.records[by].name != rec.name {
            if c.constraint.map({ $0.allows(rec.version) }) ?? true { return true }
        }
        for p in rec.provides {
            for (by, c) in conflictsOn[p.name] ?? [] where r.records[by].name != rec.name {
                if Resolver.provideSatisfies(p.constraint?.version, c) { return true }
            }
        }
        for c in rec.conflicts + rec.breaks {
            if let j = chosen[c.name], r.records[j].name != rec.name,
               c.constraint.map({ $0.allows(r.records[j].version) }) ?? true { return true }
            for p in chosenProviders[c.name] ?? [] where r.records[p.record].name != rec.name {
                if Resolver.provideSatisfies(p.version, c) { return true }
            }
        }
        return false
    }

    // MARK: dependency closure

    mutating func close(recommends: Bool) throws(ResolveError) {
        var next = 0
        while next < queue.count {
            let rec = r.records[queue[next]]
            next += 1
            let chain = reasons[rec.name] ?? [rec.name]
            for group in rec.preDepends { try satisfy(group, by: rec.name, chain: chain, required: true) }
            for group in rec.depends { try satisfy(group, by: rec.name, chain: chain, required: true) }
            if recommends {
                for group in rec.recommends { try satisfy(group, by: rec.name, chain: chain, required: false) }
            }
        }
    }

    private enum Existing {
        case chosen(String)
        case installed(String)
        case rejectedByChosen(String)
        case rejectedByInstalled(InstalledPackage)
        case open
    }

    /// How the current state meets one alternative, before anything new is chosen.
    private func existing(_ dep: PackageDependency) -> Existing {
        guard r.archAllowed(dep) else { return .open }
        var rejected: Existing = .open
        if let i = chosen[dep.name] {
            if r.recordSatisfies(i, dep) { return .chosen(dep.name) }
            rejected = .rejectedByChosen(dep.name)
        }
        if let provs = chosenProviders[dep.name] {
            for p in provs where Resolver.provideSatisfies(p.version, dep) { return .chosen(r.records[p.record].name) }
        }
        if chosen[dep.name] == nil, let inst = r.installed[dep.name] {
            if dep.constraint.map({ $0.allows(inst.version) }) ?? true { return .installed(inst.name) }
            rejected = .rejectedByInstalled(inst)
        }
        if let provs = r.installedProviders[dep.name] {
            for p in provs where Resolver.provideSatisfies(p.version, dep) { return .installed(p.package) }
        }
        return rejected
    }

    /// The record to choose for an alternative that nothing chosen or installed meets:
    /// the real package's candidate, or its highest version that satisfies the relation;
    /// otherwise the provider whose name sorts first (its highest providing version),
    /// leaving out providers already chosen or installed at another version.
    private func pick(_ dep: PackageDependency) -> Int? {
        guard r.archAllowed(dep) else { return nil }
        if let range = r.byName[dep.name], let i = range.first(where: { r.recordSatisfies($0, dep) }) {
            return i
        }
        guard let provs = r.providers[dep.name] else { return nil }
        for p in provs where Resolver.provideSatisfies(p.version, dep) {
            let name = r.records[p.record].name
            if chosen[name] != nil || r.installed[name] != nil { continue }
            return p.record
        }
        return nil
    }

    private mutating func satisfy(_ group: [PackageDependency], by requirer: String, chain: [String], required: Bool) throws(ResolveError) {
        var states: [Existing] = []
        states.reserveCapacity(group.count)
        for dep in group {
            let s = existing(dep)
            switch s {
            case .chosen(let name):
                if name != requirer { dependents[name, default: []].insert(requirer) }
                return
            case .installed(let name):
                satisfied.insert(name)
                return
            default:
                states.append(s)
            }
        }
        // The first alternative that can be satisfied without a conflict with what is
        // already chosen; failing that, the first that can be satisfied at all (the
        // conflict is then reported by `checkConflicts`).
        var fallback: Int?
        for (k, dep) in group.enumerated() {
            guard case .open = states[k], let i = pick(dep) else { continue }
            if group.count > 1 && clashes(i) {
                if fallback == nil { fallback = i }
                continue
            }
            fallback = i
            break
        }
        if let i = fallback {
            let name = r.records[i].name
            choose(i, chain: chain + [name])
            if name != requirer { dependents[name, default: []].insert(requirer) }
            return
        }
        guard required else { return }
        let text = group.map(\.description).joined(separator: " | ")
        for (k, dep) in group.enumerated() {
            switch states[k] {
            case .rejectedByInstalled(let inst):
                throw .installedMismatch(package: inst.name, installedVersion: inst.version.description,
                                         chain: chain, dependency: group.count == 1 ? dep.description : text)
            case .rejectedByChosen(let name):
                let rec = r.records[chosen[name]!]
                let why: String
                if let req = requested[name], reasons[name] == [name] {
                    why = "requested at \(req.origin)"
                } else {
                    why = "chosen for " + (reasons[name] ?? [name]).joined(separator: " → ")
                }
                throw .chosenMismatch(package: name, version: rec.version.description, chosenFor: why,
                                      chain: chain, dependency: group.count == 1 ? dep.description : text)
            default:
                continue
            }
        }
        var available: [String] = []
        for dep in group {
            var versions = r.availableVersions(dep.name)
            if versions.isEmpty, let provs = r.providers[dep.name] {
                versions = provs.map { p in
                    let rec = r.records[p.record]
                    return "\(rec.name) \(rec.version)" + (p.version.map { " provides \(dep.name) (= \($0))" } ?? " provides \(dep.name)")
                }
            } else if group.count > 1 {
                versions = versions.map { "\(dep.name) \($0)" }
            }
            if dep.archQualifier != nil && !r.archAllowed(dep) {
                versions.append("\(dep.name):\(dep.archQualifier!) is not installable on \(r.architecture)")
            } else if dep.archQualifier == "any", let range = r.byName[dep.name],
                      !range.contains(where: { r.records[$0].multiArch == "allowed" }) {
                versions.append("\(dep.name) is not Multi-Arch: allowed, which :any needs")
            }
            available += versions
        }
        throw .unsatisfiable(chain: chain, dependency: text, available: available)
    }

    // MARK: conflicts

    /// Conflicts and Breaks between chosen packages (Policy §7.3, §7.4). A package's
    /// relation against a virtual package it provides itself is allowed (Policy §7.6).
    func checkConflicts() throws(ResolveError) {
        for name in chosen.keys.sorted() {
            let rec = r.records[chosen[name]!]
            for (field, list) in [("Conflicts", rec.conflicts), ("Breaks", rec.breaks)] {
                for c in list where r.archAllowed(c) {
                    if let j = chosen[c.name], r.records[j].name != rec.name,
                       c.constraint.map({ $0.allows(r.records[j].version) }) ?? true {
                        let o = r.records[j]
                        throw .conflict(package: rec.name, version: rec.version.description, field: field,
                                        relation: c.description, other: o.name, otherVersion: o.version.description)
                    }
                    for p in chosenProviders[c.name] ?? [] where r.records[p.record].name != rec.name {
                        guard Resolver.provideSatisfies(p.version, c) else { continue }
                        let o = r.records[p.record]
                        throw .conflict(package: rec.name, version: rec.version.description, field: field,
                                        relation: c.description, other: o.name, otherVersion: o.version.description)
                    }
                }
            }
        }
    }

    // MARK: result

    func resolution() -> Resolution {
        var packages = chosen.values.map { r.records[$0] }
        packages.sort { ($0.name, $0.architecture) < ($1.name, $1.architecture) }
        var deps: [String: [String]] = [:]
        for name in chosen.keys { deps[name] = (dependents[name] ?? []).sorted() }
        var why: [String: [String]] = [:]
        for name in chosen.keys { why[name] = reasons[name] ?? [name] }
        return Resolution(packages: packages, dependents: deps,
                          satisfiedByInstalled: satisfied.sorted(), reasons: why)
    }
}
