import Foundation
import GRDB
import Metrics
import PGNotiCore
import PGNotiSpool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the intake needs from storage. The daemon uses `Ledger`; tests can hand the intake a
/// store that holds or fails commits, to show that no answer leaves before a commit.
public protocol NotificationStore: Sendable {
    /// Returns only after the transaction holding the entry has committed.
    func record(_ entry: LedgerEntry) async throws -> RecordOutcome
    /// Records `entries` in their order: each is deduplicated against those before it, and
    /// those filed get queue file names in that order. Returns once every one is settled.
    func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>]
    /// Keeps a refused request; may drop it (and count it) under a flood.
    func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome
}

extension NotificationStore {
    /// One at a time: in order, one commit each.
    public func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>] {
        var results: [Result<RecordOutcome, any Error>] = []
        for entry in entries {
            do { results.append(.success(try await record(entry))) } catch { results.append(.failure(error)) }
        }
        return results
    }
}

/// How much of the quarantine is kept.
public struct QuarantinePolicy: Sendable, Equatable {
    public var maxBytes: Int
    public var maxRows: Int
    public var keepDays: Int

    public init(maxBytes: Int = 256 * 1024 * 1024, maxRows: Int = 10_000, keepDays: Int = 30) {
        self.maxBytes = maxBytes
        self.maxRows = maxRows
        self.keepDays = keepDays
    }
}

/// The durable record of every notification pgnoti has acknowledged, and of every request it
/// refused.
///
/// All writes go through one writer thread. `record` calls that arrive while a commit is in
/// flight are folded into the next write transaction (group commit), so a burst costs one
/// fsync per batch rather than one per notification. Nothing is reported as accepted before
/// the transaction that holds it has committed.
///
/// The other writes (refused requests, outbox deletions, operator commands) ride in the same
/// transactions instead of competing for the write lock. Refused requests are bounded twice: a
/// batch that carries notifications carries at most `quarantineBytesPerBusyBatch` of them, so a
/// flood of garbage cannot slow the commits ACKs wait on, and at most `quarantineQueueLimit`
/// wait at once; beyond that they are dropped and counted.
public final class Ledger: NotificationStore, OutboxSource, Sendable {
    /// Conflicting versions filed per key. Anyone holding one signed Smartro post can vary `Amt`
    /// at will (SignValue does not cover it), so this is bounded.
    public static let maximumConflictsPerKey = 10
    /// Retries of one notification kept one by one (time, peer, client); beyond, only counted.
    static let retriesKept = 100

    /// Who waits for a record's outcome: one caller, or one place in an ordered group.
    enum RecordWaiter {
        case single(CheckedContinuation<RecordOutcome, any Error>)
        case member(RecordGroup, Int)

        func resume(with result: Result<RecordOutcome, any Error>) {
            switch self {
            case .single(let continuation): continuation.resume(with: result)
            case .member(let group, let index): group.settle(index, result)
            }
        }
    }

    /// The outcomes of one `recordInOrder` call, handed back once all are in.
    final class RecordGroup: Sendable {
        private struct State {
            var results: [Result<RecordOutcome, any Error>?]
            var remaining: Int
        }
        private let state: Mutex<State>
        private let continuation: CheckedContinuation<[Result<RecordOutcome, any Error>], Never>

