/// When to try a failed delivery again: exponential backoff from `initial` (×3 each time, so
/// seconds, then minutes, then hours), capped at `maximum`, each delay jittered by ±20 % so
/// that events failed by one outage do not all come back at the same instant.
public struct RetrySchedule: Sendable, Equatable {
    public var initial: Duration
    public var maximum: Duration
    public var giveUpAfter: Duration

    public init(initial: Duration = .seconds(5), maximum: Duration = .seconds(4 * 3600), giveUpAfter: Duration) {
        self.initial = initial
        self.maximum = maximum
        self.giveUpAfter = giveUpAfter
    }

    /// The delay before attempt `failures + 1`, given `failures` ≥ 1 attempts have failed;
    /// `jitter` in [-1, 1] picks the point in the ±20 % band.
    public func delay(afterFailures failures: Int, jitter: Double) -> Duration {
        let base = initial.seconds * pow3(max(0, failures - 1))
        let capped = min(base, maximum.seconds)
        let jittered = capped * (1 + 0.2 * max(-1, min(1, jitter)))
        return .milliseconds(Int64((jittered * 1000).rounded()))
    }

    /// True once the first attempt is `giveUpAfter` in the past.
    public func isExhausted(firstAttemptAt first: Double, now: Double) -> Bool {
        now - first >= giveUpAfter.seconds
    }

    private func pow3(_ n: Int) -> Double {
        var value = 1.0
        for _ in 0..<min(n, 40) { value *= 3 }
        return value
    }
}

extension Duration {
    /// In seconds, fractions included.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
