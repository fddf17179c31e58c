import Foundation
import PackagePlugin

/// `swift package build-image`: builds a container image of a product of this package
/// with Kiln, the same `kiln build` a spec on the command line runs.
///
///     swift package build-image --spec image.yaml [kiln build options]
///     swift package build-image --product App --repository HOST/REPO[:TAG] [--from IMAGE] [--tag TAG] [kiln build options]
///
/// Without `--spec`, the plugin writes a spec in its work directory (JSON, which Kiln's
/// YAML reader takes): `name` from the repository, `fromImage` from `--from` (`scratch`,
/// the default, means no base; a name without a transport is a registry image), and one
/// content item `swift: PRODUCT` for this package. `--repository` pushes there
/// (`kiln build --push docker://REPOSITORY`); without it the other options say where the
/// image goes (`-o PATH`, default NAME.tar).
///
/// Kiln runs in the package directory, so relative paths (`--spec`, `-o`) are the
/// package's. `swift package` holds the lock of the package's `.build` while a plugin
/// runs; `KILN_SWIFT_LOCKED_PACKAGE` tells Kiln so, and its `swift build` of this
/// package's products passes `--ignore-lock` (see Sources/KilnBuild/SwiftProduct.swift).
@main
struct BuildImage: CommandPlugin {
    func performCommand(context: PluginContext, arguments: [String]) async throws {
        var args = ArgumentExtractor(arguments)
        if args.extractFlag(named: "help") > 0 {
            print(Self.usage)
            return
        }
        let specs = args.extractOption(named: "spec")
        let products = args.extractOption(named: "product")
        let repositories = args.extractOption(named: "repository")
        let froms = args.extractOption(named: "from")
        let tags = args.extractOption(named: "tag")
        var rest = args.remainingArguments
        for (name, values) in [("spec", specs), ("product", products), ("repository", repositories), ("from", froms), ("tag", tags)]
        where values.count > 1 {
            throw PluginFailure("--\(name) given \(values.count) times; give it once")
        }
        let package = context.package.directoryURL.path
        let specPath: String
        if let spec = specs.first {
            for (name, values) in [("product", products), ("repository", repositories), ("from", froms), ("tag", tags)]
            where !values.isEmpty {
                throw PluginFailure("--\(name) makes a spec on the fly and cannot be used with --spec (set it in the spec)")
            }
            specPath = spec
        } else {
            let product = try products.first ?? onlyExecutableProduct(context.package)
            let repository = repositories.first.map(Self.splitTag)
            let tag = tags.first ?? repository?.tag
            let name = repository?.name ?? product.lowercased()
            var spec: [String: Any] = ["name": name, "contents": [["swift": product, "package": package]]]
            if let tag { spec["tag"] = tag }
            if let from = froms.first, from != "scratch" {
                spec["fromImage"] = from.contains(":/") || from.hasPrefix("oci:") || from.hasPrefix("oci-archive:")
                    || from.hasPrefix("docker-archive:") ? from : "docker://" + from
            }
            let dir = context.pluginWorkDirectoryURL
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let url = dir.appendingPathComponent("\(product).image.json")
            try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys, .prettyPrinted]).write(to: url)
            specPath = url.path
            if let repository {
                rest = ["--push", "docker://\(repository.name):\(tag ?? "latest")"] + rest
            }
        }

        let kiln = try context.tool(named: "kiln").url
        let process = Process()
        process.executableURL = kiln
        process.arguments = ["build", specPath] + rest
        process.currentDirectoryURL = context.package.directoryURL
        var environment = ProcessInfo.processInfo.environment
        environment["KILN_SWIFT_LOCKED_PACKAGE"] = package
        process.environment = environment
        // SwiftPM shows everything a plugin writes on its own stdout; only diagnostics
        // reach its stderr. So Kiln's stderr is read here: its errors and warnings become
        // diagnostics (an error fails the command), its notices are shown as they come.
        let stderr = Pipe()
        process.standardError = stderr
        try process.run()
        var reportedError = false
        var pending = Data()
        func forward(_ line: Data) {
            let text = String(decoding: line, as: UTF8.self)
            if text.hasPrefix("kiln: error: ") {
                Diagnostics.error(String(text.dropFirst("kiln: error: ".count)))
                reportedError = true
            } else if text.hasPrefix("kiln: warning: ") {
                Diagnostics.warning(String(text.dropFirst("kiln: warning: ".count)))
            } else if !text.isEmpty {
                print(text)
            }
        }
        while true {
            let chunk = stderr.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            pending.append(chunk)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                forward(pending[pending.startIndex..<newline])
                pending.removeSubrange(pending.startIndex...newline)
            }
        }
        forward(pending)
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            if reportedError { return }
            throw PluginFailure("kiln build failed (\(process.terminationReason == .exit ? "exit status" : "signal") \(process.terminationStatus))")
        }
    }

    /// `HOST/REPO[:TAG]` split into the name and the tag (a `:` after the last `/`).
    static func splitTag(_ repository: String) -> (name: String, tag: String?) {
        let slash = repository.lastIndex(of: "/") ?? repository.startIndex
        guard let colon = repository[slash...].lastIndex(of: ":") else { return (repository, nil) }
        return (String(repository[..<colon]), String(repository[repository.index(after: colon)...]))
    }

    /// Without `--product`: the package's executable product when it has exactly one.
    func onlyExecutableProduct(_ package: Package) throws -> String {
        let executables = package.products.filter { $0 is ExecutableProduct }.map(\.name)
        guard executables.count == 1 else {
            throw PluginFailure("give --product (the package has \(executables.isEmpty ? "no executable products" : "several: " + executables.joined(separator: ", ")))")
        }
        return executables[0]
    }

    static let usage = """
        USAGE: swift package build-image --spec SPEC [kiln build options]
               swift package build-image [--product PRODUCT] [--repository HOST/REPO[:TAG]] [--from IMAGE] [--tag TAG] [kiln build options]

        Builds a container image with Kiln (`kiln build`). With --spec, the spec as it is.
        Without: a spec of one `swift: PRODUCT` item of this package, on --from IMAGE
        (default scratch: no base), pushed to --repository, else written where the kiln
        build options say (-o PATH; default NAME.tar in the package directory).

        OPTIONS:
          --spec SPEC             a Kiln spec (relative to the package directory)
          --product PRODUCT       the executable product (default: the package's only one)
          --repository REPO       push to HOST/REPO[:TAG] (kiln build --push docker://…)
          --from IMAGE            the base image: scratch (default), a registry image, or
                                  any transport Kiln reads (oci:DIR, docker-archive:PATH…)
          --tag TAG               the tag (default: the repository's, else latest)
          --help                  this text; `kiln help build` lists kiln build's options

        Permissions: pass --allow-writing-to-package-directory (the image file) and
        --allow-network-connections all (registries) to `swift package`, or answer its prompt.
        """
}

struct PluginFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
