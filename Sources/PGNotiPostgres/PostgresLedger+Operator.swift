import Foundation
import PGNotiCore
import PGNotiStore
import PostgresNIO
import Synchronization

/// What operators ask the ledger, on PostgreSQL: the same answers as SQLite's
/// (`Ledger+Operator.swift`), over every host's notifications. Reads use the reader session; the
/// writes go through the group-commit writer.
extension PostgresLedger {
    /// A conflict event read in the shape of a notification, as SQLite's `conflictAsNotification`.
    static let conflictAsNotification = """
        SELECT n.id, c.provider, c.merchant_id, c.tid, c.state, c.conflict_event_id AS event_id,
            c.new_fingerprint AS fingerprint, 'notification.conflict' AS kind, n.order_id,
            (convert_from(c.event_json, 'UTF8')::jsonb ->> 'amount')::bigint AS amount,
            convert_from(c.event_json, 'UTF8')::jsonb ->> 'result_code' AS result_code,
            c.received_at, NULL::bigint AS filed_at, coalesce(c.event_json, ''::bytea) AS event_json,
            coalesce(c.queue_file_name, '') AS queue_file_name, c.raw_body, c.content_type, c.peer, c.client,
            c.retries, NULL::bigint AS last_seen_at, 0 AS conflicts_ignored, c.id AS conflict_row
        FROM conflicts c JOIN notifications n ON n.event_id = c.event_id
        WHERE c.conflict_event_id IS NOT NULL
        """

    public func events(_ filter: EventFilter) async throws -> [StoredNotification] {
        let since = filter.since?.unixMicroseconds
        let until = filter.until?.unixMicroseconds
        if filter.kind == EventKind.notificationConflict.rawValue {
            return try await records(
                """
                SELECT row_to_json(e)::text FROM (\(unescaped: Self.conflictAsNotification)) e
                WHERE (\(filter.provider)::text IS NULL OR provider = \(filter.provider))
                    AND (\(since)::bigint IS NULL OR received_at >= \(since))
                    AND (\(until)::bigint IS NULL OR received_at < \(until))
                    AND (\(filter.tid)::text IS NULL OR tid = \(filter.tid))
                    AND (\(filter.orderID)::text IS NULL OR order_id = \(filter.orderID))
                ORDER BY conflict_row DESC LIMIT \(filter.limit)
                """)
        }
        return try await records(
            """
            SELECT row_to_json(n)::text FROM notifications n
            WHERE (\(filter.provider)::text IS NULL OR provider = \(filter.provider))
                AND (\(since)::bigint IS NULL OR received_at >= \(since))
                AND (\(until)::bigint IS NULL OR received_at < \(until))
                AND (\(filter.tid)::text IS NULL OR tid = \(filter.tid))
                AND (\(filter.orderID)::text IS NULL OR order_id = \(filter.orderID))
                AND (\(filter.kind)::text IS NULL OR kind = \(filter.kind))
            ORDER BY id DESC LIMIT \(filter.limit)
            """)
    }

    public func knownEventIDs(_ ids: [String]) async throws -> Set<String> {
        let rows = try await reader.query(
            """
            SELECT event_id FROM notifications WHERE event_id = ANY(\(ids))
            UNION SELECT conflict_event_id FROM conflicts WHERE conflict_event_id = ANY(\(ids))
            """, logger: logger)
        var known = Set<String>()
        for try await id in rows.decode(String.self) { known.insert(id) }
        return known
    }

    public func lookup(_ reference: String) async throws -> [StoredNotification] {
        let byEvent: [StoredNotification] = try await records(
            "SELECT row_to_json(n)::text FROM notifications n WHERE event_id = \(reference)")
        if !byEvent.isEmpty { return byEvent }
        let conflicts: [StoredNotification] = try await records(
            """
            SELECT row_to_json(e)::text FROM (\(unescaped: Self.conflictAsNotification)) e
            WHERE event_id = \(reference)
            """)
        if !conflicts.isEmpty { return conflicts }
        let byTID: [StoredNotification] = try await records(
            "SELECT row_to_json(n)::text FROM notifications n WHERE tid = \(reference) ORDER BY id")
        if !byTID.isEmpty { return byTID }
        return try await records(
            "SELECT row_to_json(n)::text FROM notifications n WHERE order_id = \(reference) ORDER BY id")
    }

