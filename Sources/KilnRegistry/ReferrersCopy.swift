import KilnImage
import KilnOCI

/// Copies what refers to some manifests (OCI 1.1 referrers: SBOMs, signatures,
/// provenance, and what refers to those in turn) from one location to another, each
/// artifact unchanged (same bytes, same digest), after the manifests themselves were
/// copied with their digests (`kiln copy --referrers`).
public enum ReferrersCopy {
    /// Finds the referrers of `subjects` at `source` (breadth first, down to `depth`
    /// levels: a signature of an SBOM is one level below the SBOM) and stores them at
    /// `destination`, subjects before what refers to them. Returns what was copied.
    public static func copy(subjects: [Digest], from source: ImageLocation, to destination: ImageLocation,
                            options: RegistryOptions, depth: Int = 4) async throws -> [Descriptor] {
        var seen = Set(subjects)
        var level = subjects
        var found: [ReferrerManifest] = []
        for _ in 0..<depth where !level.isEmpty {
            var next: [Digest] = []
            for subject in level {
                for d in try await source.referrers(of: subject, options: options) where seen.insert(d.digest).inserted {
                    found.append(try await source.readReferrer(d, options: options))
                    next.append(d.digest)
                }
            }
            level = next
        }
        return try await destination.store(referrers: found, options: options)
    }
}
