import Foundation
import Logging
import PGNotiSpool
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

public struct ForwardSettings: Sendable {
    /// Deliveries in flight at once (each for a different order).
    public var concurrency: Int
    public var retry: RetrySchedule
    /// How long delivered events stay in `forward/done/`.
    public var keepDone: Duration
    /// The longest the consumer sleeps when nothing wakes it (inotify, a finished delivery);
    /// without inotify, how often an empty `new/` is listed.
    public var scanInterval: Duration
    /// Most events held claimed at once; the rest wait in `new/`, in order.
    public var claimLimit: Int
    /// How often the queue is listed anyway, as a safety net under inotify.
    public var rescanInterval: Duration
    /// Follow the queue with inotify (else by listing it, as where inotify is unavailable).
    public var watch = true

    public init(
        concurrency: Int = 4, retry: RetrySchedule = RetrySchedule(giveUpAfter: .seconds(72 * 3600)),
        keepDone: Duration = .seconds(7 * 86_400), scanInterval: Duration = .milliseconds(250), claimLimit: Int = 5_000,
        rescanInterval: Duration = .seconds(60)
    ) {
        self.concurrency = concurrency
        self.retry = retry
        self.keepDone = keepDone
        self.scanInterval = scanInterval
        self.claimLimit = claimLimit
        self.rescanInterval = rescanInterval
    }
}

/// The queue's one consumer: takes events from its source (the queue directory, or the
/// database's outbox in a cluster), hands each to a delivery (a webhook or a command), and
/// records the outcome: delivered, retried later, or, once retries are exhausted or the
/// receiver said 410, failed.
///
/// Events of one order (`order_id`, else `tid`, per provider and merchant) go out one at a
/// time in filing order: a cancel never overtakes its approval, and a later event waits while
/// an earlier one is retrying. Different orders go ahead in parallel.
///
/// A crash at any moment loses nothing: an event stays with its source until its outcome is
/// recorded, and what was claimed is taken on again at start. The one cost is that an event
/// delivered just before a crash, and not yet recorded, is sent again, with the same
/// `webhook-id`.
public final class Forwarder: Service, Sendable {
    let source: any EventSource
    let delivery: any EventDelivery
    let settings: ForwardSettings
    let logger: Logger
    private let lastTick = Atomic<Int64>(0)

    public init(source: any EventSource, delivery: any EventDelivery, settings: ForwardSettings, logger: Logger) {
        self.source = source
        self.delivery = delivery
        self.settings = settings
        self.logger = logger
    }

    /// The forwarder of a queue directory.
    public convenience init(
        layout: ForwardLayout, delivery: any EventDelivery, settings: ForwardSettings, logger: Logger
    ) {
        self.init(
            source: DirectoryEventSource(layout: layout, settings: settings, logger: logger), delivery: delivery,
            settings: settings, logger: logger)
    }

    /// Answers once the loop has gone round recently: for the systemd watchdog.
    public func probe() async throws {
        let seen = lastTick.load(ordering: .relaxed)
        let limit = Int64((settings.scanInterval * 8).seconds * 1e9) + 2_000_000_000
        guard Self.monotonicNanos() - seen < limit else { throw ForwardError("the consumer loop is not turning") }
    }

    enum Wake: Sendable {
        case tick
        case finished(name: String, next: AfterAttempt)
    }

    /// What the index does with an event once its attempt's outcome is recorded.
    enum AfterAttempt: Sendable {
        /// Delivered or given up: it leaves the index, and its lane goes on.
        case done
        /// Tried again when the record says.
        case retry(DeliveryRecord)
        /// The source may no longer write for it (another forwarder took over): forgotten.
        case forget
    }

