import Foundation

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
