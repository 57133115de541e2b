import Foundation
import Logging
import PGNotiForward
import PGNotiStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The database's outbox as the forwarder's source, for a cluster: every host runs a forwarder,
/// and the one that holds the lease delivers.
///
/// - The lease is taken when free or expired, and renewed every third of `lease_seconds`. Its
///   deadline here is counted from before each renewal was sent, so it never outlives the
///   database's own expiry.
/// - No delivery starts within `timeout_seconds` of that deadline: one that started would outlive
///   the lease, and its outcome could not be recorded.
/// - A renewal that finds the lease gone, or a deadline passed without one, drops every claimed
///   event: the new holder claims them again under its own epoch. What was in flight may be sent
///   twice (same `webhook-id`); nothing is lost.
public final class DatabaseEventSource: EventSource {
    let ledger: PostgresLedger
    let leaseDuration: Duration
    /// A delivery's longest attempt: none starts closer than this to the lease's deadline.
    let attemptTimeout: Duration
    let scanInterval: Duration
    public let holder: String
    let logger: Logger
    private let holdsLease = Atomic<Bool>(false)
    private let state = Mutex(State())
    /// The claimed rows by index name. Apart from `State`, which is copied whole to be read:
    /// a copy alive while a delivery removes its row would copy every claimed row.
    private let rows = Mutex<[String: ForwardRow]>([:])

    struct State: Sendable {
        var lease: ForwardLease?
        var deadline = ContinuousClock.now
        var lastRenewal = ContinuousClock.now
        var lastAcquireAttempt = ContinuousClock.now - .seconds(3600)
        var lastClaim = ContinuousClock.now - .seconds(3600)
        var lastClaimWasFull = false
        /// The last row claimed in filing order: the next claim looks past it.
        var claimedUpTo: ForwardPosition?
        /// When a claim last looked from the start.
        var lastSweep = ContinuousClock.now - .seconds(3600)
        var published: Int?
        var publishedAt = ContinuousClock.now - .seconds(3600)
        var renewalFailing = false
    }

    static let claimBatch = 512
    static let claimWhenRoomFor = 128
    /// How often a claim looks from the start of the outbox, for rows the claims past the last
    /// one skip (committed late by another host, brought back by `forward retry`).
    static let sweepInterval = Duration.seconds(2)
    static let publishInterval = Duration.seconds(1)

    public init(
        ledger: PostgresLedger, leaseDuration: Duration, attemptTimeout: Duration,
        scanInterval: Duration = .milliseconds(250), logger: Logger
    ) {
        self.ledger = ledger
        self.leaseDuration = leaseDuration
        self.attemptTimeout = attemptTimeout
        self.scanInterval = scanInterval
        self.logger = logger
        holder = Self.holderName()
    }

    /// `host pid N xxxxxxxx`: the host first, which is how a daemon tells that the lease is held
    /// on its own host; the random part tells two runs of one pid apart.
    static func holderName() -> String {
        "\(hostName) pid \(getpid()) \(String(UInt32.random(in: .min ... .max), radix: 16))"
    }

    /// Whether this forwarder holds the lease now.
    public var isHoldingLease: Bool { holdsLease.load(ordering: .relaxed) }

    /// Whether a lease holder's name says it runs on this host.
    public static func isOnThisHost(holder: String) -> Bool {
        holder.hasPrefix(hostName + " pid ")
    }

    /// The kernel's host name, as `hostname` prints it. (Foundation's `hostName` may ask DNS,
    /// which a unit that allows only loopback traffic cannot reach.)
    public static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown-host" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var location: String { ledger.location }

    public func start(_ index: inout ForwardIndex) async throws {
        logger.info(
            "delivering from the database once this forwarder holds the lease",
            metadata: ["holder": "\(holder)", "lease_seconds": "\(leaseDuration.seconds)"])
    }

