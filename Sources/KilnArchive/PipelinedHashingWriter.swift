import Dispatch
import KilnOCI

/// Hashes what is written through it on another thread, then forwards it: SHA-256 of
/// a whole layer is as costly as compressing it on CPUs without SHA extensions, so it
/// must not hold up reading and tarring. Chunks are hashed in order on one serial
/// queue; at most `depth` chunks wait, so memory stays bounded.
public final class PipelinedHashingWriter: ByteWriter {
    private let next: ByteWriter?
    private let queue = DispatchQueue(label: "kiln.hash")
    private let slots: DispatchSemaphore
    private let state = HashState()
    private var pending: [UInt8] = []
    private let chunkSize: Int
    public private(set) var count: Int64 = 0

    public init(_ next: ByteWriter?, chunkSize: Int = 1 << 20, depth: Int = 8) {
        self.next = next
        self.chunkSize = chunkSize
        self.slots = DispatchSemaphore(value: depth)
        pending.reserveCapacity(chunkSize)
    }

    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        count += Int64(buffer.count)
        pending.append(contentsOf: buffer)
        if pending.count >= chunkSize { flush() }
        try next?.write(buffer)
    }

    public func finish() throws { try next?.finish() }

    /// The digest of everything written; waits for the hashing to catch up.
    public var digest: Digest {
        flush()
        return queue.sync { state.hasher.finalize() }
    }

    private func flush() {
        guard !pending.isEmpty else { return }
        let chunk = pending
        pending = []
        pending.reserveCapacity(chunkSize)
        slots.wait()
        let state = self.state, slots = self.slots
        queue.async {
            state.hasher.update(chunk)
            slots.signal()
        }
    }

    /// Touched only on the serial queue.
    private final class HashState: @unchecked Sendable {
        var hasher = SHA256Hasher()
    }
}
