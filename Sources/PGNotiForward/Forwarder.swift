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
    /// How often `new/` is looked at when nothing else wakes the consumer.
    public var scanInterval: Duration
    /// Most events held claimed at once; the rest wait in `new/`, in order.
    public var claimLimit: Int

    public init(
        concurrency: Int = 4, retry: RetrySchedule = RetrySchedule(giveUpAfter: .seconds(72 * 3600)),
        keepDone: Duration = .seconds(7 * 86_400), scanInterval: Duration = .milliseconds(250), claimLimit: Int = 5_000
    ) {
        self.concurrency = concurrency
        self.retry = retry
        self.keepDone = keepDone
        self.scanInterval = scanInterval
        self.claimLimit = claimLimit
    }
}

/// The queue's one consumer: claims each event from `new/` into `forward/cur/`, hands it to a
/// delivery (a webhook or a command), and moves it to `done/` or, once retries are exhausted
/// or the receiver said 410, to `failed/`.
///
/// Events of one order (`order_id`, else `tid`, per provider and merchant) go out one at a
/// time in filing order: a cancel never overtakes its approval, and a later event waits while
/// an earlier one is retrying. Different orders go ahead in parallel.
///
/// A crash at any moment loses nothing: an event is always a file in `new/`, `cur/`, `done/`
/// or `failed/`, and everything in `cur/` is picked up again at start. The one cost is that an
/// event delivered just before a crash, and not yet moved to `done/`, is sent again, with the
/// same `webhook-id`.
public final class Forwarder: Service, Sendable {
    let layout: ForwardLayout
    let delivery: any EventDelivery
    let settings: ForwardSettings
    let logger: Logger
    private let lastTick = Atomic<Int64>(0)

    public init(layout: ForwardLayout, delivery: any EventDelivery, settings: ForwardSettings, logger: Logger) {
        self.layout = layout
        self.delivery = delivery
        self.settings = settings
        self.logger = logger
    }

    /// Answers once the loop has gone round recently: for the systemd watchdog.
    public func probe() async throws {
        let seen = lastTick.load(ordering: .relaxed)
        let limit = Int64((settings.scanInterval * 8).seconds * 1e9) + 2_000_000_000
        guard Self.monotonicNanos() - seen < limit else { throw ForwardError("the consumer loop is not turning") }
    }

    /// One claimed event and where it stands.
    struct Tracked {
        let name: String
        let id: String
        let kind: String
        let lane: String
        var record: DeliveryRecord?
    }

    enum Wake: Sendable {
        case tick
        case finished(name: String, startedAt: Double, outcome: DeliveryOutcome)
    }

