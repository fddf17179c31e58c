/// One tar entry's metadata, as POSIX ustar (pax) defines it, with PAX/GNU
/// extensions already applied when read (long names, large sizes, xattrs).
public struct TarHeader: Sendable, Equatable {
    public enum Kind: UInt8, Sendable, Equatable {
        case regular = 0x30      // '0' (and old-style '\0')
        case hardlink = 0x31     // '1'
        case symlink = 0x32      // '2'
        case charDevice = 0x33   // '3'
        case blockDevice = 0x34  // '4'
        case directory = 0x35    // '5'
        case fifo = 0x36         // '6'

        public var typeflag: UInt8 { rawValue }
    }

    /// The entry name as stored (no normalisation): `usr/bin/` for a directory.
    public var name: String
    public var kind: Kind
    /// Permission bits, including setuid/setgid/sticky (07777).
    public var mode: UInt32
    public var uid: Int
    public var gid: Int
    public var size: Int64
    public var mtime: Int64
    public var linkName: String
    public var uname: String
    public var gname: String
    public var devMajor: UInt32
    public var devMinor: UInt32
    /// Extended attributes (PAX `SCHILY.xattr.NAME`), values as raw bytes.
    public var xattrs: [String: [UInt8]]

    public init(name: String, kind: Kind, mode: UInt32 = 0o644, uid: Int = 0, gid: Int = 0, size: Int64 = 0,
                mtime: Int64 = 0, linkName: String = "", uname: String = "", gname: String = "",
                devMajor: UInt32 = 0, devMinor: UInt32 = 0, xattrs: [String: [UInt8]] = [:]) {
        self.name = name
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.linkName = linkName
        self.uname = uname
        self.gname = gname
        self.devMajor = devMajor
        self.devMinor = devMinor
        self.xattrs = xattrs
    }

    /// Bytes of body that follow the header (only regular files carry data).
    public var bodySize: Int64 { kind == .regular ? size : 0 }
}

/// The 512-byte block arithmetic shared by reader and writer.
public enum TarBlock {
    public static let size = 512

    /// The body rounded up to whole blocks.
    @inlinable
    public static func padded(_ n: Int64) -> Int64 { (n + 511) & ~511 }
}