    public func refresh(_ index: inout ForwardIndex, room: Int) async {
        await keepLease(&index)
        let current = state.withLock { $0 }
        guard let lease = current.lease, mayStart(current) else { return }
        let now = ContinuousClock.now
        // A claim is a commit: while a backlog lasts, claim again once a batch's worth of room
        // has been made, not after every delivery.
        let backlogClaim = current.lastClaimWasFull && room >= Self.claimWhenRoomFor
        guard room > 0, backlogClaim || now - current.lastClaim >= scanInterval else { return }
        let limit = min(room, Self.claimBatch)
        let sweep = now - current.lastSweep >= Self.sweepInterval
        let after = sweep ? nil : current.claimedUpTo
        let rows: [ForwardRow]
        do {
            rows = try await withTimeout(leaseDuration / 3) { [ledger] in
                try await ledger.claimForward(lease, limit: limit, after: after)
            }
        } catch {
            logger.warning("could not claim events from the database", metadata: ["error": "\(error)"])
            state.withLock { $0.lastClaim = now }
            return
        }
        var claimed: [String: ForwardRow] = [:]
        for row in rows {
            // Unique, in filing order, and never the same in two epochs: an attempt still in
            // flight from before a lost lease cannot touch the event as claimed again.
            let name = "\(row.fileName)#\(row.id)@\(lease.epoch)"
            guard let facts = EventFacts(json: Data(row.payload)) else {
                await notAnEvent(row, lease)
                continue
            }
            index.add(
                ForwardIndex.Claimed(name: name, id: facts.id, kind: facts.kind, lane: facts.lane, record: row.record))
            claimed[name] = row
        }
        let last = rows.map { ForwardPosition(fileName: $0.fileName, id: $0.id) }.max()
        self.rows.withLock { $0.merge(claimed) { _, new in new } }
        state.withLock {
            $0.lastClaim = now
            $0.lastClaimWasFull = rows.count == limit
            if let last, $0.claimedUpTo.map({ last > $0 }) ?? true { $0.claimedUpTo = last }
            if sweep { $0.lastSweep = now }
        }
    }

    public func mayStartDelivery() -> Bool {
        state.withLock { mayStart($0) }
    }

    private func mayStart(_ state: State) -> Bool {
        state.lease != nil && state.deadline - ContinuousClock.now > attemptTimeout
    }

    public func pending(_ event: ForwardIndex.Claimed) async -> PendingEvent? {
        guard let row = rows.withLock({ $0[event.name] }) else { return nil }
        return PendingEvent(name: row.fileName, id: event.id, kind: event.kind, body: row.payload)
    }

    public func delivered(_ event: ForwardIndex.Claimed) async -> SourceWrite {
        await record(event, .delivered(at: Date().timeIntervalSince1970), done: true)
    }