    /// Runs until a graceful shutdown; then lets the deliveries in flight finish (each is
    /// bounded by its timeout) and returns.
    public func run() async throws {
        try layout.create()
        var tracked: [String: Tracked] = [:]
        var lanes: [String: [String]] = [:]
        var busy: Set<String> = []
        var lastPrune = ContinuousClock.now - .seconds(3600)
        let settings = self.settings
        let delivery = self.delivery
        let layout = self.layout

        await withTaskGroup(of: Wake.self) { group in
            var running = 0
            var ticking = false
            while true {
                lastTick.store(Self.monotonicNanos(), ordering: .relaxed)
                let stopping = Task.isShuttingDownGracefully || Task.isCancelled
                if !stopping {
                    scan(&tracked, &lanes)
                    if ContinuousClock.now - lastPrune > .seconds(600) {
                        pruneDone()
                        lastPrune = ContinuousClock.now
                    }
                    // Start what is due, one per lane, oldest lane head first.
                    let now = Date().timeIntervalSince1970
                    var nextDue = Double.infinity
                    let heads = lanes.compactMap { lane, names in busy.contains(lane) ? nil : names.first }.sorted()
                    for name in heads where running < settings.concurrency {
                        guard let event = tracked[name] else { continue }
                        let due = event.record?.nextAttemptAt ?? 0
                        if due > now {
                            nextDue = min(nextDue, due)
                            continue
                        }
                        guard let body = FileManager.default.contents(atPath: layout.cur + "/" + name) else {
                            // Moved away by someone else (`forward retry` of a stale id, an operator).
                            forget(name, &tracked, &lanes)
                            continue
                        }
                        busy.insert(event.lane)
                        running += 1
                        let pending = PendingEvent(name: name, id: event.id, kind: event.kind, body: [UInt8](body))
                        group.addTask {
                            let outcome = await delivery.deliver(pending)
                            return .finished(name: name, startedAt: now, outcome: outcome)
                        }
                    }
                    if !ticking {
                        ticking = true
                        let wait = min(settings.scanInterval.seconds, max(0.01, nextDue - now))
                        group.addTask {
                            try? await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
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
                case .finished(let name, let startedAt, let outcome):
                    running -= 1
                    guard var event = tracked[name] else { continue }
                    busy.remove(event.lane)
                    finish(&event, outcome: outcome, startedAt: startedAt, &tracked, &lanes)
                }
            }
        }
        await delivery.shutdown()
    }

    // MARK: - Claiming

    /// Claims `new/` into `cur/` (up to the claim limit) and takes on whatever in `cur/` is not
    /// tracked yet: left by a crash, or brought back by `forward retry`.
    private func scan(_ tracked: inout [String: Tracked], _ lanes: inout [String: [String]]) {
        var room = settings.claimLimit - tracked.count
        if room > 0 {
            for name in ForwardLayout.names(in: layout.new).prefix(room) {
                do {
                    try ForwardLayout.move(layout.new + "/" + name, layout.cur + "/" + name)
                } catch {
                    // Claimed by another process that ignored the lock, or removed: not ours.
                    continue
                }
                room -= 1
            }
        }
        for name in ForwardLayout.names(in: layout.cur) where tracked[name] == nil {
            adopt(name, &tracked, &lanes)
        }
    }

    private func adopt(_ name: String, _ tracked: inout [String: Tracked], _ lanes: inout [String: [String]]) {
        let path = layout.cur + "/" + name
        guard let data = FileManager.default.contents(atPath: path) else { return }
        guard let facts = EventFacts(json: data) else {
            logger.error(
                "not a pgnoti event: moved to failed/ without delivery",
                metadata: ["file": "\(name)"])
            let record = DeliveryRecord(
                eventID: ForwardLayout.eventID(fromFileName: name) ?? name, attempts: 0,
                firstAttemptAt: Date().timeIntervalSince1970, lastError: "not a JSON event")
            try? record.write(to: layout.stateFile(for: name))
            try? ForwardLayout.move(path, layout.failed + "/" + name)
            return
        }
        let event = Tracked(
            name: name, id: facts.id, kind: facts.kind, lane: facts.lane,
            record: DeliveryRecord.read(layout.stateFile(for: name)))
        tracked[name] = event
        var lane = lanes[facts.lane, default: []]
        // Names sort in filing order; a retried old event goes back to its place.
        let index = lane.firstIndex { $0 > name } ?? lane.endIndex
        lane.insert(name, at: index)
        lanes[facts.lane] = lane
    }

    private func forget(_ name: String, _ tracked: inout [String: Tracked], _ lanes: inout [String: [String]]) {
        guard let event = tracked.removeValue(forKey: name) else { return }
        lanes[event.lane]?.removeAll { $0 == name }
        if lanes[event.lane]?.isEmpty == true { lanes[event.lane] = nil }
    }

    // MARK: - Outcomes

    private func finish(
        _ event: inout Tracked, outcome: DeliveryOutcome, startedAt: Double, _ tracked: inout [String: Tracked],
        _ lanes: inout [String: [String]]
    ) {
        let name = event.name
        let now = Date().timeIntervalSince1970
        let attempts = (event.record?.attempts ?? 0) + 1
        var metadata: Logger.Metadata = [
            "event_id": "\(event.id)", "kind": "\(event.kind)", "file": "\(name)",
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
            do {
                try ForwardLayout.move(layout.cur + "/" + name, layout.done + "/" + name)
                Self.touch(layout.done + "/" + name)
                unlink(layout.stateFile(for: name))
                metadata["result"] = "\(detail)"
                logger.info("delivered", metadata: metadata)
                forget(name, &tracked, &lanes)
            } catch {
                // Delivered but still in cur/: it will be delivered again (same webhook-id).
                logger.error("delivered but could not be moved to done/", metadata: ["error": "\(error)"])
            }
        case .gone(let detail):
            var record = failedRecord(detail)
            record.nextAttemptAt = nil
            giveUp(name, record: record, reason: "the receiver answered 410 Gone", detail: detail, metadata)
            forget(name, &tracked, &lanes)
        case .failed(let detail):
            var record = failedRecord(detail)
            if settings.retry.isExhausted(firstAttemptAt: record.firstAttemptAt, now: now) {
                record.nextAttemptAt = nil
                giveUp(name, record: record, reason: "retries exhausted", detail: detail, metadata)
                forget(name, &tracked, &lanes)
                return
            }
            let delay = settings.retry.delay(afterFailures: attempts, jitter: Double.random(in: -1...1))
            record.nextAttemptAt = now + delay.seconds
            do {
                try record.write(to: layout.stateFile(for: name))
            } catch {
                logger.warning("could not save the retry state", metadata: ["error": "\(error)"])
            }
            event.record = record
            tracked[name] = event
            metadata["error"] = "\(detail)"
            metadata["retry_in_seconds"] = .stringConvertible((delay.seconds * 10).rounded() / 10)
            logger.warning("delivery failed; will retry", metadata: metadata)
        }
    }

    private func giveUp(
        _ name: String, record: DeliveryRecord, reason: String, detail: String, _ metadata: Logger.Metadata
    ) {
        var metadata = metadata
        metadata["error"] = "\(detail)"
        metadata["reason"] = "\(reason)"
        do {
            try record.write(to: layout.stateFile(for: name))
            try ForwardLayout.move(layout.cur + "/" + name, layout.failed + "/" + name)
            logger.error(
                "delivery given up: moved to failed/ (`pgnoti forward retry` brings it back)", metadata: metadata)
        } catch {
            logger.error("delivery given up but could not be moved to failed/", metadata: ["error": "\(error)"])
        }
    }

    /// Removes delivered events older than `keep_done_days`.
    private func pruneDone() {
        let cutoff = Date().timeIntervalSince1970 - settings.keepDone.seconds
        var removed = 0
        for name in ForwardLayout.names(in: layout.done) {
            var info = stat()
            let path = layout.done + "/" + name
            if stat(path, &info) == 0, Double(info.st_mtim.tv_sec) < cutoff, unlink(path) == 0 { removed += 1 }
        }
        if removed > 0 {
            logger.info(
                "removed delivered events past keep_done_days", metadata: ["count": .stringConvertible(removed)])
        }
    }

    /// Sets a file's modification time to now: a rename keeps the old one, and `done/` is
    /// pruned and counted by when the event was delivered.
    static func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    static func monotonicNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// What the consumer needs to know of an event: its id, its kind, and the order it belongs to.
struct EventFacts {
    let id: String
    let kind: String
    /// `provider/merchant/order_id`, else `provider/merchant/tid#`: events that must go out in order.
    let lane: String

    init?(json data: Data) {
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