    public func history(of notification: StoredNotification) async throws -> EventHistory {
        let rows = try await reader.query(
            "SELECT received_at, peer, client FROM retries WHERE notification_id = \(notification.rowID) ORDER BY id",
            logger: logger)
        var retries: [EventHistory.Retry] = []
        for try await (at, peer, client) in rows.decode((Int64, String?, String?).self) {
            retries.append(EventHistory.Retry(receivedAt: Date(unixMicroseconds: at), peer: peer, client: client))
        }
        let conflicts: [ConflictRecord] = try await records(
            "SELECT row_to_json(c)::text FROM conflicts c WHERE event_id = \(notification.eventID) ORDER BY id")
        let queued = try await reader.query(
            """
            SELECT count(*)::int FROM outbox o
            WHERE o.file_name = \(notification.queueFileName) AND \(unescaped: Self.undelivered)
            """, logger: logger)
        var inOutbox = false
        for try await n in queued.decode(Int.self) { inOutbox = n > 0 }
        return EventHistory(retries: retries, conflicts: conflicts, inOutbox: inOutbox)
    }

    public func redeliver(eventIDs: [String], since: Date?, until: Date?) async throws -> Int {
        let now = Date().unixMicroseconds
        let from = since?.unixMicroseconds ?? 0
        let to = until?.unixMicroseconds ?? Int64.max
        let byRange = since != nil || until != nil
        let logger = self.logger
        let queued = Mutex(0)
        try await write { connection in
            let rows = try await connection.query(
                """
                WITH picked AS (
                    SELECT queue_file_name AS file_name, ''::bytea AS payload, id AS notification_id, id AS o,
                        0 AS part
                    FROM notifications
                    WHERE event_id = ANY(\(eventIDs)) OR (\(byRange) AND received_at >= \(from) AND received_at < \(to))
                    UNION ALL
                    SELECT c.queue_file_name, c.event_json, n.id, c.id, 1 FROM conflicts c
                    JOIN notifications n ON n.event_id = c.event_id
                    WHERE c.event_json IS NOT NULL AND (c.conflict_event_id = ANY(\(eventIDs))
                        OR (\(byRange) AND c.received_at >= \(from) AND c.received_at < \(to)))),
                inserted AS (
                    INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                    SELECT file_name, payload, notification_id, \(now) FROM picked ORDER BY part, o RETURNING 1)
                SELECT count(*)::int FROM inserted
                """, logger: logger)
            for try await n in rows.decode(Int.self) { queued.withLock { $0 += n } }
        }
        return queued.withLock { $0 }
    }

    public func stats(since: Date?) async throws -> LedgerStats {
        let from = since?.unixMicroseconds ?? 0
        let kinds = try await reader.query(
            """
            SELECT provider, coalesce(kind, '?'), count(*)::int, sum(retries)::int, sum(conflicts_ignored)::int
            FROM notifications WHERE received_at >= \(from) GROUP BY provider, kind ORDER BY provider, kind
            """, logger: logger)
        var byKind: [LedgerStats.Row] = []
        var ignored = 0
        for try await (provider, kind, n, r, ci) in kinds.decode((String, String, Int, Int, Int).self) {
            byKind.append(LedgerStats.Row(provider: provider, kind: kind, events: n, retries: r))
            ignored += ci
        }
        var conflicts = 0
        for try await n in try await reader.query(
            "SELECT count(*)::int FROM conflicts WHERE received_at >= \(from)", logger: logger
        ).decode(Int.self) { conflicts = n }
        var reasons: [(reason: String, count: Int)] = []
        for try await (reason, n) in try await reader.query(
            """
            SELECT reason, count(*)::int AS n FROM quarantine WHERE received_at >= \(from)
            GROUP BY reason ORDER BY n DESC
            """, logger: logger
        ).decode((String, Int).self) { reasons.append((reason, n)) }
        let outbox = try await outboxStatus()
        return LedgerStats(
            byKind: byKind, conflicts: conflicts, conflictsIgnored: ignored, quarantineByReason: reasons,
            outboxDepth: outbox.depth, oldestInOutbox: outbox.oldest)
    }

    // MARK: - Purge

    /// A row not yet purged: it still has its body, or its document does not say `purged`.
    static let notPurged = #"(length(raw_body) > 0 OR position('"purged":true'::bytea in event_json) = 0)"#

    public func purgeCandidates(before cutoff: Date) async throws -> PurgeCounts {
        let micros = cutoff.unixMicroseconds
        let rows = try await reader.query(
            """
            SELECT (SELECT count(*) FROM notifications WHERE received_at < \(micros) AND \(unescaped: Self.notPurged))::int,
                (SELECT count(*) FROM conflicts WHERE received_at < \(micros) AND length(raw_body) > 0)::int,
                (SELECT count(*) FROM quarantine WHERE received_at < \(micros) AND length(raw_body) > 0)::int,
                (SELECT count(*) FROM retries WHERE received_at < \(micros))::int
            """, logger: logger)
        var counts = PurgeCounts()
        for try await (n, c, q, r) in rows.decode((Int, Int, Int, Int).self) {
            (counts.notifications, counts.conflicts, counts.quarantine, counts.retries) = (n, c, q, r)
        }
        return counts
    }

