import Foundation

/// Kiln's one crossing from async code into its synchronous byte pipelines (tar,
/// compression, hashing, file I/O): the work runs on a thread of its own and the
/// awaiting task is resumed when it ends, so Swift's cooperative pool never blocks on
/// disk or CPU work and nothing waits on a semaphore. The reverse crossing does not
/// exist: synchronous code never waits for async work (a registry blob is downloaded
/// before the pipeline that reads it starts).
public enum OwnThread {
    /// Runs `body` on a new thread (8 MiB stack, as the main thread has) and returns its
    /// result. `body` is `sending`: what it captures is handed over to that thread
    /// and no longer used by the caller, so values need not be `Sendable`.
    public static func run<T>(_ name: String = "kiln-pipeline",
                              _ body: sending @escaping () throws -> sending T) async throws -> sending T {
        let work = Handover(body)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            let thread = Thread {
                do {
                    c.resume(returning: try work.value())
                } catch {
                    c.resume(throwing: error)
                }
            }
            thread.name = name
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// Carries the `sending` closure to the new thread: the compiler has proven that
    /// the caller keeps no access to it, and only that thread calls it.
    private struct Handover<V>: @unchecked Sendable {
        let value: V
        init(_ value: V) { self.value = value }
    }
}
