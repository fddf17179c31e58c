import KilnArchive
import KilnOCI
import NIOCore

/// The bytes of a blob being pushed: a reader opened by the caller's `open`, read and
/// hashed only by jobs on the transfer's `SerialWorker` thread (never on the
/// concurrency pool). It remembers how far it has read, so an upload resumed at an
/// offset goes on from there, and one resumed before it is opened again and read
/// (locally) up to that offset: the hash always covers bytes 0..<position.
final class UploadSource: Sendable {
    struct State {
        var reader: ByteReader?
        var position: Int64 = 0
        var hasher = SHA256Hasher()
        /// Bumped by every rewind: a read ahead started for an abandoned request finds
        /// it changed and reads nothing.
        var generation = 0
    }

    let worker: SerialWorker
    private let open: @Sendable () async throws -> ByteReader
    private let state = LockedBox(State())
    /// The size of each read handed to the network.
    static let block = 1 << 20

    init(open: @escaping @Sendable () async throws -> ByteReader, worker: SerialWorker) {
        self.open = open
        self.worker = worker
    }

    /// Positions the source at `offset`, reading (and hashing) what lies before it;
    /// returns the generation reads must name.
    @discardableResult
    func rewind(to offset: Int64) async throws -> Int {
        let current = try await worker.run { [state] in state.get().reader == nil ? -1 : state.get().position }
        if current < 0 || current > offset {
            let reader = try await open()
            state.update { s in s = State(reader: reader, generation: s.generation) }
        }
        return try await worker.run { [state] in
            try state.update { s in
                s.generation += 1
                let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: Self.block, alignment: 16)
                defer { scratch.deallocate() }
                while s.position < offset {
                    let want = Int(min(Int64(Self.block), offset - s.position))
                    let n = try s.reader!.readFully(into: UnsafeMutableRawBufferPointer(rebasing: scratch[..<want]))
                    guard n > 0 else { break }
                    s.hasher.update(UnsafeRawBufferPointer(rebasing: scratch[..<n]))
                    s.position += Int64(n)
                }
                return s.generation
            }
        }
    }

    /// Up to `count` next bytes (fewer only at the end of the source), hashed.
    func read(_ count: Int, generation: Int) async throws -> ByteBuffer {
        try await worker.run { [state] in
            try state.update { s in
                guard s.generation == generation else { throw CancellationError() }
                var buf = ByteBuffer()
                try buf.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
                    let n = try s.reader!.readFully(into: UnsafeMutableRawBufferPointer(rebasing: raw[..<count]))
                    s.hasher.update(UnsafeRawBufferPointer(rebasing: raw[..<n]))
                    s.position += Int64(n)
                    return n
                }
                return buf
            }
        }
    }

    /// Checks that the bytes read so far are the whole blob `d`: its size, nothing
    /// after it, and its digest.
    func check(_ d: Descriptor) async throws {
        let (position, digest, more) = try await worker.run { [state] in
            try state.update { s -> (Int64, Digest, Bool) in
                var one: UInt8 = 0
                let extra = try withUnsafeMutableBytes(of: &one) { try s.reader!.readFully(into: $0) }
                return (s.position, s.hasher.finalize(), extra > 0)
            }
        }
        guard position == d.size, !more else {
            throw RegistryError.sizeMismatch(what: "blob \(d.digest) (source)", expected: d.size, actual: more ? position + 1 : position)
        }
        guard digest == d.digest else {
            throw RegistryError.digestMismatch(what: "blob \(d.digest) (source)", expected: d.digest, actual: digest)
        }
    }
}

/// One `PATCH` body: the next `count` bytes of an `UploadSource`, read a block ahead
/// of the network on the source's worker thread.
struct UploadBody: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let source: UploadSource
    let count: Int64
    let generation: Int

    func makeAsyncIterator() -> Iterator { Iterator(source: source, remaining: count, generation: generation) }

    struct Iterator: AsyncIteratorProtocol {
        let source: UploadSource
        var remaining: Int64
        let generation: Int
        var ahead: Task<ByteBuffer, any Error>?

        mutating func next() async throws -> ByteBuffer? {
            if ahead == nil { ahead = start() }
            guard let current = ahead else { return nil }
            let buf = try await current.value
            ahead = start()
            if buf.readableBytes == 0 {
                throw RegistryError.protocolViolation("blob upload: the source ended before the size its descriptor gives")
            }
            return buf
        }

        private mutating func start() -> Task<ByteBuffer, any Error>? {
            guard remaining > 0 else { return nil }
            let n = Int(Swift.min(Int64(UploadSource.block), remaining))
            remaining -= Int64(n)
            let source = self.source, generation = self.generation
            return Task { try await source.read(n, generation: generation) }
        }
    }
}
