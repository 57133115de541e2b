import Foundation
import GRDB
import PGNotiCore
import PGNotiSpool
import Synchronization

/// The SQL behind one group-commit transaction on SQLite: the dedup and conflict rule's reads and
/// writes (the rule itself is `LedgerRules`), the outbox row written with the notification, and
/// the quarantine's eviction.
final class SQLiteCommitter: BatchCommitter, Sendable {
    typealias Work = @Sendable (Database) throws -> Void

    /// State only the writer thread touches.
    struct WriterLocal {
        var lastFiledMicros: Int64 = 0
        var quarantineBytes = 0
        var quarantineRows = 0
        var lastAgeSweep = Date.distantPast
    }

    let pool: DatabasePool
    let local = Mutex(WriterLocal())
    let policy: Mutex<QuarantinePolicy>

    init(pool: DatabasePool, policy: QuarantinePolicy) {
        self.pool = pool
        self.policy = Mutex(policy)
    }

    /// One write transaction for the whole batch. Each record and each write runs in its own
    /// savepoint so that a constraint violation undoes only that entry's statements; anything
    /// else (I/O, disk full, read-only, busy, schema) means the store itself is unwell and fails
    /// the batch.
    func commit(_ batch: CommitBatch<Work>) -> Result<CommitOutcome, any Error> {
        Result {
            try pool.writeWithoutTransaction { db in
                var outcome = CommitOutcome()
                outcome.records.reserveCapacity(batch.records.count)
                try db.inTransaction(.immediate) {
                    try local.withLock { local in
                        for entry in batch.records {
                            outcome.records.append(
                                try Self.inSavepoint(db) { try self.apply(entry, in: db, local: &local) })
                        }
                        for work in batch.writes {
                            outcome.writes.append(try Self.inSavepoint(db) { try work(db) })
                        }
                        for entry in batch.quarantine {
                            outcome.quarantineIDs.append(try Self.insert(entry, in: db))
                            local.quarantineBytes += entry.rawBody.count
                            local.quarantineRows += 1
                        }
                        if !batch.quarantine.isEmpty || local.lastAgeSweep.timeIntervalSinceNow < -3600 {
                            outcome.evicted = try evict(in: db, local: &local)
                        }
                    }
                    return .commit
                }
                return outcome
            }
        }
    }

