import Foundation
import GRDB
import PGNotiCore
import Synchronization

/// What operators ask the ledger from the command line. Reads run on reader connections and
/// never hold the writer; the few writes go through it like the daemon's.
extension Ledger {
    /// Notifications matching `filter`, newest first. `kind: notification.conflict` lists the
    /// conflict events, which live beside the notification they contradict.
    public func events(_ filter: EventFilter) async throws -> [StoredNotification] {
        if filter.kind == EventKind.notificationConflict.rawValue { return try await conflictEvents(filter) }
        return try await read { db in
            var request = StoredNotification.all()
            if let v = filter.provider { request = request.filter(Column("provider") == v) }
            if let v = filter.since { request = request.filter(Column("received_at") >= v.unixMicroseconds) }
            if let v = filter.until { request = request.filter(Column("received_at") < v.unixMicroseconds) }
            if let v = filter.tid { request = request.filter(Column("tid") == v) }
            if let v = filter.orderID { request = request.filter(Column("order_id") == v) }
            if let v = filter.kind { request = request.filter(Column("kind") == v) }
            return try request.order(Column("id").desc).limit(filter.limit).fetchAll(db)
        }
    }

    /// A conflict event read in the shape of a notification: its own id, kind, document, body
    /// and time; the key and order of the notification it contradicts.
    static let conflictAsNotification = """
        SELECT n.id, c.provider, c.merchant_id, c.tid, c.state, c.conflict_event_id AS event_id,
            c.new_fingerprint AS fingerprint, 'notification.conflict' AS kind, n.order_id,
            json_extract(c.event_json, '$.amount') AS amount, json_extract(c.event_json, '$.result_code') AS result_code,
            c.received_at, NULL AS filed_at, coalesce(c.event_json, x'') AS event_json,
            coalesce(c.queue_file_name, '') AS queue_file_name, c.raw_body, c.content_type, c.peer, c.client, c.retries,
            NULL AS last_seen_at, 0 AS conflicts_ignored
        FROM conflicts c JOIN notifications n ON n.event_id = c.event_id
        """

    func conflictEvents(_ filter: EventFilter) async throws -> [StoredNotification] {
        try await read { db in
            var conditions = ["c.conflict_event_id IS NOT NULL"]
            var arguments: [any DatabaseValueConvertible] = []
            if let v = filter.provider {
                conditions.append("c.provider = ?")
                arguments.append(v)
            }
            if let v = filter.since {
                conditions.append("c.received_at >= ?")
                arguments.append(v.unixMicroseconds)
            }
            if let v = filter.until {
                conditions.append("c.received_at < ?")
                arguments.append(v.unixMicroseconds)
            }
            if let v = filter.tid {
                conditions.append("c.tid = ?")
                arguments.append(v)
            }
            if let v = filter.orderID {
                conditions.append("n.order_id = ?")
                arguments.append(v)
            }
            arguments.append(filter.limit)
            return try StoredNotification.fetchAll(
                db,
                sql: Self.conflictAsNotification + " WHERE " + conditions.joined(separator: " AND ")
                    + " ORDER BY c.id DESC LIMIT ?",
                arguments: StatementArguments(arguments))
        }
    }

    /// Which of `ids` name an event this ledger holds (a notification's or a conflict's).
    public func knownEventIDs(_ ids: [String]) async throws -> Set<String> {
        try await read { db in
            var known = Set<String>()
            for id in ids {
                let found =
                    try Bool.fetchOne(
                        db,
                        sql: """
                            SELECT EXISTS (SELECT 1 FROM notifications WHERE event_id = ?)
                                OR EXISTS (SELECT 1 FROM conflicts WHERE conflict_event_id = ?)
                            """, arguments: [id, id]) ?? false
                if found { known.insert(id) }
            }
            return known
        }
    }

