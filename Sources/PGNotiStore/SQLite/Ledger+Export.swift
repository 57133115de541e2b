import Foundation
import GRDB

/// An outbox row as the source holds it: an event not yet filed into the queue directory.
public struct ExportedOutboxRow: Sendable, Equatable {
    public let fileName: String
    /// Empty for a notification's own event (the stored event is meant); a conflict's document.
    public let payload: Data
    public let queuedAtMicros: Int64?
}

/// A stored notification with what belongs to it alone: its retries and its pending outbox rows.
public struct ExportedNotification: Sendable {
    public let notification: StoredNotification
    public let retries: [EventHistory.Retry]
    public let pendingOutbox: [ExportedOutboxRow]
}

/// A conflict row with the columns `ConflictRecord` leaves out.
public struct ExportedConflict: Sendable {
    public let record: ConflictRecord
    public let eventJSON: Data?
    public let queueFileName: String?
    public let pendingOutbox: [ExportedOutboxRow]
}

/// Rows per table in the source, for the copy's summary.
public struct ExportCounts: Sendable, Equatable {
    public var notifications = 0
    public var conflicts = 0
    public var quarantine = 0
    public var tossFiles = 0
    public var payupIntents = 0
    public var outbox = 0
    /// Outbox rows that belong to no notification or conflict row (none in a consistent ledger).
    public var strayOutbox = 0

    public init() {}
}

/// Reads for `pgnoti copy-ledger`, in id order and a page at a time, so a large ledger is never
/// held in memory whole.
extension Ledger {
    public func exportCounts() async throws -> ExportCounts {
        try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT count(*) FROM notifications) AS n, (SELECT count(*) FROM conflicts) AS c,
                        (SELECT count(*) FROM quarantine) AS q, (SELECT count(*) FROM toss_files) AS t,
                        (SELECT count(*) FROM payup_intents) AS p, (SELECT count(*) FROM outbox) AS o,
                        (SELECT count(*) FROM outbox o WHERE NOT \(Self.ownedByNotification)
                            AND NOT \(Self.ownedByConflict)) AS s
                    """)!
            var counts = ExportCounts()
            counts.notifications = row["n"]
            counts.conflicts = row["c"]
            counts.quarantine = row["q"]
            counts.tossFiles = row["t"]
            counts.payupIntents = row["p"]
            counts.outbox = row["o"]
            counts.strayOutbox = row["s"]
            return counts
        }
    }

    // Which outbox rows belong to which row: a notification's own event carries no payload (it
    // refers to the stored event, redeliveries included) or, as schema v1 wrote it, the event
    // under the notification's file name; a conflict's carries its document under its own name.
    static let ownedByNotification =
        "EXISTS (SELECT 1 FROM notifications n WHERE n.id = o.notification_id"
        + " AND (length(o.payload) = 0 OR o.file_name = n.queue_file_name))"
    static let ownedByConflict =
        "(length(o.payload) > 0 AND EXISTS (SELECT 1 FROM conflicts c WHERE c.queue_file_name = o.file_name))"

    public func exportNotifications(afterRowID: Int64, limit: Int) async throws -> [ExportedNotification] {
        try await read { db in
            let page = try StoredNotification.filter(Column("id") > afterRowID).order(Column("id")).limit(limit)
                .fetchAll(db)
            return try page.map { notification in
                let retries = try Row.fetchAll(
                    db, sql: "SELECT received_at, peer, client FROM retries WHERE notification_id = ? ORDER BY id",
                    arguments: [notification.rowID]
                ).map {
                    EventHistory.Retry(
                        receivedAt: Date(unixMicroseconds: $0["received_at"]), peer: $0["peer"], client: $0["client"])
                }
                let outbox = try Self.outboxRows(
                    db, where: "o.notification_id = ? AND (length(o.payload) = 0 OR o.file_name = ?)",
                    [notification.rowID, notification.queueFileName])
                return ExportedNotification(notification: notification, retries: retries, pendingOutbox: outbox)
            }
        }
    }

    public func exportConflicts(afterID: Int64, limit: Int) async throws -> [ExportedConflict] {
        try await read { db in
            let page = try ConflictRecord.filter(Column("id") > afterID).order(Column("id")).limit(limit).fetchAll(db)
            return try page.map { record in
                let extra = try Row.fetchOne(
                    db, sql: "SELECT event_json, queue_file_name FROM conflicts WHERE id = ?", arguments: [record.id])
                let fileName: String? = extra?["queue_file_name"]
                let outbox =
                    try fileName.map {
                        try Self.outboxRows(db, where: "o.file_name = ? AND length(o.payload) > 0", [$0])
                    } ?? []
                return ExportedConflict(
                    record: record, eventJSON: extra?["event_json"], queueFileName: fileName, pendingOutbox: outbox)
            }
        }
    }

    /// Oldest first (`quarantined(limit:)` reads newest first).
    public func exportQuarantine(afterID: Int64, limit: Int) async throws -> [QuarantinedRequest] {
        try await read { db in
            try QuarantinedRequest.filter(Column("id") > afterID).order(Column("id")).limit(limit).fetchAll(db)
        }
    }

    private static func outboxRows(_ db: Database, where condition: String, _ arguments: StatementArguments) throws
        -> [ExportedOutboxRow]
    {
        try Row.fetchAll(
            db, sql: "SELECT file_name, payload, queued_at FROM outbox o WHERE \(condition) ORDER BY o.id",
            arguments: arguments
        ).map {
            ExportedOutboxRow(
                fileName: $0["file_name"], payload: ($0["payload"] as Data?) ?? Data(), queuedAtMicros: $0["queued_at"])
        }
    }
}
