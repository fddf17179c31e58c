import Crypto

/// What Debian's `update-ca-certificates` (package `ca-certificates`, run from its
/// postinst) leaves in `/etc/ssl/certs`, computed without running it, for images built
/// without maintainer scripts.
///
/// With the `/etc/ca-certificates.conf` the postinst writes on a first install (every
/// certificate enabled, one `dir/name.crt` path a line, sorted), `update-ca-certificates`:
///
/// 1. for each listed path, in file order, symlinks `/etc/ssl/certs/<name>.pem` to
///    `/usr/share/ca-certificates/<path>` (the basename without `.crt`, with `' '` and
///    `','` replaced by `'_'` and `'('`, `')'` by `'='`) and appends the file to the
///    bundle `ca-certificates.crt`, adding a final newline when the file lacks one
///    (`sed -e '$a\'`, Debian #635570);
/// 2. runs `openssl rehash .` in `/etc/ssl/certs`: every `*.pem`/`*.crt`/`*.cer`/`*.crl`
///    file there (the links above; the bundle is written under a `.new` name until
///    after this step, so on a first run it takes no part) that holds exactly one
///    certificate gets a link `<subject hash, 8 hex digits>.<n>` to its name; names are
///    visited in `strcmp` order, `n` is the first number not yet used for that hash, and
///    a certificate identical (same SHA-1 fingerprint) to one already linked is skipped.
///
/// Certificates under `/usr/local/share/ca-certificates` (appended after these by the
/// real tool) and the hooks in `/etc/ca-certificates/update.d` (Java's keystore) are
/// not covered.
public enum CACertificates {
    /// Where the package installs its certificates; link targets are under it.
    public static let certificatesDirectory = "/usr/share/ca-certificates"
    /// The bundle's name in `/etc/ssl/certs`.
    public static let bundleName = "ca-certificates.crt"

    /// One certificate file of the package.
    public struct Input: Sendable {
        /// Path relative to `/usr/share/ca-certificates`, e.g. `mozilla/ACCVRAIZ1.crt`.
        public var relativePath: String
        /// The file's bytes (PEM).
        public var pem: [UInt8]

        public init(relativePath: String, pem: [UInt8]) {
            self.relativePath = relativePath
            self.pem = pem
        }
    }

    /// The contents of `/etc/ssl/certs` that `update-ca-certificates` creates.
    public struct Output: Sendable {
        /// `/etc/ssl/certs/ca-certificates.crt`.
        public var bundle: [UInt8]
        /// Symlinks in `/etc/ssl/certs`: first the `.pem` links to the certificate files
        /// (absolute targets) in bundle order, then the hash links (relative targets)
        /// sorted by name.
        public var links: [(name: String, target: String)]

        public init(bundle: [UInt8], links: [(name: String, target: String)]) {
            self.bundle = bundle
            self.links = links
        }
    }

    /// The certificates in the order `update-ca-certificates` uses with the default
    /// `/etc/ca-certificates.conf` written by the package's postinst (all certificates,
    /// paths sorted as `LC_ALL=C sort` sorts them). Inputs whose name does not end in
    /// `.crt` are ignored, as the package's scripts only list `*.crt` files.
    public static func generate(_ inputs: [Input]) throws -> Output {
        let listed = try enabledCertificates(inputs)

        var bundle: [UInt8] = []
        var pemLinks: [(name: String, target: String)] = []
        var contentsByLinkName: [String: [UInt8]] = [:]
        for input in listed {
            // `sed '$a\'` prints nothing for an empty file and adds "\n" only when missing.
            bundle += input.pem
            if let last = input.pem.last, last != 0x0A { bundle.append(0x0A) }

            let name = pemLinkName(forCertificateAt: input.relativePath)
            let target = certificatesDirectory + "/" + input.relativePath
            // `ln -sf`: a later file with the same link name takes the link over.
            if let index = pemLinks.firstIndex(where: { $0.name == name }) {
                pemLinks.remove(at: index)
            }
            pemLinks.append((name, target))
            contentsByLinkName[name] = input.pem
        }

        // `openssl rehash .` runs while the new bundle is still `ca-certificates.crt.new`
        // (an extension it ignores), so on a first run it sees only the .pem links.
        let files = pemLinks.map { (name: $0.name, target: $0.target, contents: contentsByLinkName[$0.name]!) }
        let hashLinks = try rehashLinks(files)
        return Output(bundle: bundle, links: pemLinks + hashLinks)
    }

    /// `/etc/ca-certificates.conf` listing every certificate, as the postinst writes it
    /// on a first install. It omits the `!` lines the postinst adds for names in the
    /// package's debconf list that have no file (they change nothing). Without this
    /// file a later `update-ca-certificates` in the image would fail.
    public static func configuration(_ inputs: [Input]) throws -> [UInt8] {
        let header = """
            # This file lists certificates that you wish to use or to ignore to be
            # installed in /etc/ssl/certs.
            # update-ca-certificates(8) will update /etc/ssl/certs by reading this file.
            #
            # This is autogenerated by dpkg-reconfigure ca-certificates.
            # Certificates should be installed under /usr/share/ca-certificates
            # and files with extension '.crt' is recognized as available certs.
            #
            # line begins with # is comment.
            # line begins with ! is certificate filename to be deselected.
            #

            """
        var text = Array(header.utf8)
        for input in try enabledCertificates(inputs) {
            text += Array(input.relativePath.utf8)
            text.append(0x0A)
        }
        return text
    }