    /// The notifications `reference` names: an event id (a notification's or a conflict's), a
    /// TID, or an order id, tried in that order.
    public func lookup(_ reference: String) async throws -> [StoredNotification] {
        try await read { db in
            let byEvent = try StoredNotification.filter(Column("event_id") == reference).fetchAll(db)
            if !byEvent.isEmpty { return byEvent }
            // A conflict's id shows the conflict event itself, not the version it contradicts.
            let conflicts = try StoredNotification.fetchAll(
                db, sql: Self.conflictAsNotification + " WHERE c.conflict_event_id = ?", arguments: [reference])
            if !conflicts.isEmpty { return conflicts }
            let byTID = try StoredNotification.filter(Column("tid") == reference).order(Column("id")).fetchAll(db)
            if !byTID.isEmpty { return byTID }
            return try StoredNotification.filter(Column("order_id") == reference).order(Column("id")).fetchAll(db)
        }
    }

    public func history(of notification: StoredNotification) async throws -> EventHistory {
        try await read { db in
            let retries = try Row.fetchAll(
                db, sql: "SELECT received_at, peer, client FROM retries WHERE notification_id = ? ORDER BY id",
                arguments: [notification.rowID]
            ).map {
                EventHistory.Retry(
                    receivedAt: Date(unixMicroseconds: $0["received_at"]), peer: $0["peer"], client: $0["client"])
            }
            let conflicts = try ConflictRecord.filter(Column("event_id") == notification.eventID).order(Column("id"))
                .fetchAll(db)
            let queued =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM outbox WHERE file_name = ?", arguments: [notification.queueFileName])
                ?? 0
            return EventHistory(retries: retries, conflicts: conflicts, inOutbox: queued > 0)
        }
    }

    /// Puts events back into the outbox under their own ids and file names, so whoever holds the
    /// outbox lock files them again: notifications whose event id is in `eventIDs` or that were
    /// received in `since..<until`, and conflict events by id. Returns how many were queued.
    public func redeliver(eventIDs: [String] = [], since: Date? = nil, until: Date? = nil) async throws -> Int {
        let queued = Mutex(0)
        let now = Date().unixMicroseconds
        try await write { db in
            var count = 0
            func requeue(_ sql: String, _ arguments: StatementArguments) throws {
                try db.execute(sql: sql, arguments: arguments)
                count += db.changesCount
            }
            for id in eventIDs {
                try requeue(
                    """
                    INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                    SELECT queue_file_name, x'', id, ? FROM notifications WHERE event_id = ?
                    """, [now, id])
                try requeue(
                    """
                    INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                    SELECT c.queue_file_name, c.event_json, n.id, ? FROM conflicts c
                    JOIN notifications n ON n.event_id = c.event_id
                    WHERE c.conflict_event_id = ? AND c.event_json IS NOT NULL
                    """, [now, id])
            }
            if since != nil || until != nil {
                let from = since?.unixMicroseconds ?? 0
                let to = until?.unixMicroseconds ?? Int64.max
                try requeue(
                    """
                    INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                    SELECT queue_file_name, x'', id, ? FROM notifications
                    WHERE received_at >= ? AND received_at < ? ORDER BY id
                    """, [now, from, to])
                try requeue(
                    """
                    INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                    SELECT c.queue_file_name, c.event_json, n.id, ? FROM conflicts c
                    JOIN notifications n ON n.event_id = c.event_id
                    WHERE c.received_at >= ? AND c.received_at < ? AND c.event_json IS NOT NULL ORDER BY c.id
                    """, [now, from, to])
            }
            let final = count
            queued.withLock { $0 = final }
        }
        return queued.withLock { $0 }
    }

