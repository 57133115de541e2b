import Foundation
import Logging
import Metrics
import Synchronization

/// One committed event waiting to be filed.
public struct OutboxItem: Sendable, Equatable {
    public let id: Int64
    public let fileName: String
    public let payload: [UInt8]

    public init(id: Int64, fileName: String, payload: [UInt8]) {
        self.id = id
        self.fileName = fileName
        self.payload = payload
    }
}

/// Where committed events wait for the relay: the ledger's outbox table, in the daemon.
public protocol OutboxSource: Sendable {
    /// Oldest first, which is filing order.
    func pendingOutbox(limit: Int) async throws -> [OutboxItem]
    func removeFromOutbox(ids: [Int64]) async throws
}

/// Moves committed events from the outbox into the queue directory.
///
/// Order is deliver, then delete the outbox row. A crash in between means the
/// event is delivered again on the next start, under the same file name, which
/// `QueueDirectory.deliver` turns into a replacement rather than a second file.
///
/// Only the holder of `<queue>/.outbox.lock` drains; the relay takes the lock on its first
/// drain and keeps it until `releaseLock()` or until it is gone.
public actor OutboxRelay {
    private let outbox: any OutboxSource
    private let queue: QueueDirectory
    private let logger: Logger
    private let batchSize: Int
    private let pollInterval: Duration
    // fsync can take a while; keep it off the cooperative pool.
    private nonisolated let ioQueue = DispatchQueue(label: "pgnoti.spool.deliver")
    private let wakeSignal = WakeSignal()
    private var inFlight: Task<Int, any Error>?
    private var lock: QueueLock?
    private let role: OutboxLock.Role
    private var reportedLockWait = false
    /// Set until a drain has prepared the queue directory, and again after any failure: a queue
    /// that was missing or read-only is created before the next try.
    private var needsPrepare = true
    private let health = Mutex(RelayHealth())

    /// What readiness and the status line need to know about the relay.
    public struct RelayHealth: Sendable, Equatable {
        /// Why the last drain failed; nil once one succeeds.
        public var lastError: String?
        public var filed = 0
        /// Whether this process holds the outbox lock.
        public var holdsLock = false
    }

    /// Creates the relay's series now, so `/metrics` shows them at 0 from the start.
    public static func registerMetrics() {
        _ = filedCounter
        _ = errorCounter
    }

    static let filedCounter = Counter(label: "pgnoti_events_filed_total")
    static let errorCounter = Counter(label: "pgnoti_relay_errors_total")

    static let initialBackoff: Duration = .milliseconds(100)
    /// At most this long between tries while filing fails, so a queue that comes back is
    /// filed within seconds.
    static let maximumBackoff: Duration = .seconds(10)

    /// - Parameter pollInterval: how often `run` looks for events it was not woken for, such as
    ///   those a command-line tool committed while this process held the lock.
    public init(
        outbox: any OutboxSource, queue: QueueDirectory, logger: Logger, role: OutboxLock.Role = .daemon,
        batchSize: Int = 256, pollInterval: Duration = .milliseconds(500)
    ) {
        self.role = role
        precondition(batchSize > 0, "batchSize must be positive")
        self.outbox = outbox
        self.queue = queue
        self.logger = logger
        self.batchSize = batchSize
        self.pollInterval = pollInterval
    }

    /// Thrown by `drain` when another process holds the outbox lock.
    public struct LockHeldElsewhere: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "\(path) is held by another process, which files the outbox" }
    }

    /// True once this relay holds `<queue>/.outbox.lock`.
    public var holdsLock: Bool { lock != nil }

    public nonisolated var currentHealth: RelayHealth { health.withLock { $0 } }

    /// Returns once the relay's I/O thread has taken a turn: a relay stuck in a hung fsync or
    /// rename never does, and the watchdog must then let systemd restart the daemon.
    public nonisolated func probeIO() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            ioQueue.async { done.resume() }
        }
    }

    /// Parks the I/O thread until the returned closure is called (tests of the watchdog).
    @_spi(Testing) public nonisolated func holdIO() -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        ioQueue.async { gate.wait() }
        return { gate.signal() }
    }

    /// Takes the outbox lock if it is free; true when this relay holds it afterwards.
    @discardableResult
    public func takeLock() throws -> Bool {
        if lock == nil { lock = try OutboxLock.tryAcquire(queue: queue.root.path, role: role) }
        return lock != nil
    }

    /// Like `takeLock`, waiting up to `timeout` for the current holder.
    @discardableResult
    public func takeLock(waitingUpTo timeout: Duration) async throws -> Bool {
        if lock == nil { lock = try await OutboxLock.acquire(queue: queue.root.path, role: role, waitingUpTo: timeout) }
        return lock != nil
    }

    public func releaseLock() async {
        _ = try? await inFlight?.value
        lock = nil
        health.withLock { $0.holdsLock = false }
    }

    /// Files everything pending and returns how many files were delivered. Throws
    /// `LockHeldElsewhere` when another process holds the outbox lock.
    ///
    /// Drains never overlap: each pass starts after the previous one ended.
    /// Overlapping passes could both read a row before either deletes it and
    /// deliver it twice, after a consumer may already have taken the first copy.
    ///
    /// The pass runs in its own task, so cancelling the caller does not cut a
    /// delivery in half; that is also what lets `run` finish with one last
    /// drain after it has been cancelled.
    public func drain() async throws -> Int {
        let held: Bool
        do {
            if needsPrepare { try queue.prepare() }
            held = try takeLock()
        } catch {
            // The queue cannot even hold its lock file (read-only, gone, full): not filing now
            // is all that follows; the outbox keeps every event until it can.
            needsPrepare = true
            health.withLock { $0.lastError = "\(error)" }
            Self.errorCounter.increment()
            throw error
        }
        guard held else { throw LockHeldElsewhere(path: queue.root.path + "/" + OutboxLock.fileName) }
        needsPrepare = false
        let previous = inFlight
        let pass = Task { [outbox, queue, ioQueue, batchSize] in
            _ = try? await previous?.value
            return try await Self.drainPass(outbox: outbox, queue: queue, ioQueue: ioQueue, batchSize: batchSize)
        }
        inFlight = pass
        defer { if inFlight == pass { inFlight = nil } }
        do {
            let filed = try await pass.value
            health.withLock {
                $0.lastError = nil
                $0.filed += filed
                $0.holdsLock = true
            }
            if filed > 0 { Self.filedCounter.increment(by: filed) }
            return filed
        } catch {
            needsPrepare = true
            health.withLock { $0.lastError = "\(error)" }
            Self.errorCounter.increment()
            throw error
        }
    }

    /// Asks `run` to drain now instead of at the next poll. Many calls made
    /// while a drain is running collapse into one further drain.
    public nonisolated func wake() {
        wakeSignal.signal()
    }

    /// Drains whenever woken and at least every `pollInterval`, until the
    /// calling task is cancelled; then drains once more and returns. Errors
    /// are logged and retried with exponential backoff; while another process
    /// holds the outbox lock the relay waits for it, polling.
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
                    if reportedLockWait {
                        logger.notice("took the outbox lock; filing events")
                        reportedLockWait = false
                    }
                    backoff = nil
                } catch let error as LockHeldElsewhere {
                    if !reportedLockWait {
                        logger.warning("waiting for the outbox lock", metadata: ["detail": "\(error)"])
                        reportedLockWait = true
                    }
                } catch {
                    if Task.isCancelled { break }
                    let delay = backoff.map { min($0 * 2, Self.maximumBackoff) } ?? Self.initialBackoff
                    backoff = delay
                    logger.error(
                        "outbox drain failed; retrying",
                        metadata: [
                            "error": "\(error)", "retry_in": "\(delay)",
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
        } catch is LockHeldElsewhere {
            // Whoever holds the lock files them.
        } catch {
            logger.error("final outbox drain failed; events stay in the outbox", metadata: ["error": "\(error)"])
        }
    }

    private static func drainPass(
        outbox: any OutboxSource, queue: QueueDirectory, ioQueue: DispatchQueue, batchSize: Int
    ) async throws -> Int {
        var total = 0
        while true {
            let items = try await outbox.pendingOutbox(limit: batchSize)
            if items.isEmpty { return total }
            let (count, failure) = await withCheckedContinuation { done in
                ioQueue.async {
                    done.resume(returning: queue.deliver(items.map { ($0.fileName, $0.payload) }))
                }
            }
            // Forget what did reach the queue even if a later item failed, so
            // a retry does not replay it.
            try await outbox.removeFromOutbox(ids: items.prefix(count).map(\.id))
            total += count
            if let failure { throw failure }
        }
    }
}

/// Bridges `wake()` (any thread, never blocks) to the stream `run` consumes.
private final class WakeSignal: Sendable {
    private let continuation = Mutex<AsyncStream<Void>.Continuation?>(nil)

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
