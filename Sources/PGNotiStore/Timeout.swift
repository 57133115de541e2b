import Synchronization

/// Runs `work`, failing with `TimedOut` if it takes longer than `limit`. The work is not
/// cancelled (a hung fsync cannot be, and a COMMIT never is), only no longer waited for.
public func withTimeout<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws
    -> T
{
    let slot = OneShot<T>()
    return try await withCheckedThrowingContinuation { continuation in
        slot.set(continuation)
        Task {
            do { slot.finish(.success(try await work())) } catch { slot.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            slot.finish(.failure(TimedOut(limit: limit)))
        }
    }
}

/// A continuation resumed by whichever finishes first.
private final class OneShot<T: Sendable>: Sendable {
    private let pending = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        pending.withLock { $0 = continuation }
    }

    func finish(_ result: Result<T, any Error>) {
        let continuation = pending.withLock { value in
            defer { value = nil }
            return value
        }
        continuation?.resume(with: result)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let limit: Duration
    public var description: String { "no answer within \(limit)" }
}
