import Foundation
import Logging
import Synchronization

/// What the process is doing, for a live display (`kiln build` on a terminal) and for
/// the timings `--log-level debug` prints. Producers report with one cheap call at the
/// points where work happens (a file listed while planning, a MiB of a layer read or
/// written, a cache hit, package bytes downloaded); a renderer thread reads a
/// `Snapshot` a few times a second. Byte counts are batched by the callers (per MiB,
/// see `LayerMeter` and `counting(_:)`), so the lock is taken a handful of times per
/// MiB at most, never per tar header.
public final class ProgressBoard: Sendable {
    /// The process's board: Kiln runs one command per process.
    public static let shared = ProgressBoard()

    /// How a command shows progress, chosen once by the command line.
    public enum Mode: Int, Sendable {
        /// Not chosen (library use, tests): each display decides as it did alone.
        case unset
        /// Nothing (`--quiet`, `--json`).
        case quiet
        /// Plain lines as things finish (stderr is not a terminal).
        case lines
        /// A display redrawn in place (stderr is a terminal).
        case live
    }

    /// The state a renderer draws.
    public struct Snapshot: Sendable {
        /// "resolving", "resolving packages", "downloading packages", "planning", "layer", "writing".
        public var phase = "starting"
        /// When `phase` began (`DispatchTime` nanoseconds).
        public var phaseStarted: UInt64 = 0
        /// Files, directories and links listed for the image so far.
        public var entriesPlanned = 0
        /// Layers begun (the one being produced is this number).
        public var layer = 0
        /// Layers finished, and how many of the lookups found a layer in the cache.
        public var layersDone = 0
        public var cacheHits = 0
        /// The current layer: content bytes read from files, its tar size, bytes written
        /// out of the compressor (or of the tar for an uncompressed layer), and when it began.
        public var layerRead: Int64 = 0
        public var layerSize: Int64 = 0
        public var layerWritten: Int64 = 0
        public var layerStarted: UInt64 = 0
        /// When its tar was done (0 while it is being written).
        public var layerFinished: UInt64 = 0
        /// All layers so far.
        public var totalRead: Int64 = 0
        public var totalWritten: Int64 = 0
        /// Package downloads: bytes received and expected.
        public var downloadDone: Int64 = 0
        public var downloadTotal: Int64 = 0
        /// When the board was started.
        public var started: UInt64 = 0
    }

    private let state = Mutex(Snapshot())
    private let modeValue = Atomic<Int>(Mode.unset.rawValue)

    public init() {
        let now = Self.now()
        state.withLock { $0.started = now; $0.phaseStarted = now }
    }

    /// The command's progress mode (set by the command line before any work starts).
    public var mode: Mode {
        get { Mode(rawValue: modeValue.load(ordering: .relaxed)) ?? .unset }
        set { modeValue.store(newValue.rawValue, ordering: .relaxed) }
    }

    /// Whether a live display draws this board (producers with a display of their own
    /// leave it to the board then).
    public var isLive: Bool { mode == .live }

    public func snapshot() -> Snapshot { state.withLock { $0 } }

    /// Enters `name`; the phase left is logged with its duration (`--log-level debug`).
    public func phase(_ name: String) {
        let now = Self.now()
        let left: Snapshot? = state.withLock { s in
            guard s.phase != name else { return nil }
            defer { s.phase = name; s.phaseStarted = now }
            return s
        }
        guard let left, left.phase != "starting" else { return }
        if left.phase == "layer" { Self.logLayer(left, now: now) }
        else { progressLog.debug("\(left.phase): \(Self.seconds(now &- left.phaseStarted))") }
    }

    /// `count` more entries listed while planning.
    public func planned(_ count: Int = 1) {
        let entered = state.withLock { s -> Bool in
            s.entriesPlanned += count
            return s.phase != "planning"
        }
        if entered { phase("planning") }
    }

    /// A layer cache lookup found (or did not find) its layer.
    public func cacheLookup(hit: Bool) {
        if hit { state.withLock { $0.cacheHits += 1 } }
    }

