#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A thread of its own that runs jobs one after another, for the blocking part of a
/// blob transfer (hashing, file reads and writes): the async side hands a job over and
/// awaits its result through a continuation, so neither Swift's cooperative pool nor
/// NIO's event loops ever block on disk or hashing (README, "Concurrency model"). Only
/// the worker thread waits, on its own condition variable, for the next job.
///
/// One worker per transfer keeps a blob's bytes in order; callers `stop` it when done
/// (`defer`), which ends the thread once the queued jobs have run.
final class SerialWorker: @unchecked Sendable {
    // `@unchecked`: the only mutable state, `jobs` and `stopped`, is read and written
    // under `condition`'s lock.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false

    init(name: String) {
        let t = Thread { [self] in
            // Foundation does not pass the name to the kernel on Linux: profilers and
            // `top -H` would show the name of the thread that started this one.
            nameThisThread(name)
            while let job = take() { job() }
        }
        t.name = name
        t.stackSize = 2 << 20
        t.start()
    }

    /// The next job, waiting for one; nil once stopped and drained.
    private func take() -> (@Sendable () -> Void)? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty && !stopped { condition.wait() }
        return jobs.isEmpty ? nil : jobs.removeFirst()
    }

    /// Runs `body` on the worker thread after the jobs queued before it, and returns its result.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            condition.lock()
            jobs.append { c.resume(with: Result { try body() }) }
            condition.signal()
            condition.unlock()
        }
    }

    /// Ends the thread once the queued jobs are done.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }
}

/// Gives the calling thread its kernel name (what `top -H` and `perf` show; at most 15
/// bytes), through `/proc/thread-self/comm`: Foundation's `Thread.name` stays in the
/// process on Linux, and `pthread_setname_np` is not visible to Swift here.
func nameThisThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    var bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}
