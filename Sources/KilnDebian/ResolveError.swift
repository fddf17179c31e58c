/// Errors from the pure half of KilnDebian: versions, control paragraphs, relation
/// fields, package records and dependency resolution. Each description is one line that
/// names the package, field or line at fault and, for resolution, the chain of packages
/// that led there.
public enum ResolveError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A version string that Debian Policy §5.6.12 does not allow.
    case invalidVersion(String, reason: String)
    /// A deb822 syntax error (Debian Policy §5.1); `line` is 1-based.
    case controlSyntax(line: Int, reason: String)
    /// A relation field (Depends, Provides, …) that Debian Policy §7.1 does not allow.
    case invalidRelation(String, reason: String)
    /// A package paragraph that lacks a required field or has a malformed one.
    case invalidRecord(package: String, reason: String)
    /// A package request that is not `name` or `name=version`.
    case invalidRequest(String, origin: String, reason: String)
    /// A requested name that no repository (and no installed package) knows.
    case unknownPackage(String, origin: String, suggestions: [String])
    /// A request `name=version` whose version no repository has.
    case versionNotAvailable(String, version: String, available: [String], origin: String)
    /// A request for a virtual package that several real packages provide.
    case ambiguousVirtual(String, providers: [String], origin: String)
    /// Two requests for the same package that pin different versions.
    case conflictingRequests(String, first: String, firstOrigin: String, second: String, secondOrigin: String)
    /// No available (or installed) package satisfies a dependency; `chain` leads from a
    /// request to the package that has the dependency.
    case unsatisfiable(chain: [String], dependency: String, available: [String])
    /// The base image has the package installed at a version the dependency rejects.
    case installedMismatch(package: String, installedVersion: String, chain: [String], dependency: String)
    /// A package was already chosen at a version that a later dependency rejects;
    /// `chosenFor` says why it was chosen ("requested at …", "chosen for a → b").
    case chosenMismatch(package: String, version: String, chosenFor: String, chain: [String], dependency: String)
    /// Two chosen packages conflict (`Conflicts` or `Breaks`, Debian Policy §7.3, §7.4).
    case conflict(package: String, version: String, field: String, relation: String, other: String, otherVersion: String)

    public var description: String {
        switch self {
        case .invalidVersion(let v, let reason):
            return "invalid Debian version \"\(v)\": \(reason)"
        case .controlSyntax(let line, let reason):
            return "control file line \(line): \(reason)"
        case .invalidRelation(let field, let reason):
            return "invalid relation \"\(field)\": \(reason)"
        case .invalidRecord(let package, let reason):
            return "package \(package.isEmpty ? "paragraph" : package): \(reason)"
        case .invalidRequest(let spec, let origin, let reason):
            return "\(origin): invalid package request \"\(spec)\": \(reason)"
        case .unknownPackage(let name, let origin, let suggestions):
            let hint = suggestions.isEmpty ? "" : " (did you mean \(suggestions.joined(separator: ", "))?)"
            return "\(origin): unknown package \"\(name)\"\(hint)"
        case .versionNotAvailable(let name, let version, let available, let origin):
            let list = available.isEmpty ? "none" : available.joined(separator: ", ")
            return "\(origin): \(name) version \(version) is not available (available: \(list))"
        case .ambiguousVirtual(let name, let providers, let origin):
            return "\(origin): \(name) is a virtual package provided by \(providers.joined(separator: ", ")); request one of them explicitly"
        case .conflictingRequests(let name, let first, let firstOrigin, let second, let secondOrigin):
            return "\(secondOrigin): \(second) conflicts with \(first) requested at \(firstOrigin) (one version of \(name) per image)"
        case .unsatisfiable(let chain, let dependency, let available):
            let list = available.isEmpty ? "none" : available.joined(separator: ", ")
            return "\(Self.arrow(chain + [dependency])): no version satisfies it (available: \(list))"
        case .installedMismatch(let package, let installed, let chain, let dependency):
            let requirer = chain.last ?? "a request"
            return "\(package) \(installed) is installed in the base but \(requirer) needs \(dependency) (\(Self.arrow(chain + [dependency])))"
        case .chosenMismatch(let package, let version, let chosenFor, let chain, let dependency):
            return "\(package) \(version) was \(chosenFor) but \(Self.arrow(chain + [dependency])) rejects it"
        case .conflict(let package, let version, let field, let relation, let other, let otherVersion):
            return "\(package) \(version) \(field) \(relation), but \(other) \(otherVersion) is also being installed"
        }
    }

    private static func arrow(_ chain: [String]) -> String { chain.joined(separator: " → ") }
}
