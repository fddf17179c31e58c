/// KilnDebian: Debian (and Ubuntu) repositories and packages, without apt or dpkg.
///
/// - `AptSources`: the host's apt sources (one-line and deb822 formats) and explicit entries.
/// - `Release`/`InRelease` verified with `gpgv`, `Packages` indexes checked against them.
/// - `DebianVersion`, relations and the `Resolver`: apt's candidate and dependency rules.
/// - `DebArchive`: the ar container of a `.deb`, its control and data members.
/// - `AptFetcher`: content-addressed downloads with retries and resume.
public enum KilnDebian {}
