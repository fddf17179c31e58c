import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What this host lets the tests do, for `.enabled(if:)` traits: a test that cannot run
/// here is reported as skipped, with the reason, never as passed having tested nothing.
enum HostCapabilities {
    /// Root, with util-linux's `setpriv` to drop to nobody for the unprivileged half of a test.
    static var rootWithSetpriv: Bool {
        geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    }

    /// Root with `setpriv`, and nobody may create a user namespace mapping itself to
    /// root with its own mount namespace (what Kiln's rootless `runAsRoot` needs first);
    /// false where the kernel, a sysctl or an LSM forbids it. Probed once.
    static let unprivilegedUserNamespaces: Bool = {
        guard rootWithSetpriv, FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
        let r = try? run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                              "/usr/bin/unshare", "--user", "--map-root-user", "--mount", "true"], check: false)
        return r?.status == 0
    }()
}