    public func retryLater(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite {
        await self.record(event, .retry(record), done: false)
    }

    public func giveUp(_ event: ForwardIndex.Claimed, record: DeliveryRecord) async -> SourceWrite {
        await self.record(event, .failed(record), done: true)
    }

    private func record(_ event: ForwardIndex.Claimed, _ outcome: ForwardOutcome, done: Bool) async -> SourceWrite {
        let lease = state.withLock { $0.lease }
        let row = rows.withLock { $0[event.name] }
        guard let lease, let row else { return .notOurs }
        do {
            let written = try await withTimeout(leaseDuration / 3) { [ledger] in
                try await ledger.recordForward(lease, id: row.id, outcome: outcome)
            }
            guard written else {
                rows.withLock { _ = $0.removeValue(forKey: event.name) }
                return .notOurs
            }
            if done { rows.withLock { _ = $0.removeValue(forKey: event.name) } }
            return .recorded
        } catch {
            return .failed(PostgresFailure.describe(error))
        }
    }

    /// A row whose payload is not an event: given up at once, as the queue directory does.
    private func notAnEvent(_ row: ForwardRow, _ lease: ForwardLease) async {
        logger.error("not a pgnoti event: marked failed without delivery", metadata: ["file": "\(row.fileName)"])
        let now = Date().timeIntervalSince1970
        let record = DeliveryRecord(
            eventID: ForwardLayout.eventID(fromFileName: row.fileName) ?? row.fileName, attempts: 0,
            firstAttemptAt: now, lastError: "not a JSON event", lastAttemptAt: now)
        _ = try? await ledger.recordForward(lease, id: row.id, outcome: .failed(record))
    }

    public func publish(inFlight: [String], force: Bool) async -> Bool {
        let (lease, published, at) = state.withLock { ($0.lease, $0.published, $0.publishedAt) }
        guard let lease else { return true }
        guard force || inFlight.count != published else { return true }
        let now = ContinuousClock.now
        guard force || now - at >= Self.publishInterval else { return false }
        do {
            try await withTimeout(leaseDuration / 3) { [ledger] in
                try await ledger.publishInFlight(lease, count: inFlight.count)
            }
            state.withLock {
                $0.published = inFlight.count
                $0.publishedAt = now
            }
        } catch {
            state.withLock { $0.publishedAt = now }
        }
        return true
    }

    public func waitForWork(upTo timeout: Duration) async {
        try? await Task.sleep(for: timeout)
    }

    public func pruneDelivered(olderThan keepDone: Duration) async {
        guard state.withLock({ $0.lease != nil }) else { return }
        do {
            let removed = try await ledger.pruneDelivered(before: Date().addingTimeInterval(-keepDone.seconds))
            if removed > 0 {
                logger.info(
                    "removed delivered events past keep_done_days", metadata: ["count": .stringConvertible(removed)])
            }
        } catch {
            logger.warning("could not remove delivered events", metadata: ["error": "\(error)"])
        }
    }

    public func stop() async {
        guard let lease = state.withLock({ $0.lease }) else { return }
        do {
            try await ledger.releaseLease(lease)
            logger.info("released the forward lease", metadata: ["epoch": "\(lease.epoch)"])
        } catch {
            logger.warning(
                "could not release the forward lease; it expires by itself", metadata: ["error": "\(error)"])
        }
        state.withLock { $0.lease = nil }
        holdsLease.store(false, ordering: .relaxed)
    }

    // MARK: - The lease

    /// Renews the lease when a third of it has passed, takes it when free, and drops every
    /// claimed event when it was lost.
    private func keepLease(_ index: inout ForwardIndex) async {
        let now = ContinuousClock.now
        let current = state.withLock { $0 }
        let seconds = leaseDuration.seconds
        if let lease = current.lease {
            if now >= current.deadline {
                lose(&index, lease, "its deadline passed without a renewal")
                return
            }
            guard now - current.lastRenewal >= leaseDuration / 3 else { return }
            do {
                let renewed = try await withTimeout(leaseDuration / 3) { [ledger] in
                    try await ledger.renewLease(lease, seconds: seconds)
                }
                guard renewed else {
                    lose(&index, lease, "another forwarder took it over")
                    return
                }
                state.withLock {
                    $0.deadline = now + leaseDuration
                    $0.lastRenewal = now
                    $0.renewalFailing = false
                }
            } catch {
                // Tried again at the next turn of the loop; the deadline stays where the last
                // renewal put it.
                let first = state.withLock { state in
                    defer { state.renewalFailing = true }
                    return !state.renewalFailing
                }
                if first {
                    logger.warning(
                        "could not renew the forward lease", metadata: ["error": "\(PostgresFailure.describe(error))"])
                }
            }
            return
        }
        guard now - current.lastAcquireAttempt >= min(.seconds(1), leaseDuration / 3) else { return }
        state.withLock { $0.lastAcquireAttempt = now }
        guard
            let epoch = try? await withTimeout(
                leaseDuration / 3,
                { [ledger, holder] in
                    try await ledger.acquireLease(holder: holder, seconds: seconds)
                })
        else { return }
        index.removeAll()
        rows.withLock { $0 = [:] }
        state.withLock {
            $0 = State()
            $0.lease = ForwardLease(holder: holder, epoch: epoch)
            $0.deadline = now + leaseDuration
            $0.lastRenewal = now
        }
        holdsLease.store(true, ordering: .relaxed)
        logger.notice("took the forward lease: delivering", metadata: ["holder": "\(holder)", "epoch": "\(epoch)"])
    }

    private func lose(_ index: inout ForwardIndex, _ lease: ForwardLease, _ why: String) {
        index.removeAll()
        rows.withLock { $0 = [:] }
        state.withLock {
            $0 = State()
            $0.lastAcquireAttempt = ContinuousClock.now
        }
        holdsLease.store(false, ordering: .relaxed)
        logger.warning(
            "lost the forward lease: \(why); its claimed events are left to the holder",
            metadata: ["epoch": "\(lease.epoch)"])
    }
}
