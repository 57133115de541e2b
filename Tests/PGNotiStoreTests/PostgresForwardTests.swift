import Foundation
import Logging
import PGNotiCore
import PGNotiForward
import PGNotiPostgres
@_spi(Testing) import PGNotiStore
import PGNotiTestSupport
import PostgresNIO
import Synchronization
import Testing

/// Delivery from the database: the lease, its fencing epoch, retry state that outlives a
/// forwarder, and the cluster-wide status, with the real forwarder on the real database.
@Suite(
    .enabled(
        if: Engine.postgresURL != nil,
        "PGNOTI_TEST_DATABASE_URL is not set: delivery from the database is not tested"))
struct PostgresForwardTests {
    let logger = Logger(label: "t")

    /// Remembers every delivery asked of it; fails or refuses the ids it is told to.
    final class Recorder: EventDelivery {
        let calls = Mutex<[String]>([])
        /// Ids whose first attempt fails.
        let failFirst: Set<String>
        /// Ids the receiver answers 410.
        let gone: Set<String>

        init(failFirst: Set<String> = [], gone: Set<String> = []) {
            self.failFirst = failFirst
            self.gone = gone
        }

        func deliver(_ event: PendingEvent) async -> DeliveryOutcome {
            let earlier = calls.withLock { calls in
                defer { calls.append(event.id) }
                return calls.filter { $0 == event.id }.count
            }
            if gone.contains(event.id) { return .gone(detail: "HTTP 410") }
            if failFirst.contains(event.id) && earlier == 0 { return .failed(detail: "HTTP 503") }
            return .delivered(detail: "HTTP 200")
        }

        func shutdown() async {}
        var ids: [String] { calls.withLock { $0 } }
    }

    func source(_ ledger: PostgresLedger, lease: Duration = .seconds(3), timeout: Duration = .milliseconds(500))
        -> DatabaseEventSource
    {
        DatabaseEventSource(
            ledger: ledger, leaseDuration: lease, attemptTimeout: timeout, scanInterval: .milliseconds(20),
            logger: logger)
    }

    static func settings(firstRetry: Duration = .milliseconds(50)) -> ForwardSettings {
        ForwardSettings(
            concurrency: 4, retry: RetrySchedule(initial: firstRetry, giveUpAfter: .seconds(3600)),
            scanInterval: .milliseconds(20))
    }

    /// Rows of the outbox by state, straight from the database.
    func outbox(_ session: PostgresSession) async throws -> (undelivered: Int, delivered: Int, failed: Int) {
        let connection = try await session.connect(logger: logger)
        defer { Task { try? await connection.close() } }
        let rows = try await connection.query(
            """
            SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL)::int,
                count(*) FILTER (WHERE delivered_at IS NOT NULL)::int, count(*) FILTER (WHERE failed_at IS NOT NULL)::int
            FROM outbox
            """, logger: logger)
        for try await counts in rows.decode((Int, Int, Int).self) { return counts }
        return (0, 0, 0)
    }

