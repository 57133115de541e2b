import Foundation
import GRDB
import PGNotiCore

/// The durable record of every notification pgnoti has acknowledged.
///
/// `record` calls that arrive while a commit is in flight are folded into the
/// next write transaction (group commit), so a burst costs one fsync per batch
/// rather than one per notification. Nothing is reported as accepted before
/// the transaction that holds it has committed.
public final class Ledger: Sendable {
    typealias Job = (entry: LedgerEntry, continuation: CheckedContinuation<RecordOutcome, any Error>)

    struct WriterState {
        var queued: [Job] = []
        var drainScheduled = false
        var closed = false
        var stats = WriterStats()
    }

    let pool: DatabasePool
    private let maxBatch: Int
    let writer = Locked(WriterState())
    // The blocking SQLite work of group commit happens here, never on the
    // cooperative pool: callers just park on a continuation.
    let writerQueue = DispatchQueue(label: "pgnoti.ledger.group-commit")

    /// - Parameters:
    ///   - path: SQLite file; its parent directory is created if missing.
    ///   - maxBatch: most entries folded into one write transaction.
    ///   - busyTimeout: how long a write waits for a lock held by another
    ///     connection (another process on the same file) before failing.
    public init(path: String, maxBatch: Int = 256, busyTimeout: Duration = .seconds(5)) throws {
        precondition(maxBatch > 0, "maxBatch must be positive")
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw LedgerError.cannotCreateDirectory(path: parent, reason: "\(error)")
            }
        }

        var config = Configuration()
        config.label = "pgnoti.ledger"
        let timeout = busyTimeout.components
        config.busyMode = .timeout(Double(timeout.seconds) + Double(timeout.attoseconds) / 1e18)
        // DatabasePool puts the file in WAL mode.
        pool = try DatabasePool(path: path, configuration: config)
        self.maxBatch = maxBatch

        // With WAL, NORMAL (which DatabasePool sets on its writer after any
        // prepareDatabase hook has run) may lose the last commits on power
        // loss. We ACK the PG right after commit, so every commit must reach
        // the disk. The writer connection lives as long as the pool, so
        // setting it once here holds for every write.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode")
            let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            guard mode == "wal", sync == 2 else {
                throw DatabaseError(
                    message: "\(path): expected journal_mode=wal, synchronous=FULL; got \(mode ?? "?"), \(sync ?? -1)")
            }
        }
        try Schema.migrator.migrate(pool)
    }

    // MARK: - Recording

    public func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue((entry, continuation))
        }
    }

    private func enqueue(_ job: Job) {
        let accepted: Bool
        let mustSchedule: Bool
        (accepted, mustSchedule) = writer.withLock { state in
            if state.closed { return (false, false) }
            state.queued.append(job)
            if state.drainScheduled { return (true, false) }
            state.drainScheduled = true
            return (true, true)
        }
        if !accepted {
            job.continuation.resume(throwing: LedgerError.closed)
        } else if mustSchedule {
            writerQueue.async { self.drainQueued() }
        }
    }

    /// Runs on `writerQueue` until nothing is queued. Whatever piles up while
    /// a batch commits becomes the next batch.
    private func drainQueued() {
        while true {
            let batch: [Job]? = writer.withLock { state in
                if state.queued.isEmpty {
                    state.drainScheduled = false
                    return nil
                }
                let taken = Array(state.queued.prefix(maxBatch))
                state.queued.removeFirst(taken.count)
                return taken
            }
            guard let batch else { return }

            let results = commit(batch.map(\.entry))
            writer.withLock { state in
                switch results {
                case .success:
                    state.stats.committedBatches += 1
                    state.stats.committedEntries += batch.count
                    state.stats.largestBatch = max(state.stats.largestBatch, batch.count)
                case .failure:
                    state.stats.failedBatches += 1
                }
            }
            // Callers are resumed only now, after COMMIT returned.
            switch results {
            case .success(let outcomes):
                for (job, outcome) in zip(batch, outcomes) {
                    job.continuation.resume(with: outcome)
                }
            case .failure(let error):
                for job in batch {
                    job.continuation.resume(throwing: error)
                }
            }
        }
    }

    /// One write transaction for the whole batch. Each entry runs in its own
    /// savepoint so that a constraint violation undoes only that entry's
    /// statements; anything else (I/O, disk full, read-only, busy, schema)
    /// means the store itself is unwell and fails the batch.
    private func commit(_ entries: [LedgerEntry]) -> Result<[Result<RecordOutcome, any Error>], any Error> {
        Result {
            try pool.writeWithoutTransaction { db in
                var outcomes: [Result<RecordOutcome, any Error>] = []
                outcomes.reserveCapacity(entries.count)
                try db.inTransaction(.immediate) {
                    for entry in entries {
                        do {
                            var outcome: RecordOutcome?
                            try db.inSavepoint {
                                outcome = try Self.apply(entry, in: db)
                                return .commit
                            }
                            outcomes.append(.success(outcome!))
                        } catch let error as DatabaseError
                            where error.resultCode == .SQLITE_CONSTRAINT && db.isInsideTransaction
                        {
                            outcomes.append(.failure(error))
                        }
                    }
                    return .commit
                }
                return outcomes
            }
        }
    }

    private static func apply(_ entry: LedgerEntry, in db: Database) throws -> RecordOutcome {
        let key: StatementArguments = [entry.provider, entry.merchantID, entry.tid, entry.state]
        let existing = try Row.fetchOne(
            db.cachedStatement(
                sql: """
                    SELECT id, event_id, fingerprint FROM notifications
                    WHERE provider = ? AND merchant_id = ? AND tid = ? AND state = ?
                    """),
            arguments: key)
        let receivedAt = entry.receivedAt.unixMicroseconds

        if let existing {
            let storedID: Int64 = existing["id"]
            let storedEventID: String = existing["event_id"]
            let storedFingerprint: String = existing["fingerprint"]
            if storedFingerprint == entry.fingerprint {
                try db.cachedStatement(
                    sql: """
                        UPDATE notifications SET retries = retries + 1, last_seen_at = ? WHERE id = ?
                        """
                ).execute(arguments: [receivedAt, storedID])
                return .duplicate(eventID: storedEventID)
            }
            try db.cachedStatement(
                sql: """
                    INSERT INTO conflicts (provider, merchant_id, tid, state, event_id,
                        stored_fingerprint, new_fingerprint, raw_body, content_type, remote_address, received_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, coalesce(?, x''), ?, ?, ?)
                    """
            ).execute(
                arguments: key + [
                    storedEventID, storedFingerprint, entry.fingerprint, Data(entry.rawBody),
                    entry.contentType, entry.remoteAddress, receivedAt,
                ])
            return .conflict(eventID: storedEventID, storedFingerprint: storedFingerprint)
        }

        // GRDB binds an empty Data as NULL; coalesce keeps empty bodies storable
        // without loosening the NOT NULL constraints.
        try db.cachedStatement(
            sql: """
                INSERT INTO notifications (provider, merchant_id, tid, state, fingerprint, event_id,
                    event_json, queue_file_name, raw_body, content_type, remote_address, received_at)
                VALUES (?, ?, ?, ?, ?, ?, coalesce(?, x''), ?, coalesce(?, x''), ?, ?, ?)
                """
        ).execute(
            arguments: key + [
                entry.fingerprint, entry.eventID, Data(entry.eventJSON), entry.queueFileName,
                Data(entry.rawBody), entry.contentType, entry.remoteAddress, receivedAt,
            ])
        let notificationID = db.lastInsertedRowID
        try db.cachedStatement(
            sql: """
                INSERT INTO outbox (file_name, payload, notification_id) VALUES (?, coalesce(?, x''), ?)
                """
        ).execute(arguments: [entry.queueFileName, Data(entry.eventJSON), notificationID])
        return .accepted(eventID: entry.eventID)
    }

    public var writerStats: WriterStats {
        writer.withLock { $0.stats }
    }

    // MARK: - Rejected requests

    /// Stores a refused request and trims the table to the newest `keep` rows,
    /// so a flood of garbage cannot grow the database without bound.
    public func recordRejected(_ request: RejectedRequest, keep: Int = 10_000) async throws {
        try checkOpen()
        let keep = max(keep, 0)
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO rejected (provider, reason, detail, raw_body, content_type, remote_address, received_at)
                    VALUES (?, ?, ?, coalesce(?, x''), ?, ?, ?)
                    """,
                arguments: [
                    request.provider, request.reason, request.detail, Data(request.rawBody),
                    request.contentType, request.remoteAddress, request.receivedAt.unixMicroseconds,
                ])
            // AUTOINCREMENT ids only grow, so "newest" is "largest id".
            try db.execute(
                sql: "DELETE FROM rejected WHERE id <= (SELECT max(id) FROM rejected) - ?",
                arguments: [keep])
        }
    }

    // MARK: - Outbox

    /// Oldest first, which is arrival order.
    public func pendingOutbox(limit: Int) async throws -> [OutboxItem] {
        try checkOpen()
        return try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT id, file_name, payload FROM outbox ORDER BY id LIMIT ?",
                arguments: [limit]
            )
            .map { OutboxItem(id: $0["id"], fileName: $0["file_name"], payload: $0.bytes("payload")) }
        }
    }

    public func removeFromOutbox(ids: [Int64]) async throws {
        try checkOpen()
        guard !ids.isEmpty else { return }
        try await pool.write { db in
            // Stay far below SQLite's bound-parameter limit.
            var rest = ids[...]
            while !rest.isEmpty {
                let chunk = rest.prefix(500)
                rest = rest.dropFirst(chunk.count)
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                try db.execute(
                    sql: "DELETE FROM outbox WHERE id IN (\(marks))",
                    arguments: StatementArguments(Array(chunk)))
            }
        }
    }

    // MARK: - Listings

    /// Oldest first, starting after `afterRowID` (a `StoredNotification.rowID`).
    public func notifications(limit: Int, afterRowID: Int64? = nil) async throws -> [StoredNotification] {
        try checkOpen()
        return try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM notifications WHERE id > ? ORDER BY id LIMIT ?
                    """, arguments: [afterRowID ?? 0, limit]
            )
            .map { row in
                StoredNotification(
                    rowID: row["id"], provider: row["provider"], merchantID: row["merchant_id"],
                    tid: row["tid"], state: row["state"], eventID: row["event_id"],
                    fingerprint: row["fingerprint"],
                    receivedAt: Date(unixMicroseconds: row["received_at"]),
                    eventJSON: row.bytes("event_json"), rawBody: row.bytes("raw_body"),
                    contentType: row["content_type"], remoteAddress: row["remote_address"],
                    retries: row["retries"],
                    lastSeenAt: (row["last_seen_at"] as Int64?).map(Date.init(unixMicroseconds:)))
            }
        }
    }

    /// Newest first.
    public func rejected(limit: Int) async throws -> [RejectedRequest] {
        try checkOpen()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rejected ORDER BY id DESC LIMIT ?", arguments: [limit])
                .map { row in
                    RejectedRequest(
                        provider: row["provider"], reason: row["reason"], detail: row["detail"],
                        rawBody: row.bytes("raw_body"), contentType: row["content_type"],
                        remoteAddress: row["remote_address"],
                        receivedAt: Date(unixMicroseconds: row["received_at"]))
                }
        }
    }

    /// Newest first.
    public func conflicts(limit: Int) async throws -> [ConflictRecord] {
        try checkOpen()
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM conflicts ORDER BY id DESC LIMIT ?", arguments: [limit])
                .map { row in
                    ConflictRecord(
                        id: row["id"], provider: row["provider"], merchantID: row["merchant_id"],
                        tid: row["tid"], state: row["state"], eventID: row["event_id"],
                        storedFingerprint: row["stored_fingerprint"], newFingerprint: row["new_fingerprint"],
                        rawBody: row.bytes("raw_body"), contentType: row["content_type"],
                        remoteAddress: row["remote_address"],
                        receivedAt: Date(unixMicroseconds: row["received_at"]))
                }
        }
    }

    public func counts() async throws -> (notifications: Int, outbox: Int, rejected: Int, conflicts: Int) {
        try checkOpen()
        return try await pool.read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT count(*) FROM notifications) AS n, (SELECT count(*) FROM outbox) AS o,
                           (SELECT count(*) FROM rejected) AS r, (SELECT count(*) FROM conflicts) AS c
                    """)!
            return (notifications: row["n"], outbox: row["o"], rejected: row["r"], conflicts: row["c"])
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

    // MARK: - Shutdown

    /// Refuses new records, lets every record already queued finish (so no
    /// caller is left hanging), then closes the connections.
    ///
    /// Waits for the writer without blocking a thread: the cooperative pool
    /// may be two threads wide, and a caller parked on `writerQueue.sync`
    /// while the writer waits on work that needs that pool deadlocks.
    /// Connections also close when the ledger is deallocated.
    public func close() async throws {
        writer.withLock { $0.closed = true }
        await withCheckedContinuation { (drained: CheckedContinuation<Void, Never>) in
            writerQueue.async { drained.resume() }
        }
        try pool.close()
    }

    private func checkOpen() throws {
        if writer.withLock({ $0.closed }) { throw LedgerError.closed }
    }
}

extension Row {
    fileprivate func bytes(_ column: String) -> [UInt8] {
        (self[column] as Data?).map { [UInt8]($0) } ?? []
    }
}

extension Date {
    var unixMicroseconds: Int64 {
        Int64((timeIntervalSince1970 * 1_000_000).rounded())
    }

    init(unixMicroseconds: Int64) {
        self.init(timeIntervalSince1970: Double(unixMicroseconds) / 1_000_000)
    }
}
