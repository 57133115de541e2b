import Foundation
import Logging
import PGNotiForward
import PGNotiStore
import PostgresNIO
import Synchronization

/// The forward lease as its holder knows it: who, and the epoch it was taken with.
public struct ForwardLease: Sendable, Equatable {
    public var holder: String
    public var epoch: Int64
}

/// Where an outbox row falls in filing order.
struct ForwardPosition: Sendable, Comparable {
    var fileName: String
    var id: Int64

    static func < (a: ForwardPosition, b: ForwardPosition) -> Bool { (a.fileName, a.id) < (b.fileName, b.id) }
}

/// One outbox row as the active forwarder claims it.
struct ForwardRow: Sendable {
    var id: Int64
    var fileName: String
    var payload: [UInt8]
    var record: DeliveryRecord?
}

/// The outbox as the cluster's delivery queue: the lease, claims and outcomes.
///
/// Every claim and every state update is one statement that checks, in the same statement, that
/// the caller still holds the lease: its holder, its epoch and `expires > clock_timestamp()`. The
/// epoch grows with each takeover, so a forwarder that was paused past its lease (a stopped
/// process, a long GC-like stall, a partition) writes nothing once it wakes: its statements match
/// no row, and it learns it has lost the lease. The database's clock alone decides expiry.
extension PostgresLedger {
    static let leaseName = "forward"

    /// Takes the lease if nobody holds it or its holder's has expired. Returns the new epoch, or
    /// nil when another forwarder holds it. (The `NOT EXISTS` spares a standing-by forwarder's
    /// look, once a second, the row lock and the commit that `ON CONFLICT` would take.)
    func acquireLease(holder: String, seconds: Double) async throws -> Int64? {
        let rows = try await connections.writer.query(
            """
            INSERT INTO forward_lease AS l (name, holder, epoch, expires, acquired_at, renewed_at)
            SELECT \(Self.leaseName), \(holder), 1, clock_timestamp() + make_interval(secs => \(seconds)),
                clock_timestamp(), clock_timestamp()
            WHERE NOT EXISTS (
                SELECT 1 FROM forward_lease WHERE name = \(Self.leaseName) AND expires > clock_timestamp())
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = l.epoch + 1,
                expires = excluded.expires, acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at,
                in_flight = 0
            WHERE l.expires <= clock_timestamp()
            RETURNING epoch
            """, logger: logger)
        for try await epoch in rows.decode(Int64.self) { return epoch }
        return nil
    }

