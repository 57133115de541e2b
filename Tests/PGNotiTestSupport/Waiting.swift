import Foundation

/// What a deadline-bound wait throws when its condition still does not hold at the deadline.
public struct WaitTimeout: Error, CustomStringConvertible {
    public let what: String
    public let timeout: Duration

    public var description: String { "timed out after \(timeout) waiting for \(what)" }
}

/// Polls `condition` until it holds, sleeping the task (never the thread) in between, and throws
/// `WaitTimeout` naming `what` once `timeout` has passed.
///
/// Every test that waits for something to happen waits here: a blocked thread of the
/// cooperative pool (two on a 2-core machine) can starve every other test in the process.
public func waitUntil(
    timeout: Duration = .seconds(10), _ what: String = "condition", poll: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimeout(what: what, timeout: timeout) }
        try await Task.sleep(for: poll)
    }
}

/// The value `produce` returns once it is non-nil; throws `WaitTimeout` naming `what` after `timeout`.
public func waitForValue<T>(
    timeout: Duration = .seconds(10), _ what: String, poll: Duration = .milliseconds(10),
    _ produce: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while true {
        if let value = try await produce() { return value }
        guard ContinuousClock.now < deadline else { throw WaitTimeout(what: what, timeout: timeout) }
        try await Task.sleep(for: poll)
    }
}
