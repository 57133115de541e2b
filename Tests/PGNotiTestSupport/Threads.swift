import Foundation

/// Runs blocking work (plain sockets, a held SQLite lock, a loop of blocking clients) on a
/// thread of its own and awaits its result, so it never holds one of the cooperative pool's
/// threads. For real concurrency, start several from the children of a task group.
public func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

/// A one-way gate for work on its own thread (see `onOwnThread`): it blocks in `wait` until
/// the test opens the gate or the timeout passes. Never wait on it from a task.
public final class ThreadGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var isOpen = false  // guarded by `condition`

    public init() {}

    public func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// True if the gate opened, false if `timeout` passed first.
    @discardableResult
    public func wait(timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !isOpen {
            if !condition.wait(until: deadline) { return isOpen }
        }
        return true
    }
}