    /// Runs until a graceful shutdown; then lets the deliveries in flight finish (each is
    /// bounded by its timeout) and returns.
    public func run() async throws {
        var index = ForwardIndex()
        try await source.start(&index)
        var lastPrune = ContinuousClock.now - .seconds(3600)
        _ = await source.publish(inFlight: index.inFlight, force: true)
        let settings = self.settings
        let delivery = self.delivery
        let source = self.source

        await withTaskGroup(of: Wake.self) { group in
            var running = 0
            var ticking = false
            while true {
                lastTick.store(Self.monotonicNanos(), ordering: .relaxed)
                let stopping = Task.isShuttingDownGracefully || Task.isCancelled
                if !stopping {
                    await source.refresh(&index, room: settings.claimLimit - index.claimedCount)
                    if ContinuousClock.now - lastPrune > .seconds(600) {
                        await source.pruneDelivered(olderThan: settings.keepDone)
                        lastPrune = ContinuousClock.now
                    }
                    // Start what is due, one per lane, oldest lane head first.
                    let now = Date().timeIntervalSince1970
                    while running < settings.concurrency, source.mayStartDelivery(), let event = index.start(now: now) {
                        guard let pending = await source.pending(event) else {
                            index.remove(event.name)
                            continue
                        }
                        running += 1
                        // The outcome is recorded by the task itself, so that deliveries in
                        // flight record theirs side by side (a database commits each); the lane
                        // stays busy until it is, so an order's next event waits for it.
                        group.addTask {
                            let outcome = await delivery.deliver(pending)
                            return .finished(
                                name: event.name, next: await self.record(outcome, of: event, startedAt: now))
                        }
                    }
                    let stale = !(await source.publish(inFlight: index.inFlight, force: false))
                    if !ticking {
                        ticking = true
                        var wait = settings.scanInterval.seconds
                        if let next = index.nextRetryAt { wait = min(wait, max(0.01, next - now)) }
                        if stale { wait = min(wait, Self.publishRetry.seconds) }
                        let timeout = Duration.milliseconds(Int64(wait * 1000))
                        group.addTask {
                            await source.waitForWork(upTo: timeout)
                            return .tick
                        }
                    }
                } else if running == 0 {
                    group.cancelAll()
                    return
                } else if !ticking {
                    ticking = true
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(100))
                        return .tick
                    }
                }

                guard let wake = await group.next() else { return }
                switch wake {
                case .tick:
                    ticking = false
                case .finished(let name, let next):
                    running -= 1
                    switch next {
                    case .done, .forget: index.remove(name)
                    case .retry(let record): index.retryLater(name, record: record)
                    }
                    if stopping { _ = await source.publish(inFlight: index.inFlight, force: false) }
                }
            }
        }
        _ = await source.publish(inFlight: index.inFlight, force: true)
        await source.stop()
        await delivery.shutdown()
    }

    // MARK: - Outcomes

    private func record(_ outcome: DeliveryOutcome, of event: ForwardIndex.Claimed, startedAt: Double) async
        -> AfterAttempt
    {
        let now = Date().timeIntervalSince1970
        let attempts = (event.record?.attempts ?? 0) + 1
        var metadata: Logger.Metadata = [
            "event_id": "\(event.id)", "kind": "\(event.kind)", "file": "\(event.name)",
            "attempt": .stringConvertible(attempts),
        ]
        // The event's record with this attempt counted as failed.
        func failedRecord(_ detail: String) -> DeliveryRecord {
            var record = event.record ?? DeliveryRecord(eventID: event.id, attempts: 0, firstAttemptAt: startedAt)
            record.attempts = attempts
            record.lastAttemptAt = now
            record.lastError = detail
            return record
        }
        switch outcome {
        case .delivered(let detail):
            switch await source.delivered(event) {
            case .recorded:
                metadata["result"] = "\(detail)"
                logger.info("delivered", metadata: metadata)
                return .done
            case .failed(let error):
                // Delivered but not recorded: it will be delivered again (same webhook-id).
                logger.error("delivered but the delivery could not be recorded", metadata: ["error": "\(error)"])
                return .retry(
                    event.record ?? DeliveryRecord(eventID: event.id, attempts: 0, firstAttemptAt: startedAt))
            case .notOurs:
                return notOurs(metadata)
            }
        case .gone(let detail):
            var record = failedRecord(detail)
            record.nextAttemptAt = nil
            return await giveUp(
                event, record: record, reason: "the receiver answered 410 Gone", detail: detail, metadata)
        case .failed(let detail):
            var record = failedRecord(detail)
            if settings.retry.isExhausted(firstAttemptAt: record.firstAttemptAt, now: now) {
                record.nextAttemptAt = nil
                return await giveUp(event, record: record, reason: "retries exhausted", detail: detail, metadata)
            }
            let delay = settings.retry.delay(afterFailures: attempts, jitter: Double.random(in: -1...1))
            record.nextAttemptAt = now + delay.seconds
            switch await source.retryLater(event, record: record) {
            case .recorded: break
            case .failed(let error):
                logger.warning("could not save the retry state", metadata: ["error": "\(error)"])
            case .notOurs:
                return notOurs(metadata)
            }
            metadata["error"] = "\(detail)"
            metadata["retry_in_seconds"] = .stringConvertible((delay.seconds * 10).rounded() / 10)
            logger.warning("delivery failed; will retry", metadata: metadata)
            return .retry(record)
        }
    }

    private func notOurs(_ metadata: Logger.Metadata) -> AfterAttempt {
        logger.warning("the outcome was not recorded: another forwarder holds the lease now", metadata: metadata)
        return .forget
    }

    private func giveUp(
        _ event: ForwardIndex.Claimed, record: DeliveryRecord, reason: String, detail: String,
        _ metadata: Logger.Metadata
    ) async -> AfterAttempt {
        var metadata = metadata
        metadata["error"] = "\(detail)"
        metadata["reason"] = "\(reason)"
        switch await source.giveUp(event, record: record) {
        case .recorded:
            logger.error("delivery given up (`pgnoti forward retry` brings it back)", metadata: metadata)
        case .failed(let error):
            metadata["write_error"] = "\(error)"
            logger.error("delivery given up but could not be recorded as failed", metadata: metadata)
        case .notOurs:
            logger.warning("delivery given up, not recorded: another forwarder holds the lease now", metadata: metadata)
            return .forget
        }
        return .done
    }

    /// How soon the loop looks again when its source left the in-flight list out of date.
    static let publishRetry = Duration.milliseconds(100)

    static func monotonicNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// What the consumer needs to know of an event: its id, its kind, and the order it belongs to.
public struct EventFacts: Sendable {
    public let id: String
    public let kind: String
    /// `provider/merchant/order_id`, else `provider/merchant/tid#`: events that must go out in order.
    public let lane: String

    public init?(json data: Data) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let id = object["id"] as? String, !id.isEmpty
        else { return nil }
        self.id = id
        kind = object["kind"] as? String ?? "unknown"
        let provider = object["provider"] as? String ?? "-"
        let merchant = object["merchant_id"] as? String ?? "-"
        if let order = object["order_id"] as? String, !order.isEmpty {
            lane = "\(provider)/\(merchant)/order:\(order)"
        } else {
            lane = "\(provider)/\(merchant)/tid:\(object["tid"] as? String ?? id)"
        }
    }
}
