import ArgumentParser
import Foundation
import KilnOCI
import KilnRegistry

/// Options every command that talks to a registry takes.
struct RegistryFlags: ParsableArguments {
    @Option(name: .customLong("tls-verify"), help: "Verify HTTPS certificates (--tls-verify=false also allows plain HTTP).")
    var tlsVerify: Bool = true

    @Option(name: .customLong("cert-dir"), help: "A directory of extra CA certificates (*.crt, *.pem) to trust.")
    var certDir: String?

    @Option(help: "An auth file (Docker config.json or containers auth.json) to look in first.")
    var authfile: String?

    @Option(help: "Credentials as USERNAME[:PASSWORD] (prefer kiln login; the password is asked on stdin when omitted).")
    var creds: String?

    func options(json: Bool) throws -> RegistryOptions {
        var o = RegistryOptions()
        o.applyEnvironment()
        o.tlsVerify = tlsVerify
        o.certDirectory = certDir
        o.credentialStore = .standard(authFile: authfile)
        if let creds {
            if let c = creds.firstIndex(of: ":") {
                o.credentials = Credentials(username: String(creds[..<c]), password: String(creds[creds.index(after: c)...]))
            } else {
                o.credentials = Credentials(username: creds, password: readPasswordLine())
            }
        }
        o.progress = makeProgress(quiet: json)  // --quiet: ProgressBoard.shared.mode
        return o
    }
}

/// One line from stdin, without its newline (passwords are never echoed or printed).
func readPasswordLine() -> String {
    var line = readLine(strippingNewline: true) ?? ""
    if line.hasSuffix("\r") { line.removeLast() }
    return line
}

/// The result `--json` prints: what was written and its manifest digest and size.
struct TransferReport: Codable {
    var reference: String
    var digest: Digest
    var size: Int64
}

func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try CanonicalJSON.encode(value), as: UTF8.self))
}