    /// Runs `body` in a savepoint; a constraint violation becomes that item's failure, anything
    /// else fails the whole transaction.
    ///
    /// The savepoint statements are prepared once per connection: a batch opens one per entry.
    private static func inSavepoint<T>(_ db: Database, _ body: () throws -> T) throws -> Result<T, any Error> {
        try db.cachedStatement(sql: "SAVEPOINT entry").execute()
        do {
            let value = try body()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT entry").execute()
            return .success(value)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT && db.isInsideTransaction {
            try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT entry").execute()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT entry").execute()
            return .failure(error)
        } catch {
            // The transaction fails as a whole; unwind the savepoint so the rollback is clean.
            if db.isInsideTransaction {
                try? db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT entry").execute()
                try? db.cachedStatement(sql: "RELEASE SAVEPOINT entry").execute()
            }
            throw error
        }
    }

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
                    SELECT id, event_id, fingerprint, amount, result_code, retries FROM notifications
                    WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ?
                    """),
            arguments: key)
        let now = Date().unixMicroseconds
        let holding = try existing.map { try heldVersion($0, key: key, fingerprint: entry.fingerprint, in: db) }
        // Every case but `.new` has a row under the key, so `existing` is set there.
        switch LedgerRules.decide(
            fingerprint: entry.fingerprint, held: holding?.rule, canBuildConflictEvent: entry.conflictEvent != nil)
        {
        case .new:
            break
        case .retryOfStored(let eventID):
            let storedID: Int64 = existing!["id"]
            try db.cachedStatement(
                sql: "UPDATE notifications SET retries = retries + 1, last_seen_at = ? WHERE id = ?"
            ).execute(arguments: [now, storedID])
            if LedgerRules.keepsRetryDetail(retriesBefore: existing!["retries"]) {
                try db.cachedStatement(
                    sql: "INSERT INTO retries (notification_id, received_at, peer, client) VALUES (?, ?, ?, ?)"
                ).execute(arguments: [storedID, entry.receivedAt.unixMicroseconds, entry.peer, entry.client])
            }
            return .duplicate(eventID: eventID)
        case .retryOfConflict(let eventID):
            try db.cachedStatement(sql: "UPDATE conflicts SET retries = retries + 1 WHERE id = ?")
                .execute(arguments: [holding!.filedConflictRowID!])
            return .duplicate(eventID: eventID)
        case .ignoreConflict(let conflictsWith, let storedFingerprint):
            let storedID: Int64 = existing!["id"]
            try db.cachedStatement(
                sql: "UPDATE notifications SET conflicts_ignored = conflicts_ignored + 1 WHERE id = ?"
            ).execute(arguments: [storedID])
            let ignored =
                try Int.fetchOne(
                    db.cachedStatement(sql: "SELECT conflicts_ignored FROM notifications WHERE id = ?"),
                    arguments: [storedID]) ?? 0
            return .conflictIgnored(
                conflictsWith: conflictsWith, storedFingerprint: storedFingerprint, ignored: ignored)
        case .fileConflict(let conflictsWith, let storedFingerprint):
            // The conflict document is built only now that it is known to be filed.
            let stored = existing!
            let (conflictID, json) = entry.conflictEvent!(stored["event_id"], stored["amount"], stored["result_code"])
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
                    conflictsWith, conflictID, storedFingerprint, entry.fingerprint, Data(entry.rawBody),
                    entry.contentType, entry.peer, entry.peer, entry.client, entry.receivedAt.unixMicroseconds,
                    Data(json), fileName,
                ])
            try insertOutbox(fileName: fileName, payload: json, notificationID: stored["id"], in: db)
            return .conflict(
                eventID: conflictID, conflictsWith: conflictsWith, storedFingerprint: storedFingerprint,
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

    /// What the rule needs to know about the row under a key. The conflict tables are read only
    /// when the incoming version differs: a plain retry (the common case) costs one look-up.
    private func heldVersion(_ row: Row, key: StatementArguments, fingerprint: String, in db: Database) throws
        -> (rule: LedgerRules.Held, filedConflictRowID: Int64?)
    {
        var rule = LedgerRules.Held(eventID: row["event_id"], fingerprint: row["fingerprint"])
        guard rule.fingerprint != fingerprint else { return (rule, nil) }
        let filed = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT id, conflict_event_id FROM conflicts
                    WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ? AND new_fingerprint = ?
                        AND conflict_event_id IS NOT NULL
                    """),
            arguments: key + [fingerprint])
        rule.filedConflictEventID = filed?["conflict_event_id"]
        rule.filedConflicts =
            try Int.fetchOne(
                db.cachedStatement(
                    sql: """
                        SELECT count(*) FROM conflicts
                        WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ? AND conflict_event_id IS NOT NULL
                        """),
                arguments: key) ?? 0
        return (rule, filed?["id"])
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

    /// Keeps the quarantine inside its policy (`QuarantineEviction` says what goes). Returns how
    /// many rows were evicted.
    func evict(in db: Database, local: inout WriterLocal) throws -> Int {
        let policy = self.policy.withLock { $0 }
        var evicted = 0
        if local.lastAgeSweep.timeIntervalSinceNow < -3600 {
            let cutoff = QuarantineEviction.ageCutoff(now: Date(), policy: policy).unixMicroseconds
            try db.execute(sql: "DELETE FROM quarantine WHERE received_at < ?", arguments: [cutoff])
            evicted += db.changesCount
            local.lastAgeSweep = Date()
        }
        guard
            evicted > 0
                || QuarantineEviction.isOver(bytes: local.quarantineBytes, rows: local.quarantineRows, policy: policy)
        else { return 0 }
        // The counters drift when other processes write; start from the truth. Bytes are the
        // bytes held: a body `pgnoti purge` emptied no longer counts (`size` keeps what it was).
        let totals = try Row.fetchOne(
            db, sql: "SELECT coalesce(sum(length(raw_body)), 0) AS b, count(*) AS n FROM quarantine")!
        // The ORDER BY is `QuarantineEviction.precedes`: garbage (parsed = 0) first, then by id.
        let cursor = try Row.fetchCursor(
            db, sql: "SELECT id, parsed, length(raw_body) AS size FROM quarantine ORDER BY parsed, id")
        let (victims, bytes, rows) = try QuarantineEviction.victims(
            bytes: totals["b"], rows: totals["n"], policy: policy
        ) {
            try cursor.next().map {
                QuarantineEviction.Candidate(id: $0["id"], parsed: $0["parsed"], bytes: $0["size"])
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
}