        init(count: Int, continuation: CheckedContinuation<[Result<RecordOutcome, any Error>], Never>) {
            state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count))
            self.continuation = continuation
        }

        func settle(_ index: Int, _ result: Result<RecordOutcome, any Error>) {
            let done: [Result<RecordOutcome, any Error>]? = state.withLock { state in
                state.results[index] = result
                state.remaining -= 1
                return state.remaining == 0 ? state.results.map { $0! } : nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    enum Job {
        case record(LedgerEntry, CheckedContinuation<RecordOutcome, any Error>)
        case records([LedgerEntry], RecordGroup)
        case quarantine(QuarantineEntry, CheckedContinuation<QuarantineOutcome, any Error>)
        case write(@Sendable (Database) throws -> Void, CheckedContinuation<Void, any Error>)
    }

    struct WriterState {
        var records: [LedgerEntry] = []
        var recordWaiters: [RecordWaiter] = []
        var quarantine: [(QuarantineEntry, CheckedContinuation<QuarantineOutcome, any Error>)] = []
        var quarantineQueuedBytes = 0
        var writes: [(@Sendable (Database) throws -> Void, CheckedContinuation<Void, any Error>)] = []
        var drainScheduled = false
        var closed = false
        var stats = WriterStats()
        /// Why the last write transaction failed; nil once one commits again.
        var lastFailure: String?
    }

    /// State only the writer thread touches.
    struct WriterLocal {
        var lastFiledMicros: Int64 = 0
        var quarantineBytes = 0
        var quarantineRows = 0
        var lastAgeSweep = Date.distantPast
    }

    public let path: String
    let pool: DatabasePool
    private let maxBatch: Int
    let writer = Mutex(WriterState())
    private let local = Mutex(WriterLocal())
    private let policy: Mutex<QuarantinePolicy>
    // The blocking SQLite work of group commit happens here, never on the
    // cooperative pool: callers just park on a continuation.
    let writerQueue = DispatchQueue(label: "pgnoti.ledger.group-commit")

    static let quarantineQueueLimit = 2_000
    static let quarantineQueueByteLimit = 32 * 1024 * 1024
    static let quarantineBytesPerBusyBatch = 256 * 1024
    static let quarantineBytesPerIdleBatch = 8 * 1024 * 1024

    /// - Parameters:
    ///   - path: SQLite file; its parent directory is created if missing.
    ///   - maxBatch: most notifications folded into one write transaction.
    ///   - busyTimeout: how long a write waits for a lock held by another
    ///     connection (another process on the same file) before failing.
    public init(
        path: String, maxBatch: Int = 256, busyTimeout: Duration = .seconds(5),
        quarantinePolicy: QuarantinePolicy = QuarantinePolicy()
    ) throws {
        precondition(maxBatch > 0, "maxBatch must be positive")
        self.path = path
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw LedgerError.cannotCreateDirectory(path: parent, reason: "\(error)")
            }
        }

        Self.createPrivately(path)
        var config = Configuration()
        config.label = "pgnoti.ledger"
        let timeout = busyTimeout.components
        config.busyMode = .timeout(Double(timeout.seconds) + Double(timeout.attoseconds) / 1e18)
        // DatabasePool puts the file in WAL mode.
        pool = try DatabasePool(path: path, configuration: config)
        self.maxBatch = maxBatch
        self.policy = Mutex(quarantinePolicy)

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
        let migrator = Schema.migrator
        let known = Set(migrator.migrations)
        let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
        let unknown = applied.subtracting(known)
        guard unknown.isEmpty else { throw LedgerError.newerSchema(path: path, unknown: unknown.sorted()) }
        try migrator.migrate(pool)
        let (bytes, rows) = try pool.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT coalesce(sum(length(raw_body)), 0) AS b, count(*) AS n FROM quarantine")!
            return (row["b"] as Int, row["n"] as Int)
        }
        local.withLock {
            $0.quarantineBytes = bytes
            $0.quarantineRows = rows
        }
    }

    /// A new database is created 0640 whatever the umask: it holds raw bodies with names and
    /// phones, for the service's user and group only. SQLite gives the `-wal` and `-shm`
    /// sidecars the main file's mode, so they follow.
    static func createPrivately(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return }  // it exists already, or SQLite will say why it cannot
        fchmod(fd, 0o640)
        Glibc.close(fd)
    }

    public func setQuarantinePolicy(_ newPolicy: QuarantinePolicy) {
        policy.withLock { $0 = newPolicy }
    }

    // MARK: - Submitting work

    public func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.record(entry, continuation))
        }
    }

    /// Queues `entries` one after another, with nothing between them: they are applied in this
    /// order (in as few transactions as `maxBatch` allows), so a later entry is deduplicated
    /// against an earlier one and queue file names follow the order.
    public func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>] {
        guard !entries.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            enqueue(.records(entries, RecordGroup(count: entries.count, continuation: continuation)))
        }
    }

    /// Queues a refused request for the next transaction; returns once it is stored, or at once
    /// with `.dropped` when the queue is full.
    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome {
        try await withCheckedThrowingContinuation { continuation in
            enqueue(.quarantine(entry, continuation))
        }
    }

    /// Runs `work` inside the writer's next transaction, in its own savepoint.
    public func write(_ work: @escaping @Sendable (Database) throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enqueue(.write(work, continuation))
        }
    }

    private func enqueue(_ job: Job) {
        enum Decision {
            case closed, dropped
            case queued(schedule: Bool)
        }
        let decision: Decision = writer.withLock { state in
            if state.closed { return .closed }
            switch job {
            case .record(let entry, let continuation):
                state.records.append(entry)
                state.recordWaiters.append(.single(continuation))
            case .records(let entries, let group):
                state.records.append(contentsOf: entries)
                state.recordWaiters.append(contentsOf: entries.indices.map { .member(group, $0) })
            case .quarantine(let entry, let continuation):
                let size = entry.rawBody.count
                if state.quarantine.count >= Self.quarantineQueueLimit
                    || state.quarantineQueuedBytes + size > Self.quarantineQueueByteLimit
                {
                    state.stats.quarantineDropped += 1
                    return .dropped
                }
                state.quarantine.append((entry, continuation))
                state.quarantineQueuedBytes += size
            case .write(let work, let continuation):
                state.writes.append((work, continuation))
            }
            if state.drainScheduled { return .queued(schedule: false) }
            state.drainScheduled = true
            return .queued(schedule: true)
        }
        switch decision {
        case .closed:
            switch job {
            case .record(_, let c): c.resume(throwing: LedgerError.closed)
            case .records(let entries, let group):
                for index in entries.indices { group.settle(index, .failure(LedgerError.closed)) }
            case .quarantine(_, let c): c.resume(throwing: LedgerError.closed)
            case .write(_, let c): c.resume(throwing: LedgerError.closed)
            }
        case .dropped:
            if case .quarantine(_, let c) = job { c.resume(returning: .dropped) }
        case .queued(let schedule):
            if schedule { writerQueue.async { self.drainQueued() } }
        }
    }

    // MARK: - The writer

    struct Batch {
        var records: [LedgerEntry] = []
        var recordWaiters: [RecordWaiter] = []
        var quarantine: [(QuarantineEntry, CheckedContinuation<QuarantineOutcome, any Error>)] = []
        var writes: [(@Sendable (Database) throws -> Void, CheckedContinuation<Void, any Error>)] = []
        var isEmpty: Bool { records.isEmpty && quarantine.isEmpty && writes.isEmpty }
    }

    /// Runs on `writerQueue` until nothing is queued. Whatever piles up while
    /// a batch commits becomes the next batch.
    private func drainQueued() {
        while true {
            let batch: Batch? = writer.withLock { state in
                var batch = Batch()
                let n = min(maxBatch, state.records.count)
                batch.records = Array(state.records.prefix(n))
                batch.recordWaiters = Array(state.recordWaiters.prefix(n))
                state.records.removeFirst(n)
                state.recordWaiters.removeFirst(n)
                batch.writes = state.writes
                state.writes.removeAll()
                // Refused requests never make the commits ACKs wait on much heavier.
                let budget =
                    batch.records.isEmpty ? Self.quarantineBytesPerIdleBatch : Self.quarantineBytesPerBusyBatch
                var bytes = 0
                var taken = 0
                for (entry, _) in state.quarantine {
                    if taken > 0 && bytes + entry.rawBody.count > budget { break }
                    bytes += entry.rawBody.count
                    taken += 1
                }
                batch.quarantine = Array(state.quarantine.prefix(taken))
                state.quarantine.removeFirst(taken)
                state.quarantineQueuedBytes -= bytes
                if batch.isEmpty {
                    state.drainScheduled = false
                    return nil
                }
                return batch
            }
            guard let batch else { return }

            let result = commit(batch)
            writer.withLock { state in
                switch result {
                case .success(let outcome):
                    state.stats.committedBatches += 1
                    state.stats.committedEntries += batch.records.count
                    state.stats.largestBatch = max(state.stats.largestBatch, batch.records.count)
                    state.stats.quarantined += batch.quarantine.count
                    state.stats.quarantineEvicted += outcome.evicted
                    state.lastFailure = nil
                case .failure(let error):
                    state.stats.failedBatches += 1
                    state.lastFailure = "\(error)"
                }
            }
            if case .success(let outcome) = result {
                if !batch.records.isEmpty { Self.batchSize.record(batch.records.count) }
                if outcome.evicted > 0 { Self.evictedCounter.increment(by: outcome.evicted) }
            }
            // Callers are resumed only now, after COMMIT returned.
            switch result {
            case .success(let outcome):
                for (waiter, recordOutcome) in zip(batch.recordWaiters, outcome.records) {
                    waiter.resume(with: recordOutcome)
                }
                for ((_, waiter), id) in zip(batch.quarantine, outcome.quarantineIDs) {
                    waiter.resume(returning: .stored(id: id))
                }
                for ((_, waiter), writeResult) in zip(batch.writes, outcome.writes) {
                    waiter.resume(with: writeResult)
                }
            case .failure(let error):
                for waiter in batch.recordWaiters { waiter.resume(with: .failure(error)) }
                for (_, waiter) in batch.quarantine { waiter.resume(throwing: error) }
                for (_, waiter) in batch.writes { waiter.resume(throwing: error) }
            }
        }
    }

    struct BatchOutcome {
        var records: [Result<RecordOutcome, any Error>] = []
        var quarantineIDs: [Int64] = []
        var writes: [Result<Void, any Error>] = []
        var evicted = 0
    }

    /// One write transaction for the whole batch. Each record and each write runs in its own
    /// savepoint so that a constraint violation undoes only that entry's statements; anything
    /// else (I/O, disk full, read-only, busy, schema) means the store itself is unwell and fails
    /// the batch.
    private func commit(_ batch: Batch) -> Result<BatchOutcome, any Error> {
        Result {
            try pool.writeWithoutTransaction { db in
                var outcome = BatchOutcome()
                outcome.records.reserveCapacity(batch.records.count)
                try db.inTransaction(.immediate) {
                    try local.withLock { local in
                        for entry in batch.records {
                            outcome.records.append(
                                try Self.inSavepoint(db) { try self.apply(entry, in: db, local: &local) })
                        }
                        for (work, _) in batch.writes {
                            outcome.writes.append(try Self.inSavepoint(db) { try work(db) })
                        }
                        for (entry, _) in batch.quarantine {
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

    private func nextFileName(_ eventID: String, local: inout WriterLocal) -> String {
        // Strictly increasing even if the clock steps back: names sort in filing order.
        let micros = max(Date().unixMicroseconds, local.lastFiledMicros + 1)
        local.lastFiledMicros = micros
        return QueueFileName.make(filedAtMicroseconds: micros, eventID: eventID)
    }

    private func apply(_ entry: LedgerEntry, in db: Database, local: inout WriterLocal) throws -> RecordOutcome {
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

    private func insertOutbox(fileName: String, payload: [UInt8], notificationID: Int64, in db: Database) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO outbox (file_name, payload, notification_id, queued_at) VALUES (?, coalesce(?, x''), ?, ?)"
        ).execute(arguments: [fileName, Data(payload), notificationID, Date().unixMicroseconds])
    }

    private static func insert(_ entry: QuarantineEntry, in db: Database) throws -> Int64 {
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
    private func evict(in db: Database, local: inout WriterLocal) throws -> Int {
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

    /// Returns once the writer thread has taken a turn, without touching SQLite: the watchdog's
    /// proof that the writer is not stuck (a full disk fails commits quickly; it does not stop
    /// the writer).
    public func probeWriter() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            writerQueue.async { done.resume() }
        }
    }

    /// Opens and commits an empty write transaction: throws if the database cannot be written.
    public func probeWritable() async throws {
        try await write { _ in }
    }

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

    public struct Counts: Sendable, Equatable {
        public var notifications: Int
        public var outbox: Int
        public var quarantine: Int
        public var quarantineBytes: Int
        public var conflicts: Int
    }

    public func counts() async throws -> Counts {
        try await read { db in
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT (SELECT count(*) FROM notifications) AS n, (SELECT count(*) FROM outbox) AS o,
                           (SELECT count(*) FROM quarantine) AS q, (SELECT coalesce(sum(size), 0) FROM quarantine) AS qb,
                           (SELECT count(*) FROM conflicts) AS c
                    """)!
            return Counts(
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

    // MARK: - Shutdown

    /// Refuses new work, lets every job already queued finish (so no
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

    func checkOpen() throws {
        if writer.withLock({ $0.closed }) { throw LedgerError.closed }
    }
}

extension Row {
    fileprivate func bytes(_ column: String) -> [UInt8] {
        (self[column] as Data?).map { [UInt8]($0) } ?? []
    }
}
