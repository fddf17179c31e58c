import Dispatch
import Foundation
import KilnRegistry

/// TEMPORARY: `kiln login` still waits for its one async call this way; it becomes an
/// async command like the others (and this file goes) once the credential-helper work
/// on Login.swift lands.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = LoginResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

private final class LoginResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
