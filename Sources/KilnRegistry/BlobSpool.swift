#if canImport(Glibc)
import Glibc
#endif
import Foundation
import KilnArchive
import KilnOCI

/// A private directory of blobs downloaded from one repository: each blob is fetched
/// once however often it is asked for (concurrent askers share the download), and
/// appears under its digest only once the digest and size check. Synchronous readers
/// ask for blobs that are already here (`downloadedFile`); they never wait for the
/// network (see `OwnThread`).
public final class BlobSpool: Sendable {
    public let client: RegistryClient
    public let repository: String
    public let directory: String
    private let inFlight = LockedBox<[Digest: Task<String, any Error>]>([:])

    public init(client: RegistryClient, repository: String) throws {
        self.client = client
        self.repository = repository
        let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        self.directory = base + "/kiln-blobs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard mkdir(directory, 0o700) == 0 else {
            throw RegistryError.transport("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
    }

    deinit { remove() }

    /// Deletes the downloaded blobs. Callers about to exit call it themselves: the last
    /// reference may be dropped by a finishing task after the process is gone.
    public func remove() {
        if let names = try? FileManager.default.contentsOfDirectory(atPath: directory) {
            for n in names { unlink(directory + "/" + n) }
        }
        rmdir(directory)
    }

    /// The verified local copy of a blob, downloading it if it is not here yet.
    public func localFile(_ d: Descriptor) async throws -> String {
        let task: Task<String, any Error> = inFlight.update { all in
            if let t = all[d.digest] { return t }
            let path = directory + "/" + d.digest.hex
            let client = self.client, repo = repository
            let t = Task<String, any Error> {
                try await client.downloadBlob(repository: repo, descriptor: d, to: path)
                return path
            }
            all[d.digest] = t
            return t
        }
        do {
            return try await task.value
        } catch {
            // A failed download may be tried again by a later caller.
            inFlight.update { $0[d.digest] = nil }
            throw error
        }
    }

    /// The local copy of a blob that `fetch` or `localFile` downloaded, for synchronous
    /// readers; a blob not downloaded yet is an error (the caller forgot to fetch it).
    public func downloadedFile(_ d: Descriptor) throws -> String {
        let path = directory + "/" + d.digest.hex
        var st = stat()
        guard stat(path, &st) == 0, Int64(st.st_size) == d.size else {
            throw RegistryError.notDownloaded(d.digest)
        }
        return path
    }

    /// Downloads `descriptors` (each once), `client.options.parallelism` at a time.
    public func fetch(_ descriptors: [Descriptor]) async throws {
        var seen = Set<Digest>()
        let unique = descriptors.filter { seen.insert($0.digest).inserted }
        let limit = max(1, client.options.parallelism)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func add() {
                let d = unique[next]
                next += 1
                group.addTask { _ = try await self.localFile(d) }
            }
            while next < min(limit, unique.count) { add() }
            while try await group.next() != nil {
                if next < unique.count { add() }
            }
        }
    }
}
