import Foundation
import Logging
import PGNotiCore
import PGNotiStore

/// Moves committed events from the ledger's outbox into the queue directory.
///
/// Order is deliver, then delete the outbox row. A crash in between means the
/// event is delivered again on the next start, under the same file name, which
/// `QueueDirectory.deliver` turns into a replacement rather than a second file.
public actor OutboxRelay {
    private let ledger: Ledger
    private let queue: QueueDirectory
    private let logger: Logger
    private let batchSize: Int
    private let pollInterval: Duration
    // fsync can take a while; keep it off the cooperative pool.
    private let ioQueue = DispatchQueue(label: "pgnoti.spool.deliver")
    private let wakeSignal = WakeSignal()
    private var inFlight: Task<Int, any Error>?

    static let initialBackoff: Duration = .milliseconds(100)
    static let maximumBackoff: Duration = .seconds(30)

    public init(
        ledger: Ledger, queue: QueueDirectory, logger: Logger,
        batchSize: Int = 128, pollInterval: Duration = .seconds(1)
    ) {
        precondition(batchSize > 0, "batchSize must be positive")
        self.ledger = ledger
        self.queue = queue
        self.logger = logger
        self.batchSize = batchSize
        self.pollInterval = pollInterval
    }

    /// Files everything pending and returns how many files were delivered.
    ///
    /// Drains never overlap: each pass starts after the previous one ended.
    /// Overlapping passes could both read a row before either deletes it and
    /// deliver it twice, after a consumer may already have taken the first copy.
    ///
    /// The pass runs in its own task, so cancelling the caller does not cut a
    /// delivery in half; that is also what lets `run` finish with one last
    /// drain after it has been cancelled.
    public func drain() async throws -> Int {
        let previous = inFlight
        let pass = Task { [ledger, queue, ioQueue, batchSize] in
            _ = try? await previous?.value
            return try await Self.drainPass(ledger: ledger, queue: queue, ioQueue: ioQueue, batchSize: batchSize)
        }
        inFlight = pass
        defer { if inFlight == pass { inFlight = nil } }
        return try await pass.value
    }

    /// Asks `run` to drain now instead of at the next poll. Many calls made
    /// while a drain is running collapse into one further drain.
    public nonisolated func wake() {
        wakeSignal.signal()
    }

    /// Drains whenever woken and at least every `pollInterval`, until the
    /// calling task is cancelled; then drains once more and returns. Errors
    /// are logged and retried with exponential backoff.
    public func run() async {
        let (ticks, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        wakeSignal.attach(continuation)
        continuation.yield()  // catch up with whatever a previous run left behind

        await withTaskGroup(of: Void.self) { group in
            group.addTask { [pollInterval] in
                while true {
                    do { try await Task.sleep(for: pollInterval) } catch { return }
                    continuation.yield()
                }
            }
            var backoff: Duration?
            // The stream ends when this task is cancelled.
            for await _ in ticks {
                do {
                    let delivered = try await drain()
                    if delivered > 0 { logger.debug("filed events", metadata: ["count": "\(delivered)"]) }
                    backoff = nil
                } catch {
                    if Task.isCancelled { break }
                    let delay = backoff.map { min($0 * 2, Self.maximumBackoff) } ?? Self.initialBackoff
                    backoff = delay
                    logger.error(
                        "outbox drain failed; retrying",
                        metadata: [
                            "error": "\(error)", "retryIn": "\(delay)",
                        ])
                    do { try await Task.sleep(for: delay) } catch { break }
                    // Retry after the backoff even if nobody woke us meanwhile.
                    continuation.yield()
                }
            }
            group.cancelAll()
        }
        wakeSignal.detach()
        continuation.finish()

        do {
            let delivered = try await drain()
            if delivered > 0 { logger.info("filed events on shutdown", metadata: ["count": "\(delivered)"]) }
        } catch {
            logger.error("final outbox drain failed; events stay in the outbox", metadata: ["error": "\(error)"])
        }
    }

    private static func drainPass(
        ledger: Ledger, queue: QueueDirectory, ioQueue: DispatchQueue,
        batchSize: Int
    ) async throws -> Int {
        var total = 0
        while true {
            let items = try await ledger.pendingOutbox(limit: batchSize)
            if items.isEmpty { return total }
            let (count, failure) = await withCheckedContinuation { done in
                ioQueue.async {
                    done.resume(returning: queue.deliver(items.map { ($0.fileName, $0.payload) }))
                }
            }
            // Forget what did reach the queue even if a later item failed, so
            // a retry does not replay it.
            try await ledger.removeFromOutbox(ids: items.prefix(count).map(\.id))
            total += count
            if let failure { throw failure }
        }
    }
}

/// Bridges `wake()` (any thread, never blocks) to the stream `run` consumes.
private struct WakeSignal: Sendable {
    private let continuation = Locked<AsyncStream<Void>.Continuation?>(nil)

    func attach(_ continuation: AsyncStream<Void>.Continuation) {
        self.continuation.withLock { $0 = continuation }
    }

    func detach() {
        continuation.withLock { $0 = nil }
    }

    func signal() {
        // Yield outside our lock, so it is never held while the stream takes its own.
        continuation.withLock { $0 }?.yield()
    }
}