    /// Package download progress: `done` of `total` bytes.
    public func downloaded(_ done: Int64, of total: Int64) {
        let entered = state.withLock { s -> Bool in
            s.downloadDone = done
            s.downloadTotal = total
            return s.phase != "downloading packages"
        }
        if entered { phase("downloading packages") }
    }

    /// What package downloads report to: the board, and `own` (a caller's display of
    /// its own) unless a live board shows them or the command is quiet.
    public func downloadReport(_ own: (@Sendable (Int64, Int64) -> Void)?) -> @Sendable (Int64, Int64) -> Void {
        let passOn = mode == .live || mode == .quiet ? nil : own
        return { done, total in
            self.downloaded(done, of: total)
            passOn?(done, total)
        }
    }

    /// A layer's production begins: its tar is `size` bytes. The meter it returns
    /// counts the bytes read into it; `finish()` it when the tar is written.
    public func beginLayer(size: Int64) -> LayerMeter {
        let now = Self.now()
        let previous: Snapshot? = state.withLock { s in
            defer {
                s.layer += 1
                s.layerRead = 0
                s.layerWritten = 0
                s.layerSize = size
                s.layerStarted = now
                s.layerFinished = 0
            }
            return s.phase == "layer" ? s : nil
        }
        // One layer after another: the one before is logged here (its written bytes are
        // counted when its compressor finishes, after its tar).
        if let previous { Self.logLayer(previous, now: now) }
        phase("layer")
        return LayerMeter(board: self)
    }

    func add(read: Int64) {
        state.withLock { $0.layerRead += read; $0.totalRead += read }
    }

    /// `count` more bytes came out of a layer's compressor (or out of a plain tar).
    public func add(written: Int64) {
        state.withLock { $0.layerWritten += written; $0.totalWritten += written }
    }

    func endLayer() {
        let now = Self.now()
        state.withLock { $0.layersDone += 1; $0.layerFinished = now }
    }

    /// `layer 2: read 1048576 bytes, wrote 524288 in 0.120 s`, at `--log-level debug`.
    private static func logLayer(_ s: Snapshot, now: UInt64) {
        progressLog.debug("layer \(s.layer): read \(s.layerRead) bytes, wrote \(s.layerWritten) in \(seconds(now &- s.layerStarted))")
    }

    /// `next`, with what goes through it counted as written bytes (a MiB at a time).
    public func counting(_ next: ByteWriter) -> ByteWriter {
        ProgressCountingWriter(next, board: self)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// `1.234 s`.
    public static func seconds(_ nanos: UInt64) -> String {
        String(format: "%.3f s", Double(nanos) / 1e9)
    }
}

/// The logger of phases and layer timings (`--log-level debug`). Created on first use,
/// after the command line has set up the logging system.
let progressLog = Logger(label: "kiln.progress")

/// Counts one layer's bytes for the board, reporting a MiB at a time. Used by one
/// thread (the one writing the layer).
public final class LayerMeter {
    private let board: ProgressBoard
    private var pending: Int64 = 0
    private var finished = false

    init(board: ProgressBoard) { self.board = board }

    /// `count` more content bytes read.
    @inline(__always)
    public func read(_ count: Int) {
        pending += Int64(count)
        if pending >= 1 << 20 { board.add(read: pending); pending = 0 }
    }

    /// The layer is written (or failed): the rest is reported and the layer counted done.
    public func finish() {
        guard !finished else { return }
        finished = true
        if pending > 0 { board.add(read: pending); pending = 0 }
        board.endLayer()
    }
}

/// A writer that counts what passes through it on the board, a MiB at a time.
final class ProgressCountingWriter: ByteWriter {
    private let next: ByteWriter
    private let board: ProgressBoard
    private var pending: Int64 = 0

    init(_ next: ByteWriter, board: ProgressBoard) {
        self.next = next
        self.board = board
    }

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        try next.write(buffer)
        pending += Int64(buffer.count)
        if pending >= 1 << 20 { board.add(written: pending); pending = 0 }
    }

    func finish() throws {
        if pending > 0 { board.add(written: pending); pending = 0 }
        try next.finish()
    }
}
