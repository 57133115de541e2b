import Foundation
import GRDB
import Metrics
import PGNotiCore
import PGNotiSpool
import Synchronization

/// What one write transaction does with an entry: the SQL behind the dedup and conflict rule,
/// the outbox row written with the notification, and the quarantine's eviction. The writer
/// (`Ledger.swift`) batches entries and calls these inside its transaction.
extension Ledger {
    func nextFileName(_ eventID: String, local: inout WriterLocal) -> String {
        // Strictly increasing even if the clock steps back: names sort in filing order.
        let micros = max(Date().unixMicroseconds, local.lastFiledMicros + 1)
        local.lastFiledMicros = micros
        return QueueFileName.make(filedAtMicroseconds: micros, eventID: eventID)
    }

    func apply(_ entry: LedgerEntry, in db: Database, local: inout WriterLocal) throws -> RecordOutcome {
        let key: StatementArguments = [
            entry.key.provider.rawValue, entry.key.merchantID, entry.key.tid, entry.key.state,
        ]
        let existing = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT id, event_id, fingerprint, amount, result_code FROM notifications
                    WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ?
                    """),
            arguments: key)
        let now = Date().unixMicroseconds

        if let existing {
            let storedID: Int64 = existing["id"]
            let storedEventID: String = existing["event_id"]
            let storedFingerprint: String = existing["fingerprint"]
            if storedFingerprint == entry.fingerprint {
                try db.cachedStatement(
                    sql: "UPDATE notifications SET retries = retries + 1, last_seen_at = ? WHERE id = ?"
                ).execute(arguments: [now, storedID])
                // The first retries are kept one by one; a storm only counts.
                try db.cachedStatement(
                    sql: """
                        INSERT INTO retries (notification_id, received_at, peer, client)
                        SELECT ?, ?, ?, ? WHERE (SELECT retries FROM notifications WHERE id = ?) <= ?
                        """
                ).execute(arguments: [
                    storedID, entry.receivedAt.unixMicroseconds, entry.peer, entry.client, storedID,
                    Self.retriesKept,
                ])
                return .duplicate(eventID: storedEventID)
            }
            if let filed = try Row.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT id, conflict_event_id FROM conflicts
                        WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ? AND new_fingerprint = ?
                            AND conflict_event_id IS NOT NULL
                        """),
                arguments: key + [entry.fingerprint])
            {
                try db.cachedStatement(sql: "UPDATE conflicts SET retries = retries + 1 WHERE id = ?")
                    .execute(arguments: [filed["id"] as Int64])
                return .duplicate(eventID: filed["conflict_event_id"])
            }
            let filedConflicts =
                try Int.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT count(*) FROM conflicts
                            WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ? AND conflict_event_id IS NOT NULL
                            """),
                    arguments: key) ?? 0
            guard filedConflicts < Self.maximumConflictsPerKey,
                let (conflictID, json) = entry.conflictEvent?(
                    storedEventID, existing["amount"], existing["result_code"])
            else {
                try db.cachedStatement(
                    sql: "UPDATE notifications SET conflicts_ignored = conflicts_ignored + 1 WHERE id = ?"
                ).execute(arguments: [storedID])
                let ignored =
                    try Int.fetchOne(
                        db.cachedStatement(sql: "SELECT conflicts_ignored FROM notifications WHERE id = ?"),
                        arguments: [storedID]) ?? 0
                return .conflictIgnored(
                    conflictsWith: storedEventID, storedFingerprint: storedFingerprint, ignored: ignored)
            }
            let fileName = nextFileName(conflictID, local: &local)
            try db.cachedStatement(
                sql: """
                    INSERT INTO conflicts (provider, merchant_id, tid, state, event_id, conflict_event_id,
                        stored_fingerprint, new_fingerprint, raw_body, content_type, remote_address, peer, client,
                        received_at, event_json, queue_file_name)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, x''), ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(
                arguments: key + [
                    storedEventID, conflictID, storedFingerprint, entry.fingerprint, Data(entry.rawBody),
                    entry.contentType, entry.peer, entry.peer, entry.client, entry.receivedAt.unixMicroseconds,
                    Data(json), fileName,
                ])
            try insertOutbox(fileName: fileName, payload: json, notificationID: storedID, in: db)
            return .conflict(
                eventID: conflictID, conflictsWith: storedEventID, storedFingerprint: storedFingerprint,
                queueFileName: fileName)
        }

        // The event document is built only now that the entry is known to be new.
        let json = entry.eventJSON()
        let fileName = nextFileName(entry.eventID, local: &local)
        // GRDB binds an empty Data as NULL; coalesce keeps empty bodies storable
        // without loosening the NOT NULL constraints.
        try db.cachedStatement(
            sql: """
                INSERT INTO notifications (provider, merchant_id, tid, state, fingerprint, event_id,
                    event_json, queue_file_name, raw_body, content_type, remote_address, peer, client,
                    kind, order_id, amount, result_code, received_at, filed_at)
                VALUES (?, ?, ?, ?, ?, ?, coalesce(?, x''), ?, coalesce(?, x''), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: key + [
                entry.fingerprint, entry.eventID, Data(json), fileName, Data(entry.rawBody), entry.contentType,
                entry.peer, entry.peer, entry.client, entry.kind, entry.orderID, entry.amount, entry.resultCode,
                entry.receivedAt.unixMicroseconds, now,
            ])
        // The outbox refers to the stored event rather than holding a second copy: half the
        // bytes written to the WAL per event.
        try insertOutbox(fileName: fileName, payload: [], notificationID: db.lastInsertedRowID, in: db)
        return .accepted(eventID: entry.eventID, queueFileName: fileName)
    }

    func insertOutbox(fileName: String, payload: [UInt8], notificationID: Int64, in db: Database) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO outbox (file_name, payload, notification_id, queued_at) VALUES (?, coalesce(?, x''), ?, ?)"
        ).execute(arguments: [fileName, Data(payload), notificationID, Date().unixMicroseconds])
    }

    static func insert(_ entry: QuarantineEntry, in db: Database) throws -> Int64 {
        try db.cachedStatement(
            sql: """
                INSERT INTO quarantine (provider, reason, detail, raw_body, content_type, forwarded_for, peer,
                    client, path_secret_sha256, parsed, merchant_id, tid, size, received_at)
                VALUES (?, ?, ?, coalesce(?, x''), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(arguments: [
            entry.provider, entry.reason, entry.detail, Data(entry.rawBody), entry.contentType,
            entry.forwardedFor, entry.peer, entry.client, entry.pathSecretSHA256.map { Data($0) }, entry.parsed,
            entry.merchantID, entry.tid, entry.rawBody.count, entry.receivedAt.unixMicroseconds,
        ])
        return db.lastInsertedRowID
    }

    /// Keeps the quarantine inside its policy. Garbage (never parsed) goes first, oldest first;
    /// requests that parsed but failed authentication or verification (the ones a release will
    /// want) go only when the garbage alone cannot make room, and otherwise only with age.
    /// Returns how many rows were evicted.
    func evict(in db: Database, local: inout WriterLocal) throws -> Int {
        let policy = self.policy.withLock { $0 }
        var evicted = 0
        if local.lastAgeSweep.timeIntervalSinceNow < -3600 {
            let cutoff = Date().addingTimeInterval(-Double(policy.keepDays) * 86_400).unixMicroseconds
            try db.execute(sql: "DELETE FROM quarantine WHERE received_at < ?", arguments: [cutoff])
            evicted += db.changesCount
            local.lastAgeSweep = Date()
        }
        guard evicted > 0 || local.quarantineBytes > policy.maxBytes || local.quarantineRows > policy.maxRows else {
            return 0
        }
        // The counters drift when other processes write; start from the truth. Bytes are the
        // bytes held: a body `pgnoti purge` emptied no longer counts (`size` keeps what it was).
        let totals = try Row.fetchOne(
            db, sql: "SELECT coalesce(sum(length(raw_body)), 0) AS b, count(*) AS n FROM quarantine")!
        var bytes: Int = totals["b"]
        var rows: Int = totals["n"]
        var victims: [Int64] = []
        if bytes > policy.maxBytes || rows > policy.maxRows {
            let cursor = try Row.fetchCursor(
                db, sql: "SELECT id, length(raw_body) AS size FROM quarantine ORDER BY parsed, id")
            while bytes > policy.maxBytes || rows > policy.maxRows, let row = try cursor.next() {
                victims.append(row["id"])
                bytes -= row["size"] as Int
                rows -= 1
            }
        }
        for chunk in stride(from: 0, to: victims.count, by: 500) {
            let ids = victims[chunk..<min(chunk + 500, victims.count)]
            let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
            try db.execute(
                sql: "DELETE FROM quarantine WHERE id IN (\(marks))", arguments: StatementArguments(Array(ids)))
        }
        local.quarantineBytes = bytes
        local.quarantineRows = rows
        return evicted + victims.count
    }

    public var writerStats: WriterStats {
        writer.withLock { $0.stats }
    }

    /// Notifications per group-commit transaction.
    static let batchSize = Recorder(label: "pgnoti_group_commit_batch_size")
    static let evictedCounter = Counter(label: "pgnoti_quarantine_evicted_total")

    /// Creates the ledger's series now, so `/metrics` shows them at 0 from the start.
    public static func registerMetrics() {
        _ = evictedCounter
        _ = batchSize
    }

    /// Why the last write transaction failed, or nil when the last one committed.
    public var lastFailure: String? {
        writer.withLock { $0.lastFailure }
    }
}
