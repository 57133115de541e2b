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
    /// Directory listings made so far (start, safety rescans, pruning): for tests, which check
    /// that a backlog is not listed per delivery.
    let listings = Atomic<Int>(0)

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

    enum Wake: Sendable {
        case tick
        case finished(name: String, startedAt: Double, outcome: DeliveryOutcome)
    }

    /// When the directories were last listed.
    struct Scans {
        var new: ContinuousClock.Instant
        var cur: ContinuousClock.Instant
        var full: ContinuousClock.Instant
        /// When watching was last tried again, after inotify was unavailable or a directory lost.
        var watch: ContinuousClock.Instant
    }

    /// What `in-flight.json` last said, and when it was written.
    struct Published {
        var files: [String]? = nil
        var at = ContinuousClock.now - .seconds(3600)
    }

    /// Runs until a graceful shutdown; then lets the deliveries in flight finish (each is
    /// bounded by its timeout) and returns.
    ///
    /// The queue is listed once at start; after that the forwarder works from its own index
    /// (`ForwardIndex`), which its claims and outcomes keep current and inotify tells of what
    /// arrives. Where inotify is unavailable it lists `new/` only once the index has nothing
    /// left from it, and `cur/` once a second.
    public func run() async throws {
        try layout.create()
        var watcher = settings.watch ? DirectoryWatcher(directories: [layout.new, layout.cur]) : nil
        if settings.watch && watcher == nil {
            logger.warning(
                "inotify unavailable: the queue is listed instead", metadata: ["queue": "\(layout.queue)"])
        }
        defer { watcher?.close() }
        var index = ForwardIndex()
        var lastPrune = ContinuousClock.now - .seconds(3600)
        var published = Published()
        rescanNew(&index)
        rescanCur(&index)
        var scans = Scans(new: .now, cur: .now, full: .now, watch: .now)
        publishInFlight(index, &published, force: true)
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
                    refresh(&index, &watcher, &scans)
                    claim(&index)
                    if ContinuousClock.now - lastPrune > .seconds(600) {
                        pruneDone()
                        lastPrune = ContinuousClock.now
                    }
                    // Start what is due, one per lane, oldest lane head first.
                    let now = Date().timeIntervalSince1970
                    while running < settings.concurrency, let event = index.start(now: now) {
                        guard let body = FileManager.default.contents(atPath: layout.cur + "/" + event.name) else {
                            // Moved away by someone else (`forward retry` of a stale id, an operator).
                            index.remove(event.name)
                            continue
                        }
                        running += 1
                        let pending = PendingEvent(
                            name: event.name, id: event.id, kind: event.kind, body: [UInt8](body))
                        group.addTask {
                            let outcome = await delivery.deliver(pending)
                            return .finished(name: pending.name, startedAt: now, outcome: outcome)
                        }
                    }
                    let stale = !publishInFlight(index, &published, force: false)
                    if !ticking {
                        ticking = true
                        var wait = settings.scanInterval.seconds
                        if let next = index.nextRetryAt { wait = min(wait, max(0.01, next - now)) }
                        if stale { wait = min(wait, Self.publishInterval.seconds) }
                        let timeout = Duration.milliseconds(Int64(wait * 1000))
                        group.addTask { [watcher] in
                            if let watcher {
                                await watcher.wait(upTo: timeout)
                            } else {
                                try? await Task.sleep(for: timeout)
                            }
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
                    finish(name, outcome: outcome, startedAt: startedAt, &index)
                    if stopping { publishInFlight(index, &published, force: false) }
                }
            }
        }
        publishInFlight(index, &published, force: true)
        await delivery.shutdown()
    }

    // MARK: - The index

    /// Takes in what inotify saw arrive (or, without it, lists what is due a listing).
    private func refresh(_ index: inout ForwardIndex, _ watcher: inout DirectoryWatcher?, _ scans: inout Scans) {
        let now = ContinuousClock.now
        // new/ or cur/ went away (an operator, a relay that made new/ anew): watch what is
        // there now, or list until that can be done again.
        if let lost = watcher, lost.drainLost() {
            lost.close()
            watcher = DirectoryWatcher(directories: [layout.new, layout.cur])
            logger.warning(
                "a watched queue directory was replaced: watching it again",
                metadata: ["watching": "\(watcher != nil)"])
            scans.full = now - settings.rescanInterval
        } else if watcher == nil, settings.watch, now - scans.watch >= .seconds(1) {
            scans.watch = now
            watcher = DirectoryWatcher(directories: [layout.new, layout.cur])
            if watcher != nil { scans.full = now - settings.rescanInterval }
        }
        if let watcher {
            let changes = watcher.drain()
            if changes.overflowed || now - scans.full >= settings.rescanInterval {
                if changes.overflowed {
                    logger.warning("inotify dropped events: listing the queue again")
                }
                rescanNew(&index)
                rescanCur(&index)
                scans = Scans(new: now, cur: now, full: now, watch: scans.watch)
                return
            }
            for arrival in changes.arrivals where ForwardLayout.isQueueFileName(arrival.name) {
                if arrival.directory == 0 {
                    index.noteUnclaimed(arrival.name)
                } else if index.claimed[arrival.name] == nil {
                    // Brought back by `forward retry` (our own claims are known already, or done).
                    adopt(arrival.name, &index)
                }
            }
            return
        }
        // A backlog is claimed from one listing, in order; what files meanwhile sorts after it.
        if (index.unclaimedCount == 0 && now - scans.new >= settings.scanInterval)
            || now - scans.full >= settings.rescanInterval
        {
            rescanNew(&index)
            scans.new = now
            scans.full = now
        }
        if now - scans.cur >= .seconds(1) {
            rescanCur(&index)
            scans.cur = now
        }
    }

    private func rescanNew(_ index: inout ForwardIndex) {
        listings.add(1, ordering: .relaxed)
        index.replaceUnclaimed(with: ForwardLayout.names(in: layout.new))
    }

    /// Takes on whatever in `cur/` is not known yet: left by a crash, or brought back by
    /// `forward retry`.
    private func rescanCur(_ index: inout ForwardIndex) {
        listings.add(1, ordering: .relaxed)
        for name in ForwardLayout.names(in: layout.cur) where index.claimed[name] == nil {
            adopt(name, &index)
        }
    }

    /// Claims the oldest events of `new/` into `cur/`, up to the claim limit, a batch at a
    /// time so that deliveries start while a large backlog is being claimed.
    private func claim(_ index: inout ForwardIndex) {
        var room = min(settings.claimLimit - index.claimedCount, Self.claimBatch)
        while room > 0, let name = index.takeUnclaimed() {
            do {
                try ForwardLayout.move(layout.new + "/" + name, layout.cur + "/" + name)
            } catch {
                // Gone: claimed by a process that ignored the lock, or removed. Not ours.
                continue
            }
            room -= 1
            adopt(name, &index)
        }
    }

    static let claimBatch = 512
    static let publishInterval = Duration.milliseconds(100)

    private func adopt(_ name: String, _ index: inout ForwardIndex) {
        let path = layout.cur + "/" + name
        guard ForwardLayout.isRegularFile(path), let data = FileManager.default.contents(atPath: path) else { return }
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
        index.add(
            ForwardIndex.Claimed(
                name: name, id: facts.id, kind: facts.kind, lane: facts.lane,
                record: DeliveryRecord.read(layout.stateFile(for: name))))
    }

    /// Rewrites `in-flight.json` when what is being delivered changed: at most every 100 ms,
    /// at once when nothing is. False when it is left out of date for now.
    @discardableResult
    private func publishInFlight(_ index: ForwardIndex, _ published: inout Published, force: Bool) -> Bool {
        let files = index.inFlight
        guard force || files != published.files else { return true }
        let now = ContinuousClock.now
        guard force || files.isEmpty || now - published.at >= Self.publishInterval else { return false }
        do {
            try InFlightRecord(pid: getpid(), files: files).write(to: layout.inFlightFile)
        } catch {
            logger.warning("could not write in-flight.json", metadata: ["error": "\(error)"])
        }
        published = Published(files: files, at: now)
        return true
    }

    // MARK: - Outcomes

    private func finish(
        _ name: String, outcome: DeliveryOutcome, startedAt: Double, _ index: inout ForwardIndex
    ) {
        guard let event = index.claimed[name] else { return }
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
                index.remove(name)
            } catch {
                // Delivered but still in cur/: it will be delivered again (same webhook-id).
                logger.error("delivered but could not be moved to done/", metadata: ["error": "\(error)"])
                index.retryLater(
                    name,
                    record: event.record ?? DeliveryRecord(eventID: event.id, attempts: 0, firstAttemptAt: startedAt))
            }
        case .gone(let detail):
            var record = failedRecord(detail)
            record.nextAttemptAt = nil
            giveUp(name, record: record, reason: "the receiver answered 410 Gone", detail: detail, metadata)
            index.remove(name)
        case .failed(let detail):
            var record = failedRecord(detail)
            if settings.retry.isExhausted(firstAttemptAt: record.firstAttemptAt, now: now) {
                record.nextAttemptAt = nil
                giveUp(name, record: record, reason: "retries exhausted", detail: detail, metadata)
                index.remove(name)
                return
            }
            let delay = settings.retry.delay(afterFailures: attempts, jitter: Double.random(in: -1...1))
            record.nextAttemptAt = now + delay.seconds
            do {
                try record.write(to: layout.stateFile(for: name))
            } catch {
                logger.warning("could not save the retry state", metadata: ["error": "\(error)"])
            }
            index.retryLater(name, record: record)
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
        listings.add(1, ordering: .relaxed)
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
