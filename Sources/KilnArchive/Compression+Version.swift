import CLibdeflate
import CZstd

extension Compression {
    /// The compressor library and settings whose output this compression's bytes are:
    /// part of every layer cache key, so a new libdeflate or libzstd (which may
    /// compress the same tar to other bytes) never serves a layer built by the old one
    /// under a digest the new one would not produce.
    /// The levels are those `writer(_:)` uses.
    public var encoderIdentity: String {
        switch self {
        case .none: return "none"
        // libdeflate has no run-time version call: the headers' version is what Kiln
        // was built against, and Debian rebuilds dependants when its ABI changes.
        case .gzip: return "gzip libdeflate-\(LIBDEFLATE_VERSION_STRING) level-6 block-\(ParallelGzipWriter.defaultBlockSize)"
        case .zstd: return "zstd libzstd-\(String(cString: ZSTD_versionString())) level-3"
        }
    }
}
