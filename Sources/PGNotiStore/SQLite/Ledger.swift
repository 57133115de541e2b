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
/// refused, in one SQLite file.
///
/// All writes go through one `GroupCommitWriter`: `record` calls that arrive while a commit is in
/// flight are folded into the next write transaction, so a burst costs one fsync per batch rather
/// than one per notification. Nothing is reported as accepted before the transaction that holds
/// it has committed. The other writes (refused requests, outbox deletions, operator commands)
/// ride in the same transactions instead of competing for the write lock.
public final class Ledger: LedgerStore, Sendable {
    public let path: String
    public var location: String { path }
    let pool: DatabasePool
    let committer: SQLiteCommitter
    let writer: GroupCommitWriter<SQLiteCommitter>

    /// Set when reads go to a migrated copy of an older database; removed on close.
    let temporaryCopy: String?
    /// Opened with `SQLITE_OPEN_READONLY`: every write is refused before it reaches SQLite.
    public let isReadOnly: Bool

    /// Opens (creating if need be) and migrates the database for writing.
    /// - Parameters:
    ///   - path: SQLite file; its parent directory is created if missing.
    ///   - maxBatch: most notifications folded into one write transaction.
    ///   - busyTimeout: how long a write waits for a lock held by another
    ///     connection (another process on the same file) before failing.
    public convenience init(
        path: String, maxBatch: Int = 256, busyTimeout: Duration = .seconds(5),
        quarantinePolicy: QuarantinePolicy = QuarantinePolicy()
    ) throws {
        let pool = try Self.openForWriting(path, busyTimeout: busyTimeout)
        try self.init(
            path: path, pool: pool, maxBatch: maxBatch, quarantinePolicy: quarantinePolicy, isReadOnly: false,
            temporaryCopy: nil)
    }

    init(
        path: String, pool: DatabasePool, maxBatch: Int, quarantinePolicy: QuarantinePolicy, isReadOnly: Bool,
        temporaryCopy: String?
    ) throws {
        self.path = path
        self.pool = pool
        self.isReadOnly = isReadOnly
        self.temporaryCopy = temporaryCopy
        committer = SQLiteCommitter(pool: pool, policy: quarantinePolicy)
        writer = GroupCommitWriter(committer, label: "pgnoti.ledger.group-commit", maxBatch: maxBatch)
        let (bytes, rows) = try pool.read { db in
            let row = try Row.fetchOne(
                db, sql: "SELECT coalesce(sum(length(raw_body)), 0) AS b, count(*) AS n FROM quarantine")!
            return (row["b"] as Int, row["n"] as Int)
        }
        committer.local.withLock {
            $0.quarantineBytes = bytes
            $0.quarantineRows = rows
        }
    }

    public func setQuarantinePolicy(_ newPolicy: QuarantinePolicy) {
        committer.policy.withLock { $0 = newPolicy }
    }

    // MARK: - Submitting work

    public func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        try checkWritable()
        return try await writer.record(entry)
    }

    /// Queues `entries` one after another, with nothing between them: they are applied in this
    /// order (in as few transactions as `maxBatch` allows), so a later entry is deduplicated
    /// against an earlier one and queue file names follow the order.
    public func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>] {
        if isReadOnly { return entries.map { _ in .failure(LedgerError.readOnly(path: path)) } }
        return await writer.recordInOrder(entries)
    }

    /// Queues a refused request for the next transaction; returns once it is stored, or at once
    /// with `.dropped` when the queue is full.
    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome {
        try checkWritable()
        return try await writer.quarantine(entry)
    }

    /// Runs `work` inside the writer's next transaction, in its own savepoint.
    public func write(_ work: @escaping @Sendable (Database) throws -> Void) async throws {
        try checkWritable()
        try await writer.write(work)
    }

    // MARK: - Health

    public func probeWriter() async {
        await writer.probe()
    }

    /// Opens and commits an empty write transaction: throws if the database cannot be written.
    public func probeWritable() async throws {
        try await write { _ in }
    }

    public var writerStats: WriterStats { writer.stats }

    /// Why the last write transaction failed, or nil when the last one committed.
    public var lastFailure: String? { writer.lastFailure }

    /// Creates the ledger's series now, so `/metrics` shows them at 0 from the start.
    public static func registerMetrics() {
        _ = WriterMetrics.evicted
        _ = WriterMetrics.batchSize
    }

    // MARK: - Shutdown

    /// Refuses new work, lets every job already queued finish (so no caller is left hanging),
    /// then closes the connections. Connections also close when the ledger is deallocated.
    public func close() async throws {
        await writer.closeAndDrain()
        try pool.close()
        if let temporaryCopy {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: temporaryCopy + suffix) }
        }
    }

    func checkOpen() throws {
        if writer.isClosed { throw LedgerError.closed }
    }

    func checkWritable() throws {
        if isReadOnly { throw LedgerError.readOnly(path: path) }
    }
}
