import Foundation

/// A value behind an NSLock, shared by the package's targets and tests.
/// `Synchronization.Mutex` would do, but it needs macOS 15 and the package
/// still declares macOS 14.
package final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