    /// Pushes the expiry `seconds` ahead; false when the lease is no longer this holder's.
    func renewLease(_ lease: ForwardLease, seconds: Double) async throws -> Bool {
        let rows = try await connections.writer.query(
            """
            UPDATE forward_lease SET expires = clock_timestamp() + make_interval(secs => \(seconds)),
                renewed_at = clock_timestamp()
            WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
                AND expires > clock_timestamp()
            RETURNING 1
            """, logger: logger)
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Lets the lease go at once, so another forwarder takes over without waiting for it to expire.
    func releaseLease(_ lease: ForwardLease) async throws {
        try await connections.writer.query(
            """
            UPDATE forward_lease SET expires = clock_timestamp(), in_flight = 0
            WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
            """, logger: logger)
    }

    /// How many deliveries the holder has in flight, for `forward status` on any host.
    func publishInFlight(_ lease: ForwardLease, count: Int) async throws {
        try await connections.writer.query(
            """
            UPDATE forward_lease SET in_flight = \(count)
            WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
                AND expires > clock_timestamp()
            """, logger: logger)
    }

    /// Claims up to `limit` undelivered rows this epoch has not claimed yet, oldest filing first:
    /// rows that arrived since the last claim, rows `forward retry` brought back, and after a
    /// takeover every undelivered row (the new epoch has claimed none). Marking the claim keeps
    /// the next one from returning the same rows.
    ///
    /// `after` starts the look past the last row claimed, so that a backlog's claims do not walk
    /// again over every row claimed (and every dead row version delivery left) before it. A look
    /// from the start (`after` nil, now and then) finds what such looks skip: a row committed late
    /// by another host with an older file name, a row `forward retry` brought back.
    func claimForward(_ lease: ForwardLease, limit: Int, after: ForwardPosition?) async throws -> [ForwardRow] {
        let from = after ?? ForwardPosition(fileName: "", id: 0)
        let rows = try await connections.writer.query(
            """
            WITH picked AS (
                SELECT o.id FROM outbox o
                WHERE \(unescaped: Self.undelivered) AND (o.file_name, o.id) > (\(from.fileName), \(from.id))
                    AND o.claimed_epoch IS DISTINCT FROM \(lease.epoch)
                    AND EXISTS (SELECT 1 FROM forward_lease
                        WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
                            AND expires > clock_timestamp())
                ORDER BY o.file_name, o.id LIMIT \(limit) FOR UPDATE)
            UPDATE outbox o SET claimed_epoch = \(lease.epoch) FROM picked WHERE o.id = picked.id
            RETURNING o.id, o.file_name,
                CASE WHEN length(o.payload) > 0 THEN o.payload
                    ELSE (SELECT n.event_json FROM notifications n WHERE n.id = o.notification_id) END,
                o.attempts, o.first_attempt_at, o.next_attempt_at, o.last_attempt_at, o.last_error
            """, logger: logger)
        var claimed: [ForwardRow] = []
        for try await (id, name, payload, attempts, first, next, last, error) in rows.decode(
            (Int64, String, Data?, Int, Int64?, Int64?, Int64?, String?).self)
        {
            let eventID = ForwardLayout.eventID(fromFileName: name) ?? name
            let record =
                attempts > 0 || first != nil
                ? DeliveryRecord(
                    eventID: eventID, attempts: attempts, firstAttemptAt: Self.seconds(first) ?? 0,
                    nextAttemptAt: Self.seconds(next), lastError: error, lastAttemptAt: Self.seconds(last))
                : nil
            claimed.append(ForwardRow(id: id, fileName: name, payload: Array(payload ?? Data()), record: record))
        }
        return claimed
    }

    /// What became of one attempt, written only while the lease is still this holder's. False
    /// when it is not (the row is another forwarder's to deliver now).
    func recordForward(_ lease: ForwardLease, id: Int64, outcome: ForwardOutcome) async throws -> Bool {
        let rows: PostgresRowSequence
        switch outcome {
        case .delivered(let at):
            let micros = Self.micros(at)
            rows = try await connections.writer.query(
                """
                UPDATE outbox SET delivered_at = \(micros), last_attempt_at = \(micros), next_attempt_at = NULL,
                    attempts = attempts + 1, first_attempt_at = coalesce(first_attempt_at, \(micros))
                WHERE id = \(id) AND delivered_at IS NULL AND claimed_epoch = \(lease.epoch)
                    AND EXISTS (SELECT 1 FROM forward_lease
                        WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
                            AND expires > clock_timestamp())
                RETURNING 1
                """, logger: logger)
        case .retry(let record), .failed(let record):
            let failedAt: Int64? = if case .failed = outcome { Self.micros(record.lastAttemptAt ?? 0) } else { nil }
            rows = try await connections.writer.query(
                """
                UPDATE outbox SET attempts = \(record.attempts), first_attempt_at = \(Self.micros(record.firstAttemptAt)),
                    next_attempt_at = \(record.nextAttemptAt.map(Self.micros)),
                    last_attempt_at = \(record.lastAttemptAt.map(Self.micros)), last_error = \(record.lastError),
                    failed_at = \(failedAt)
                WHERE id = \(id) AND delivered_at IS NULL AND claimed_epoch = \(lease.epoch)
                    AND EXISTS (SELECT 1 FROM forward_lease
                        WHERE name = \(Self.leaseName) AND holder = \(lease.holder) AND epoch = \(lease.epoch)
                            AND expires > clock_timestamp())
                RETURNING 1
                """, logger: logger)
        }
        for try await _ in rows.decode(Int.self) { return true }
        return false
    }

    /// Deletes rows delivered before `cutoff`. Any host may: it touches no undelivered row.
    func pruneDelivered(before cutoff: Date) async throws -> Int {
        let rows = try await connections.writer.query(
            """
            WITH gone AS (DELETE FROM outbox WHERE delivered_at < \(cutoff.unixMicroseconds) RETURNING 1)
            SELECT count(*)::int FROM gone
            """, logger: logger)
        for try await n in rows.decode(Int.self) { return n }
        return 0
    }

    /// Where delivery stands across the cluster: every host reads the same rows, so every host
    /// reports the same figures.
    public func forwardStatus(now: Date = Date()) async throws -> ForwardStatus {
        var status = ForwardStatus()
        let lease = try await reader.query(
            """
            SELECT holder, in_flight, expires > clock_timestamp() FROM forward_lease WHERE name = \(Self.leaseName)
            """, logger: logger)
        for try await (holder, inFlight, live) in lease.decode((String, Int, Bool).self) where live {
            status.running = true
            status.holder = holder
            status.inFlight = inFlight
        }
        let hourAgo = now.addingTimeInterval(-3600).unixMicroseconds
        let counts = try await reader.query(
            """
            SELECT count(*) FILTER (WHERE \(unescaped: Self.undelivered) AND o.attempts = 0)::int,
                count(*) FILTER (WHERE o.delivered_at >= \(hourAgo))::int
            FROM outbox o
            """, logger: logger)
        for try await (pending, delivered) in counts.decode((Int, Int).self) {
            status.pending = pending
            status.deliveredLastHour = delivered
        }
        let entries = try await reader.query(
            """
            SELECT o.file_name, o.attempts, o.first_attempt_at, o.next_attempt_at, o.last_attempt_at, o.last_error,
                o.failed_at IS NOT NULL
            FROM outbox o
            WHERE o.failed_at IS NOT NULL OR (o.delivered_at IS NULL AND o.attempts > 0)
            ORDER BY o.file_name, o.id
            """, logger: logger)
        for try await (name, attempts, first, next, last, error, failed) in entries.decode(
            (String, Int, Int64?, Int64?, Int64?, String?, Bool).self)
        {
            let record = DeliveryRecord(
                eventID: ForwardLayout.eventID(fromFileName: name) ?? name, attempts: attempts,
                firstAttemptAt: Self.seconds(first) ?? 0, nextAttemptAt: failed ? nil : Self.seconds(next),
                lastError: error, lastAttemptAt: Self.seconds(last))
            if failed {
                status.failed.append(ForwardStatus.Entry(name: name, record: record))
            } else {
                status.retrying.append(ForwardStatus.Entry(name: name, record: record))
            }
        }
        return status
    }

    /// `pgnoti forward retry` on the cluster: failed rows become undelivered again with a fresh
    /// retry budget, unclaimed, so the active forwarder claims them at its next look. `ids` are
    /// event ids or queue file names; nil means every failed row.
    public func retryFailed(ids: [String]?) async throws -> ForwardRetry.Result {
        var failed: [(id: Int64, name: String)] = []
        let rows = try await reader.query(
            "SELECT id, file_name FROM outbox WHERE failed_at IS NOT NULL ORDER BY file_name, id", logger: logger)
        for try await (id, name) in rows.decode((Int64, String).self) { failed.append((id, name)) }
        var result = ForwardRetry.Result()
        var chosen: [Int64] = []
        if let ids {
            for wanted in ids {
                let matches = failed.filter { ForwardRetry.matches($0.name, wanted) }
                if matches.isEmpty { result.notFound.append(wanted) }
                chosen += matches.map(\.id)
                result.moved += matches.map(\.name)
            }
        } else {
            chosen = failed.map(\.id)
            result.moved = failed.map(\.name)
        }
        guard !chosen.isEmpty else { return result }
        try await connections.writer.query(
            """
            UPDATE outbox SET failed_at = NULL, attempts = 0, first_attempt_at = NULL, next_attempt_at = NULL,
                last_attempt_at = NULL, last_error = NULL, claimed_epoch = NULL
            WHERE id = ANY(\(chosen)) AND failed_at IS NOT NULL
            """, logger: logger)
        return result
    }

    static func micros(_ seconds: Double) -> Int64 { Int64((seconds * 1e6).rounded()) }

    static func seconds(_ micros: Int64?) -> Double? { micros.map { Double($0) / 1e6 } }
}

/// What the forwarder records for one attempt.
enum ForwardOutcome: Sendable {
    case delivered(at: Double)
    case retry(DeliveryRecord)
    case failed(DeliveryRecord)
}