    /// One order's approval and cancellation (same TID, two states), for `orders` orders, filed
    /// approval first.
    func fileOrders(_ ledger: PostgresLedger, orders: Int) async throws -> [String] {
        var ids: [String] = []
        for order in 0..<orders {
            for state in ["0", "1"] {
                let outcome = try await ledger.record(makeEntry(tid: "T\(order)", state: state))
                ids.append(try #require(outcome.acceptedID))
            }
        }
        return ids
    }

    /// Each order's approval went out before its cancellation, both times it was asked.
    static func approvalsFirst(_ calls: [String], orders: Int) -> Bool {
        (0..<orders).allSatisfy { order in
            let approval = calls.firstIndex(of: "evt-smartro-M100-T\(order)-0")
            let cancel = calls.firstIndex(of: "evt-smartro-M100-T\(order)-1")
            guard let approval, let cancel else { return false }
            let lastApproval = calls.lastIndex(of: "evt-smartro-M100-T\(order)-0")!
            return approval < cancel && lastApproval < calls.lastIndex(of: "evt-smartro-M100-T\(order)-1")!
        }
    }

    @Test func oneHolderAtATimeAndAPausedHolderWritesNothingOnceTakenOver() async throws {
        try await PostgresScratch.withDatabase { session in
            let ledger = try await PostgresLedger.open(session, logger: logger)
            defer { Task { try? await ledger.close() } }
            _ = try await fileOrders(ledger, orders: 1)
            let a = source(ledger, lease: .seconds(2), timeout: .milliseconds(200))
            let b = source(ledger, lease: .seconds(2), timeout: .milliseconds(200))
            var indexA = ForwardIndex()
            var indexB = ForwardIndex()
            await a.refresh(&indexA, room: 100)
            await b.refresh(&indexB, room: 100)
            #expect(a.isHoldingLease)
            #expect(!b.isHoldingLease, "one holder at a time")
            #expect(indexA.claimedCount == 2 && indexB.claimedCount == 0)
            let claimed = try #require(indexA.claimed.values.min { $0.name < $1.name })

            // A stops renewing (a paused process). B takes over once the database says the
            // lease expired, not before.
            let pausedAt = ContinuousClock.now
            try await waitUntil(timeout: .seconds(6), "B takes over", poll: .milliseconds(50)) {
                await b.refresh(&indexB, room: 100)
                return b.isHoldingLease
            }
            #expect(ContinuousClock.now - pausedAt >= .milliseconds(1500), "not before the lease ran out")
            #expect(indexB.claimedCount == 2, "the new epoch claims every undelivered row again")

            // A wakes: its outcome is fenced off by the epoch, and it learns it lost the lease.
            #expect(await a.delivered(claimed) == .notOurs)
            #expect(try await outbox(session).delivered == 0)
            await a.refresh(&indexA, room: 100)
            #expect(!a.isHoldingLease)
            #expect(indexA.claimedCount == 0, "its claims are dropped")
            #expect(!a.mayStartDelivery())

            // B's write goes through.
            let mine = try #require(indexB.claimed.values.first { $0.id == claimed.id })
            #expect(await b.delivered(mine) == .recorded)
            #expect(try await outbox(session).delivered == 1)
        }
    }

    @Test func noDeliveryStartsWithinTheTimeoutOfTheLeaseDeadline() async throws {
        try await PostgresScratch.withDatabase { session in
            let ledger = try await PostgresLedger.open(session, logger: logger)
            defer { Task { try? await ledger.close() } }
            let holder = source(ledger, lease: .seconds(3), timeout: .milliseconds(2500))
            var index = ForwardIndex()
            await holder.refresh(&index, room: 10)
            #expect(holder.isHoldingLease)
            #expect(holder.mayStartDelivery())
            // Without a renewal, the last half second of the lease is closed to new attempts,
            // while the lease itself still holds.
            try await waitUntil(timeout: .seconds(2), "claiming stops") { !holder.mayStartDelivery() }
            #expect(holder.isHoldingLease)
            let status = try await ledger.forwardStatus()
            #expect(status.running && status.holder == holder.holder)
        }
    }

    @Test func aTakeoverContinuesEachEventsScheduleAndKeepsEachOrdersOrder() async throws {
        try await PostgresScratch.withDatabase { session in
            let ledger = try await PostgresLedger.open(session, logger: logger)
            defer { Task { try? await ledger.close() } }
            let orders = 12
            _ = try await fileOrders(ledger, orders: orders)
            // The first forwarder fails order 0's approval once, then stops: that approval's
            // retry state, and the cancellation waiting behind it, pass to the second.
            let first = Recorder(failFirst: ["evt-smartro-M100-T0-0"])
            // Its retry is due 4 s (±20 %) later: long after A has stopped.
            let a = Forwarder(
                source: source(ledger), delivery: first, settings: Self.settings(firstRetry: .seconds(4)),
                logger: logger)
            let runA = Task { try await a.run() }
            try await waitUntil(timeout: .seconds(10), "A delivers the other orders") {
                try await outbox(session).delivered == 2 * orders - 2
            }
            runA.cancel()
            try await runA.value
            #expect(!first.ids.contains("evt-smartro-M100-T0-1"), "the cancel waits behind the failed approval")
            let retrying = try await ledger.forwardStatus().retrying
            #expect(retrying.map(\.record?.attempts) == [1])
            #expect(retrying.first?.record?.lastError == "HTTP 503")
            let due = try #require(retrying.first?.record?.nextAttemptAt)

            let second = Recorder()
            let b = Forwarder(source: source(ledger), delivery: second, settings: Self.settings(), logger: logger)
            let runB = Task { try await b.run() }
            try await waitUntil(timeout: .seconds(10), "B delivers the rest") {
                try await outbox(session).delivered == 2 * orders
            }
            runB.cancel()
            try await runB.value
            #expect(second.ids == ["evt-smartro-M100-T0-0", "evt-smartro-M100-T0-1"])
            #expect(Date().timeIntervalSince1970 >= due, "B kept A's schedule rather than starting it afresh")
            #expect(Self.approvalsFirst(first.ids + second.ids, orders: orders))
            let status = try await ledger.forwardStatus()
            #expect(status.retrying.isEmpty && status.pending == 0 && status.deliveredLastHour == 2 * orders)
            #expect(!status.running, "a forwarder that stops lets the lease go")
        }
    }

    /// Claims look past the last row claimed; a row committed late by another host, its file
    /// name older than that, is found by the look from the start that comes every few seconds.
    @Test func aRowCommittedLateWithAnOlderFileNameIsStillDelivered() async throws {
        try await PostgresScratch.withDatabase { session in
            let ledger = try await PostgresLedger.open(session, logger: logger)
            defer { Task { try? await ledger.close() } }
            _ = try await fileOrders(ledger, orders: 2)
            let recorder = Recorder()
            let forwarder = Forwarder(
                source: source(ledger), delivery: recorder, settings: Self.settings(), logger: logger)
            let run = Task { try await forwarder.run() }
            try await waitUntil(timeout: .seconds(10), "the first four delivered") {
                try await outbox(session).delivered == 4
            }
            let connection = try await session.connect(logger: logger)
            try await connection.query(
                """
                INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                VALUES ('00000000000000001-late.json', convert_to('{"id":"late","kind":"payment.approved"}', 'UTF8'),
                    0, 1)
                """, logger: logger)
            try await connection.close()
            try await waitUntil(timeout: .seconds(10), "the late one delivered") {
                try await outbox(session).delivered == 5
            }
            run.cancel()
            try await run.value
            #expect(recorder.ids.last == "late" && recorder.ids.count == 5)
        }
    }

    @Test func aGivenUpEventIsListedClusterWideAndRetryBringsItBack() async throws {
        try await PostgresScratch.withDatabase { session in
            let ledger = try await PostgresLedger.open(session, logger: logger)
            defer { Task { try? await ledger.close() } }
            let ids = try await fileOrders(ledger, orders: 2)
            let gone = Recorder(gone: [ids[2]])
            let forwarder = Forwarder(
                source: source(ledger), delivery: gone, settings: Self.settings(), logger: logger)
            let run = Task { try await forwarder.run() }
            try await waitUntil(timeout: .seconds(10), "all but one delivered") {
                try await outbox(session) == (0, 3, 1)
            }
            run.cancel()
            try await run.value
            let status = try await ledger.forwardStatus()
            #expect(status.failed.map(\.record?.eventID) == [ids[2]])
            #expect(status.failed.first?.record?.lastError == "HTTP 410")

            let result = try await ledger.retryFailed(ids: [ids[2], "no-such-event"])
            #expect(result.moved.count == 1 && result.notFound == ["no-such-event"])
            #expect(try await ledger.forwardStatus().failed.isEmpty)
            let later = Recorder()
            let again = Forwarder(source: source(ledger), delivery: later, settings: Self.settings(), logger: logger)
            let rerun = Task { try await again.run() }
            try await waitUntil(timeout: .seconds(10), "delivered after the retry") {
                try await outbox(session) == (0, 4, 0)
            }
            rerun.cancel()
            try await rerun.value
            #expect(later.ids == [ids[2]], "only the event brought back is sent again")
        }
    }
}

/// How a daemon tells that the forward lease is held on its own host.
@Suite struct LeaseHolderNameTests {
    @Test func theHolderNamesItsHostFirst() {
        let mine = DatabaseEventSource.hostName + " pid 4242 1a2b3c"
        #expect(DatabaseEventSource.isOnThisHost(holder: mine))
        #expect(!DatabaseEventSource.isOnThisHost(holder: "other-" + mine))
        #expect(!DatabaseEventSource.isOnThisHost(holder: DatabaseEventSource.hostName + "2 pid 1 ff"))
    }
}
