import Foundation
import GRDB
import Metrics
import PGNotiCore
import PGNotiSpool
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

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
    let local = Mutex(WriterLocal())
    let policy: Mutex<QuarantinePolicy>
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
    func commit(_ batch: Batch) -> Result<BatchOutcome, any Error> {
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
