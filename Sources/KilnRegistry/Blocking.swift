import Dispatch
import Foundation

/// Runs async work from synchronous code and waits for it. Only for threads outside
/// Swift concurrency's pool (the CLI's main thread, a sink called from it): the work
/// itself runs on the pool, so waiting here never starves it.
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = LockedBox<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        let r: Result<T, any Error>
        do { r = .success(try await body()) } catch { r = .failure(error) }
        box.set(r)
        done.signal()
    }
    done.wait()
    return try box.get()!.get()
}

/// A value behind a lock, for state shared between tasks.
final class LockedBox<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ v: T) { value = v }
    func get() -> T { lock.lock(); defer { lock.unlock() }; return value }
    func set(_ v: T) { lock.lock(); value = v; lock.unlock() }
    @discardableResult
    func update<R>(_ f: (inout T) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try f(&value)
    }
}