    /// A consistent copy of the whole database, taken while the daemon writes (`VACUUM INTO`).
    public func backup(to path: String) async throws {
        try checkOpen()
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "VACUUM INTO ?", arguments: [path])
        }
    }

    /// Rows a purge rewrites in one transaction: small enough that the writer, which the ACK
    /// path shares (and another process's daemon waits for), is held for milliseconds.
    public static let purgeBatchRows = 500
    /// The pause after each batch. SQLite's busy handler in a waiting daemon polls at 1, 2, 5,
    /// 10, 15, 20 … ms; a pause well above the first steps lets it in before the next batch.
    public static let purgePause: Duration = .milliseconds(40)

    public func purge(before cutoff: Date, hasRoom: @Sendable () -> Bool) async throws -> PurgeCounts {
        try await purge(before: cutoff, batchRows: Self.purgeBatchRows, pause: Self.purgePause, hasRoom: hasRoom)
    }

    /// What `purge(before:)` would change, counted without writing.
    public func purgeCandidates(before cutoff: Date) async throws -> PurgeCounts {
        let micros = cutoff.unixMicroseconds
        return try await read { db in
            var counts = PurgeCounts()
            counts.notifications =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM notifications WHERE received_at < ? AND \(Self.notPurged)",
                    arguments: [micros]) ?? 0
            counts.conflicts =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM conflicts WHERE received_at < ? AND length(raw_body) > 0",
                    arguments: [micros]) ?? 0
            counts.quarantine =
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM quarantine WHERE received_at < ? AND length(raw_body) > 0",
                    arguments: [micros]) ?? 0
            counts.retries =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM retries WHERE received_at < ?", arguments: [micros])
                ?? 0
            return counts
        }
    }

    static let notPurged = "(length(raw_body) > 0 OR json_extract(event_json, '$.purged') IS NOT 1)"

    /// Removes raw bodies and personal fields from everything received before `cutoff` and keeps
    /// dedup keys, ids, amounts and results; each stored event keeps its v1 members with the
    /// personal ones emptied (`Event.purgedDocument`).
    ///
    /// Never one long transaction: the purged documents are worked out from a read (no lock),
    /// then written `batchRows` at a time through the writer like any other write, with a pause
    /// after each, so notifications arriving meanwhile (in this process or the daemon's) wait
    /// for one short batch at most. The WAL is checkpointed as it goes, so it does not grow by
    /// the whole purge, and `hasRoom` is asked before each batch, which stops the purge before
    /// rewriting rows eats the space the ACK path needs.
    public func purge(
        before cutoff: Date, batchRows: Int, pause: Duration, hasRoom: @Sendable () -> Bool = { true }
    ) async throws -> PurgeCounts {
        let micros = cutoff.unixMicroseconds
        var total = PurgeCounts()
        var batches = 0
        func between() async throws {
            batches += 1
            if batches % 20 == 0 { try? await checkpoint() }
            try await Task.sleep(for: pause)
        }
        var afterID: Int64 = 0
        while true {
            guard hasRoom() else {
                total.stopped = .lowOnSpace
                return total
            }
            let from = afterID
            let rewrites = try await read { db in
                try Self.purgedDocuments(before: micros, after: from, limit: batchRows, db)
            }
            guard let last = rewrites.last else { break }
            afterID = last.id
            let changed = Mutex(0)
            try await write { db in
                var n = 0
                for rewrite in rewrites {
                    // Only if it is still as it was read: a row purged meanwhile stays as it is.
                    try db.execute(
                        sql:
                            "UPDATE notifications SET raw_body = x'', event_json = ? WHERE id = ? AND \(Self.notPurged)",
                        arguments: [Data(rewrite.document), rewrite.id])
                    n += db.changesCount
                }
                changed.withLock { $0 = n }
            }
            total.notifications += changed.withLock { $0 }
            try await between()
        }
        let tables: [(String, WritableKeyPath<PurgeCounts, Int>)] = [
            ("conflicts", \.conflicts), ("quarantine", \.quarantine), ("retries", \.retries),
        ]
        for (table, counter) in tables {
            while true {
                guard hasRoom() else {
                    total.stopped = .lowOnSpace
                    return total
                }
                let done = Mutex(0)
                try await write { db in
                    let n = try Self.purgeBatch(table, before: micros, limit: batchRows, db)
                    done.withLock { $0 = n }
                }
                let n = done.withLock { $0 }
                total[keyPath: counter] += n
                if n < batchRows { break }
                try await between()
            }
        }
        try? await checkpoint()
        return total
    }

    /// The documents a batch of notifications will hold once purged, worked out on a reader.
    static func purgedDocuments(before micros: Int64, after id: Int64, limit: Int, _ db: Database) throws -> [(
        id: Int64, document: [UInt8]
    )] {
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT id, event_id, provider, kind, merchant_id, tid, state, amount, result_code, order_id,
                    received_at, event_json FROM notifications
                WHERE id > ? AND received_at < ? AND \(notPurged) ORDER BY id LIMIT ?
                """, arguments: [id, micros, limit])
        return rows.map { row in
            let facts = Event.LedgerFacts(
                eventID: row["event_id"], provider: row["provider"], kind: row["kind"], merchantID: row["merchant_id"],
                orderID: row["order_id"], tid: row["tid"], state: row["state"], amount: row["amount"],
                resultCode: row["result_code"], receivedAt: Date(unixMicroseconds: row["received_at"]))
            return (row["id"], Event.purgedDocument(from: (row["event_json"] as Data?).map { Array($0) }, facts: facts))
        }
    }

    /// One batch of the conflicts', quarantine's or retries' purge; returns the rows it changed.
    static func purgeBatch(_ table: String, before micros: Int64, limit: Int, _ db: Database) throws -> Int {
        switch table {
        case "conflicts", "quarantine":
            try db.execute(
                sql: """
                    UPDATE \(table) SET raw_body = x''\(table == "conflicts" ? ", event_json = NULL" : "")
                    WHERE rowid IN (SELECT rowid FROM \(table) WHERE received_at < ? AND length(raw_body) > 0 LIMIT ?)
                    """, arguments: [micros, limit])
            return db.changesCount
        default:
            try db.execute(
                sql: "DELETE FROM retries WHERE rowid IN (SELECT rowid FROM retries WHERE received_at < ? LIMIT ?)",
                arguments: [micros, limit])
            return db.changesCount
        }
    }

    /// Moves what the WAL holds into the database file without waiting for readers (PASSIVE),
    /// so a long purge does not leave a WAL as large as everything it rewrote.
    func checkpoint() async throws {
        try checkOpen()
        try await pool.writeWithoutTransaction { db in
            _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
        }
    }

    public func stats(since: Date?) async throws -> LedgerStats {
        try await read { db in
            let from = since?.unixMicroseconds ?? 0
            let kinds = try GRDB.Row.fetchAll(
                db,
                sql: """
                    SELECT provider, coalesce(kind, '?') AS kind, count(*) AS n, sum(retries) AS r, sum(conflicts_ignored) AS ci
                    FROM notifications WHERE received_at >= ? GROUP BY provider, kind ORDER BY provider, kind
                    """, arguments: [from])
            let conflicts =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM conflicts WHERE received_at >= ?", arguments: [from])
                ?? 0
            let reasons = try GRDB.Row.fetchAll(
                db,
                sql:
                    "SELECT reason, count(*) AS n FROM quarantine WHERE received_at >= ? GROUP BY reason ORDER BY n DESC",
                arguments: [from])
            let outbox = try GRDB.Row.fetchOne(db, sql: "SELECT count(*) AS n, min(queued_at) AS oldest FROM outbox")!
            return LedgerStats(
                byKind: kinds.map {
                    LedgerStats.Row(provider: $0["provider"], kind: $0["kind"], events: $0["n"], retries: $0["r"])
                },
                conflicts: conflicts, conflictsIgnored: kinds.reduce(0) { $0 + ($1["ci"] as Int) },
                quarantineByReason: reasons.map { ($0["reason"], $0["n"]) }, outboxDepth: outbox["n"],
                oldestInOutbox: (outbox["oldest"] as Int64?).map(Date.init(unixMicroseconds:)))
        }
    }
}
