/// Errors from reading a `.deb` binary package (deb(5)): the ar container, its
/// `debian-binary`, `control.tar` and `data.tar` members. Each description is one
/// line naming the file and, where there is one, the member.
public enum DebError: Error, CustomStringConvertible, Sendable {
    /// The file cannot be opened or read.
    case io(path: String, message: String)
    /// The file does not start with the ar magic `!<arch>\n`.
    case notADeb(path: String)
    /// An ar member header is malformed (bad terminator, size not decimal).
    case badHeader(path: String, offset: Int64, reason: String)
    /// The file ends inside a member header or a member's data.
    case truncated(path: String, member: String)
    /// `debian-binary` has a major version other than 2 (or is unreadable).
    case unsupportedVersion(path: String, version: String)
    /// A required member (`debian-binary`, `control.tar*`, `data.tar*`) is absent.
    case missingMember(path: String, name: String)
    /// A member in a place deb(5) does not allow (only `_`-prefixed members may
    /// come between the required ones).
    case unexpectedMember(path: String, name: String)
    /// `control.tar` or `data.tar` with a compression not handled here (bzip2,
    /// lzma: deprecated by dpkg, and not used by Debian or Ubuntu archives).
    case unsupportedCompression(path: String, member: String)
    /// A member's compressed or tar data is damaged.
    case corruptMember(path: String, member: String, reason: String)
    /// A member is larger than the cap for it.
    case tooLarge(path: String, member: String, limit: Int64)

    public var description: String {
        switch self {
        case .io(let path, let message):
            return "\(path): \(message)"
        case .notADeb(let path):
            return "\(path): not a Debian package (no ar archive magic '!<arch>')"
        case .badHeader(let path, let offset, let reason):
            return "\(path): malformed ar member header at offset \(offset): \(reason)"
        case .truncated(let path, let member):
            return "\(path): truncated Debian package: the file ends inside member '\(member)'"
        case .unsupportedVersion(let path, let version):
            return "\(path): unsupported Debian package format version '\(version)' in debian-binary (only 2.x is supported)"
        case .missingMember(let path, let name):
            return "\(path): Debian package has no '\(name)' member"
        case .unexpectedMember(let path, let name):
            return "\(path): unexpected member '\(name)' in Debian package (deb(5) allows only '_'-prefixed extras before data.tar)"
        case .unsupportedCompression(let path, let member):
            return "\(path): member '\(member)' uses an unsupported compression (supported: none, gz, xz, zst)"
        case .corruptMember(let path, let member, let reason):
            return "\(path): member '\(member)' is corrupt: \(reason)"
        case .tooLarge(let path, let member, let limit):
            return "\(path): member '\(member)' exceeds the limit of \(limit) bytes"
        }
    }
}
