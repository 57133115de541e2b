import Foundation
import Logging
import Synchronization

/// Logs a repeated condition (a limit tripping) once when a burst starts, then once more when
/// it has been quiet for `quiet`, with how many times it happened in between: a flood of slow
/// clients gives two log lines, not a thousand.
final class BurstLog: Sendable {
    struct State {
        var count = 0
        var active = false
        var lastSeen = ContinuousClock.now
        var summaryScheduled = false
        var metadata: Logger.Metadata = [:]
    }

    private let logger: Logger
    private let message: Logger.Message
    private let quiet: Duration
    private let state = Mutex(State())

    init(logger: Logger, message: Logger.Message, quiet: Duration = .seconds(5)) {
        self.logger = logger
        self.message = message
        self.quiet = quiet
    }

    func note(_ metadata: Logger.Metadata) {
        let (first, schedule) = state.withLock { state -> (Bool, Bool) in
            state.count += 1
            state.lastSeen = .now
            state.metadata = metadata
            let first = !state.active
            state.active = true
            let schedule = !state.summaryScheduled
            state.summaryScheduled = true
            return (first, schedule)
        }
        if first { logger.warning(message, metadata: metadata.merging(["burst": "started"]) { a, _ in a }) }
        if schedule { scheduleSummary(after: quiet) }
    }

    private func scheduleSummary(after delay: Duration) {
        Task.detached { [self] in
            try? await Task.sleep(for: delay)
            let summary: (Int, Logger.Metadata)? = state.withLock { state in
                let idle = ContinuousClock.now - state.lastSeen
                if idle < quiet {
                    return nil
                }
                defer {
                    state.count = 0
                    state.active = false
                    state.summaryScheduled = false
                }
                return (state.count, state.metadata)
            }
            guard let (count, metadata) = summary else {
                let remaining = state.withLock { quiet - (ContinuousClock.now - $0.lastSeen) }
                scheduleSummary(after: max(remaining, .milliseconds(100)))
                return
            }
            logger.warning(
                message,
                metadata: metadata.merging(["burst": "ended", "occurrences": .stringConvertible(count)]) { _, b in b })
        }
    }
}