    /// In batches of 500 through the writer, with a pause after each, as on SQLite: notifications
    /// arriving meanwhile wait for one short batch at most.
    public func purge(before cutoff: Date, hasRoom: @Sendable () -> Bool) async throws -> PurgeCounts {
        let micros = cutoff.unixMicroseconds
        let logger = self.logger
        var total = PurgeCounts()
        var afterID: Int64 = 0
        while true {
            guard hasRoom() else {
                total.stopped = .lowOnSpace
                return total
            }
            let rows = try await reader.query(
                """
                SELECT id, event_id, provider, kind, merchant_id, tid, state, amount, result_code, order_id,
                    received_at, event_json FROM notifications
                WHERE id > \(afterID) AND received_at < \(micros) AND \(unescaped: Self.notPurged) ORDER BY id LIMIT 500
                """, logger: logger)
            var rewrites: [(id: Int64, document: Data)] = []
            for try await row in rows.decode(
                (Int64, String, String, String?, String, String, String, Int64?, String?, String?, Int64, Data).self)
            {
                let facts = Event.LedgerFacts(
                    eventID: row.1, provider: row.2, kind: row.3, merchantID: row.4, orderID: row.9, tid: row.5,
                    state: row.6, amount: row.7.map(Int.init), resultCode: row.8,
                    receivedAt: Date(unixMicroseconds: row.10))
                rewrites.append((row.0, Data(Event.purgedDocument(from: Array(row.11), facts: facts))))
            }
            guard let last = rewrites.last else { break }
            afterID = last.id
            let changed = Mutex(0)
            let batch = rewrites
            try await write { connection in
                for rewrite in batch {
                    let result = try await connection.query(
                        """
                        WITH done AS (
                            UPDATE notifications SET raw_body = ''::bytea, event_json = \(rewrite.document)
                            WHERE id = \(rewrite.id) AND \(unescaped: Self.notPurged) RETURNING 1)
                        SELECT count(*)::int FROM done
                        """, logger: logger)
                    for try await n in result.decode(Int.self) { changed.withLock { $0 += n } }
                }
            }
            total.notifications += changed.withLock { $0 }
            try await Task.sleep(for: .milliseconds(40))
        }
        for (table, statement) in Self.purgeStatements(micros) {
            while true {
                let done = Mutex(0)
                try await write { connection in
                    for try await n in try await connection.query(statement, logger: logger).decode(Int.self) {
                        done.withLock { $0 += n }
                    }
                }
                switch table {
                case "conflicts": total.conflicts += done.withLock { $0 }
                case "quarantine": total.quarantine += done.withLock { $0 }
                default: total.retries += done.withLock { $0 }
                }
                if done.withLock { $0 } < 500 { break }
                try await Task.sleep(for: .milliseconds(40))
            }
        }
        return total
    }

    static func purgeStatements(_ micros: Int64) -> [(String, PostgresQuery)] {
        [
            (
                "conflicts",
                """
                WITH done AS (UPDATE conflicts SET raw_body = ''::bytea, event_json = NULL WHERE id IN (
                    SELECT id FROM conflicts WHERE received_at < \(micros) AND length(raw_body) > 0 LIMIT 500)
                    RETURNING 1)
                SELECT count(*)::int FROM done
                """
            ),
            (
                "quarantine",
                """
                WITH done AS (UPDATE quarantine SET raw_body = ''::bytea WHERE id IN (
                    SELECT id FROM quarantine WHERE received_at < \(micros) AND length(raw_body) > 0 LIMIT 500)
                    RETURNING 1)
                SELECT count(*)::int FROM done
                """
            ),
            (
                "retries",
                """
                WITH done AS (DELETE FROM retries WHERE id IN (
                    SELECT id FROM retries WHERE received_at < \(micros) LIMIT 500) RETURNING 1)
                SELECT count(*)::int FROM done
                """
            ),
        ]
    }

    // MARK: - The quarantine

    public func dropQuarantined(ids: [Int64]) async throws -> [Int64] {
        let removed = Mutex<[Int64]>([])
        let logger = self.logger
        try await write { connection in
            for try await id in try await connection.query(
                "DELETE FROM quarantine WHERE id = ANY(\(ids)) RETURNING id", logger: logger
            ).decode(Int64.self) { removed.withLock { $0.append(id) } }
        }
        return removed.withLock { $0 }.sorted()
    }

    public func markReleased(id: Int64, eventID: String) async throws {
        let now = Date().unixMicroseconds
        let logger = self.logger
        try await write { connection in
            try await connection.query(
                "UPDATE quarantine SET released_at = \(now), released_event_id = \(eventID) WHERE id = \(id)",
                logger: logger)
        }
    }
}
