import ArgumentParser
import KilnImage
import KilnOCI

struct Copy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy an image between formats, keeping its layers, config and manifest as they are.",
        discussion: """
            SOURCE and DESTINATION are docker-archive:PATH[:NAME:TAG], oci:DIR[:TAG] or oci-archive:PATH[:TAG].
            Layers are copied byte for byte and checked against their digests on the way.

            Example: kiln copy docker-archive:hello.tar oci:layout:latest
            """)

    @Argument(help: "The image to read.")
    var source: String

    @Argument(help: "Where to write it.")
    var destination: String

    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    mutating func run() throws {
        try reportingErrors {
            let src = try ImageReference(parsing: source)
            let dst = try ImageReference(parsing: destination)
            let image = try src.source().image()
            let (dName, dTag) = dst.destinationName
            // Name: the destination's, else the source's own (`name:tag`), else a generic one.
            var name = dName ?? "localhost/image"
            var tag = dTag
            if dName == nil, let first = image.names.first(where: { $0.contains(":") && !$0.hasSuffix(":") }) {
                let c = first.lastIndex(of: ":")!
                name = String(first[..<c])
                if tag == nil { tag = String(first[first.index(after: c)...]) }
            } else if tag == nil, let first = image.names.first, !first.contains(":"), !first.contains("/") {
                tag = first
            }
            if let dName { try ReferenceGrammar.validateName(dName) }
            if let tag { try ReferenceGrammar.validateTag(tag) }
            let written = try dst.sink().write(image.pending(name: name, tag: tag ?? "latest"))
            if json {
                print(String(decoding: try CanonicalJSON.encode(written), as: UTF8.self))
            } else {
                print("\(dst) \(written.reference) \(written.manifestDigest)")
            }
        }
    }
}