    /// The `*.crt` inputs in C-locale order, after checking their paths.
    private static func enabledCertificates(_ inputs: [Input]) throws -> [Input] {
        var seen: Set<String> = []
        var listed: [Input] = []
        for input in inputs where input.relativePath.hasSuffix(".crt") {
            let path = input.relativePath
            let components = path.split(separator: "/", omittingEmptySubsequences: false)
            // The path becomes a symlink target and a line of ca-certificates.conf, which
            // update-ca-certificates reads with `read` (no -r): backslashes and white space
            // at either end would not survive.
            guard !path.hasPrefix("/"), !path.utf8.contains(where: { [0x0A, 0, 0x5C].contains($0) }),
                  path.first?.isWhitespace == false, path.last?.isWhitespace == false,
                  !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                throw CACertificatesError.badPath(path)
            }
            guard seen.insert(path).inserted else { throw CACertificatesError.duplicatePath(path) }
            listed.append(input)
        }
        // LC_ALL=C sort compares bytes; Swift's String `<` would compare Unicode scalars
        // in normalised form.
        listed.sort { $0.relativePath.utf8.lexicographicallyPrecedes($1.relativePath.utf8) }
        return listed
    }

    /// The link name `add()` gives a certificate: `basename "$CERT" .crt` with
    /// `sed -e 's/ /_/g' -e 's/[()]/=/g' -e 's/,/_/g'`, plus `.pem`.
    static func pemLinkName(forCertificateAt relativePath: String) -> String {
        var base = Array(relativePath.utf8.split(separator: UInt8(ascii: "/")).last ?? [])
        // basename(1) leaves a name that is exactly the suffix alone.
        if base.count > 4 && base.suffix(4).elementsEqual(".crt".utf8) { base.removeLast(4) }
        for index in base.indices {
            switch base[index] {
            case UInt8(ascii: " "), UInt8(ascii: ","): base[index] = UInt8(ascii: "_")
            case UInt8(ascii: "("), UInt8(ascii: ")"): base[index] = UInt8(ascii: "=")
            default: break
            }
        }
        return String(decoding: base, as: UTF8.self) + ".pem"
    }

    /// The hash links `openssl rehash` makes for `files` (link name, its target for
    /// errors, the target's contents; all names with a recognised extension): visited in
    /// `strcmp` order; a file counts when its PEM holds
    /// exactly one certificate or CRL and it is a certificate (CRL `.rN` links are not
    /// made here); duplicates by SHA-1 fingerprint are skipped; suffixes count up from 0.
    static func rehashLinks(
        _ files: [(name: String, target: String, contents: [UInt8])]
    ) throws -> [(name: String, target: String)] {
        var certificates: [String: X509SubjectHash.Certificate] = [:]
        for file in files {
            do {
                let objects = try PEM.blocks(file.contents).filter { $0.isCertificate || $0.isCRL }
                guard objects.count == 1, objects[0].isCertificate else { continue }
                certificates[file.name] = try X509SubjectHash.certificate(in: objects[0])
            } catch {
                throw CACertificatesError.badCertificate(path: file.target, reason: "\(error)")
            }
        }
        let ordered = certificates.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var buckets: [UInt32: [(name: String, fingerprint: [UInt8])]] = [:]
        for name in ordered {
            let certificate = certificates[name]!
            let fingerprint = Array(Insecure.SHA1.hash(data: certificate.der))
            var bucket = buckets[certificate.subjectHash] ?? []
            guard !bucket.contains(where: { $0.fingerprint == fingerprint }) else { continue }
            bucket.append((name, fingerprint))
            buckets[certificate.subjectHash] = bucket
        }
        var links: [(name: String, target: String)] = []
        for hash in buckets.keys.sorted() {
            for (suffix, entry) in buckets[hash]!.enumerated() {
                links.append((hashLinkName(hash, suffix), entry.name))
            }
        }
        return links
    }

    /// `%08x.%d`, as openssl-rehash names its links.
    static func hashLinkName(_ hash: UInt32, _ suffix: Int) -> String {
        let digits = String(hash, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits + "." + String(suffix)
    }
}

/// Errors from computing `/etc/ssl/certs`. Each description is one line naming the
/// certificate file.
public enum CACertificatesError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A relative path that is absolute, empty in a component, has `.`/`..`, a newline,
    /// a NUL, a backslash or white space at either end: it cannot be a line of
    /// ca-certificates.conf or a link target.
    case badPath(String)
    /// The same relative path given twice.
    case duplicatePath(String)
    /// A certificate file whose PEM or DER cannot be read.
    case badCertificate(path: String, reason: String)

    public var description: String {
        switch self {
        case .badPath(let path):
            return "\(path): not a usable path under \(CACertificates.certificatesDirectory)"
        case .duplicatePath(let path):
            return "\(path): certificate given twice"
        case .badCertificate(let path, let reason):
            return "\(path): \(reason)"
        }
    }
}
