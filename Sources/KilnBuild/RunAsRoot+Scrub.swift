#if canImport(Glibc)
import Glibc
#endif
import KilnArchive

extension RunAsRoot {
    /// The volatile files package managers leave, which differ from run to run with the
    /// same inputs (the list Debian's reproducible image builders, debuerreotype, remove):
    /// a directory and a pattern (fnmatch(3)) for the names in it.
    public static let scrubbed: [(directory: String, pattern: String)] = [
        ("var/cache/apt", "*.bin"),              // pkgcache.bin, srcpkgcache.bin
        ("var/log/apt", "*.log"),                // history.log, term.log, eipp.log
        ("var/log/apt", "eipp.log.xz"),
        ("var/log", "dpkg.log"),
        ("var/log", "alternatives.log"),
        ("var/lib/dpkg", "*-old"),               // status-old, diversions-old…
        ("var/cache/debconf", "*-old"),          // config.dat-old, templates.dat-old
        ("var/cache/ldconfig", "aux-cache"),
    ]

    /// Drops the volatile files from the overlay's upper directory, before it is read
    /// as a layer, and `__pycache__` directories (and `.pyc` files in them) that the
    /// image did not have. Scrubbing means "the layer carries no new version of this
    /// file": the upper entry goes whatever it is — a new file, a changed one, or the
    /// whiteout of a file of the base the script deleted (then the base's version stays
    /// visible, as if the script had not touched it).
    static func scrub(upper: String, lower: StackView) throws {
        for (dir, pattern) in scrubbed {
            let d = upper + "/" + dir
            guard let names = try? FileSystem.listDirectory(d) else { continue }
            for name in names where fnmatch(pattern, name, FNM_PERIOD) == 0 {
                FileSystem.removeTree(d + "/" + name)
            }
        }
        try scrubPycache(upper: upper, rel: "", lower: lower)
    }

    private static func scrubPycache(upper: String, rel: String, lower: StackView) throws {
        let here = rel.isEmpty ? upper : upper + "/" + rel
        for name in try FileSystem.listDirectory(here) {
            let childRel = rel.isEmpty ? name : rel + "/" + name
            var st = stat()
            guard lstat(here + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            if name == "__pycache__" {
                if lower.resolve(childRel) == nil {
                    FileSystem.removeTree(here + "/" + name)
                } else {
                    // The image had it: only what the script added goes.
                    for f in try FileSystem.listDirectory(here + "/" + name) where lower.resolve(childRel + "/" + f) == nil {
                        FileSystem.removeTree(here + "/" + name + "/" + f)
                    }
                }
            } else {
                try scrubPycache(upper: upper, rel: childRel, lower: lower)
            }
        }
    }
}
