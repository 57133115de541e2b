import Foundation
import GRDB
import Metrics
import PGNotiCore
import PGNotiSpool
import Synchronization

/// The outbox (what the relay files) and the plain reads.
extension Ledger {
    // MARK: - Outbox

    /// Oldest first, which is filing order. An empty payload refers to the notification's stored
    /// event (no event is empty JSON); conflict events carry their own.
    public func pendingOutbox(limit: Int) async throws -> [OutboxItem] {
        try checkOpen()
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT o.id, o.file_name,
                        CASE WHEN length(o.payload) > 0 THEN o.payload ELSE n.event_json END AS payload
                    FROM outbox o LEFT JOIN notifications n ON n.id = o.notification_id
                    ORDER BY o.id LIMIT ?
                    """, arguments: [limit]
            ).map { OutboxItem(id: $0["id"], fileName: $0["file_name"], payload: $0.bytes("payload")) }
        }
    }

    /// Through the writer, so the relay's deletions share the commits of the notifications.
    public func removeFromOutbox(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        try checkOpen()
        try await write { db in
            // Stay far below SQLite's bound-parameter limit.
            var rest = ids[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(500)
                rest = rest.dropFirst(chunk.count)
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                try db.execute(
                    sql: "DELETE FROM outbox WHERE id IN (\(marks))", arguments: StatementArguments(Array(chunk)))
            }
        }
    }

    /// How many events wait to be filed, and since when the oldest has.
    public func outboxStatus() async throws -> (depth: Int, oldest: Date?) {
        try await read { db in
            let row = try Row.fetchOne(db, sql: "SELECT count(*) AS n, min(queued_at) AS oldest FROM outbox")!
            return (row["n"], (row["oldest"] as Int64?).map(Date.init(unixMicroseconds:)))
        }
    }

    // MARK: - Reading

    /// Runs a read-only query on a reader connection; never blocks the writer.
    public func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try checkOpen()
        return try await pool.read(body)
    }

    /// Oldest first, starting after `afterRowID` (a `StoredNotification.rowID`).
    public func notifications(limit: Int, afterRowID: Int64? = nil) async throws -> [StoredNotification] {
        try await read { db in
            try StoredNotification.filter(Column("id") > (afterRowID ?? 0)).order(Column("id")).limit(limit)
                .fetchAll(db)
        }
    }

    /// Newest first.
    public func quarantined(limit: Int) async throws -> [QuarantinedRequest] {
        try await read { db in
            try QuarantinedRequest.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    /// Newest first.
    public func conflicts(limit: Int) async throws -> [ConflictRecord] {
        try await read { db in
            try ConflictRecord.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    public func counts() async throws -> LedgerCounts {
        try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT count(*) FROM notifications) AS n, (SELECT count(*) FROM outbox) AS o,
                           (SELECT count(*) FROM quarantine) AS q, (SELECT coalesce(sum(size), 0) FROM quarantine) AS qb,
                           (SELECT count(*) FROM conflicts) AS c
                    """)!
            return LedgerCounts(
                notifications: row["n"], outbox: row["o"], quarantine: row["q"], quarantineBytes: row["qb"],
                conflicts: row["c"])
        }
    }

    /// The durability settings as the writer connection sees them, for
    /// startup logs and health checks.
    public func journalSettings() async throws -> (journalMode: String, synchronous: Int) {
        try checkOpen()
        return try await pool.writeWithoutTransaction { db in
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
            let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
            return (journalMode: mode, synchronous: sync)
        }
    }
}

extension Row {
    func bytes(_ column: String) -> [UInt8] {
        (self[column] as Data?).map { [UInt8]($0) } ?? []
    }
}
