import Foundation
import Metrics
import Synchronization

/// Writes one engine's batches: what `GroupCommitWriter` hands over is applied in one
/// transaction, and the outcome reports each item in order.
///
/// `commit` runs on the writer's own thread, never on the cooperative pool, and may block there
/// until the engine has confirmed the commit.
public protocol BatchCommitter: Sendable {
    /// A caller's own work to run inside the next transaction (for SQLite, a closure given the
    /// connection).
    associatedtype Work: Sendable
    func commit(_ batch: CommitBatch<Work>) -> Result<CommitOutcome, any Error>
}

/// What one transaction carries.
public struct CommitBatch<Work: Sendable>: Sendable {
    public internal(set) var records: [LedgerEntry] = []
    public internal(set) var quarantine: [QuarantineEntry] = []
    public internal(set) var writes: [Work] = []
    var isEmpty: Bool { records.isEmpty && quarantine.isEmpty && writes.isEmpty }
}

/// What the transaction did with each item, in the batch's order. A record or write can fail on
/// its own (a constraint); a failure of the whole transaction is the `commit` call's error.
public struct CommitOutcome: Sendable {
    public var records: [Result<RecordOutcome, any Error>] = []
    public var quarantineIDs: [Int64] = []
    public var writes: [Result<Void, any Error>] = []
    /// Quarantine rows evicted to stay inside the policy.
    public var evicted = 0
    public init() {}
}

/// Group commit, engine-neutral: everything submitted while a transaction is in flight is folded
/// into the next one, so a burst costs one durable commit per batch rather than one per
/// notification. Callers are resumed only after the transaction holding their item committed,
/// and a failed transaction fails every caller in it.
///
/// Refused requests are bounded twice: a batch that carries notifications carries at most
/// `quarantineBytesPerBusyBatch` of them, so a flood of garbage cannot slow the commits ACKs
/// wait on, and at most `quarantineQueueLimit` wait at once; beyond that they are dropped and
/// counted.
public final class GroupCommitWriter<Committer: BatchCommitter>: Sendable {
    public typealias Work = Committer.Work

    static var quarantineQueueLimit: Int { 2_000 }
    static var quarantineQueueByteLimit: Int { 32 * 1024 * 1024 }
    static var quarantineBytesPerBusyBatch: Int { 256 * 1024 }
    static var quarantineBytesPerIdleBatch: Int { 8 * 1024 * 1024 }

    private struct State {
        var records: [LedgerEntry] = []
        var recordWaiters: [RecordWaiter] = []
        var quarantine: [(QuarantineEntry, CheckedContinuation<QuarantineOutcome, any Error>)] = []
        var quarantineQueuedBytes = 0
        var writes: [(Work, CheckedContinuation<Void, any Error>)] = []
        var drainScheduled = false
        var closed = false
        var stats = WriterStats()
        var lastFailure: String?
    }

    private enum Job {
        case record(LedgerEntry, CheckedContinuation<RecordOutcome, any Error>)
        case records([LedgerEntry], RecordGroup)
        case quarantine(QuarantineEntry, CheckedContinuation<QuarantineOutcome, any Error>)
        case write(Work, CheckedContinuation<Void, any Error>)
    }

    private let committer: Committer
    private let maxBatch: Int
    private let state = Mutex(State())
    /// The thread commits block on; callers only park on a continuation.
    private let queue: DispatchQueue

    public init(_ committer: Committer, label: String, maxBatch: Int) {
        precondition(maxBatch > 0, "maxBatch must be positive")
        self.committer = committer
        self.maxBatch = maxBatch
        queue = DispatchQueue(label: label)
    }

    // MARK: - Submitting

    public func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        try await withCheckedThrowingContinuation { enqueue(.record(entry, $0)) }
    }

    /// `entries` one after another with nothing between them, in as few transactions as
    /// `maxBatch` allows; returns once every one is settled.
    public func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>] {
        guard !entries.isEmpty else { return [] }
        return await withCheckedContinuation { continuation in
            enqueue(.records(entries, RecordGroup(count: entries.count, continuation: continuation)))
        }
    }

    /// Returns once the request is stored, or at once with `.dropped` when the queue is full.
    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome {
        try await withCheckedThrowingContinuation { enqueue(.quarantine(entry, $0)) }
    }

    public func write(_ work: Work) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            enqueue(.write(work, continuation))
        }
    }

    private enum Admission {
        case closed, dropped
        case queued(schedule: Bool)
    }

    private func enqueue(_ job: Job) {
        let decision: Admission = state.withLock { state in
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
            if schedule { queue.async { self.drainQueued() } }
        }
    }

    // MARK: - Draining

    private struct Taken {
        var batch = CommitBatch<Work>()
        var recordWaiters: [RecordWaiter] = []
        var quarantineWaiters: [CheckedContinuation<QuarantineOutcome, any Error>] = []
        var writeWaiters: [CheckedContinuation<Void, any Error>] = []
    }

    /// Runs on `queue` until nothing is queued. Whatever piles up while a batch commits becomes
    /// the next batch.
    private func drainQueued() {
        while let taken = takeBatch() {
            let batch = taken.batch
            let result = committer.commit(batch)
            state.withLock { state in
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
            // Callers are resumed only now, after the commit returned.
            switch result {
            case .success(let outcome):
                if !batch.records.isEmpty { WriterMetrics.batchSize.record(batch.records.count) }
                if outcome.evicted > 0 { WriterMetrics.evicted.increment(by: outcome.evicted) }
                for (waiter, recordOutcome) in zip(taken.recordWaiters, outcome.records) {
                    waiter.resume(with: recordOutcome)
                }
                for (waiter, id) in zip(taken.quarantineWaiters, outcome.quarantineIDs) {
                    waiter.resume(returning: .stored(id: id))
                }
                for (waiter, writeResult) in zip(taken.writeWaiters, outcome.writes) {
                    waiter.resume(with: writeResult)
                }
            case .failure(let error):
                for waiter in taken.recordWaiters { waiter.resume(with: .failure(error)) }
                for waiter in taken.quarantineWaiters { waiter.resume(throwing: error) }
                for waiter in taken.writeWaiters { waiter.resume(throwing: error) }
            }
        }
    }

    /// The next batch: up to `maxBatch` records, every queued write, and refused requests within
    /// the byte budget. Nil (and the drain ends) when nothing is queued.
    private func takeBatch() -> Taken? {
        state.withLock { state in
            var taken = Taken()
            let n = min(maxBatch, state.records.count)
            taken.batch.records = Array(state.records.prefix(n))
            taken.recordWaiters = Array(state.recordWaiters.prefix(n))
            state.records.removeFirst(n)
            state.recordWaiters.removeFirst(n)
            taken.batch.writes = state.writes.map(\.0)
            taken.writeWaiters = state.writes.map(\.1)
            state.writes.removeAll()
            // Refused requests never make the commits ACKs wait on much heavier.
            let budget =
                taken.batch.records.isEmpty ? Self.quarantineBytesPerIdleBatch : Self.quarantineBytesPerBusyBatch
            var bytes = 0
            var count = 0
            for (entry, _) in state.quarantine {
                if count > 0 && bytes + entry.rawBody.count > budget { break }
                bytes += entry.rawBody.count
                count += 1
            }
            taken.batch.quarantine = state.quarantine.prefix(count).map(\.0)
            taken.quarantineWaiters = state.quarantine.prefix(count).map(\.1)
            state.quarantine.removeFirst(count)
            state.quarantineQueuedBytes -= bytes
            if taken.batch.isEmpty {
                state.drainScheduled = false
                return nil
            }
            return taken
        }
    }

    // MARK: - Health and shutdown

    /// Returns once the writer thread has taken a turn, without touching the database: the
    /// watchdog's proof that the writer is not stuck (a full disk fails commits quickly; it does
    /// not stop the writer).
    public func probe() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async { done.resume() }
        }
    }

    /// Refuses new work and returns once every job already queued has finished, so no caller is
    /// left hanging. Waits without blocking a thread: the cooperative pool may be two threads
    /// wide, and a caller parked on `queue.sync` while the writer waits on work that needs that
    /// pool deadlocks.
    public func closeAndDrain() async {
        state.withLock { $0.closed = true }
        await probe()
    }

    public var isClosed: Bool { state.withLock { $0.closed } }
    public var stats: WriterStats { state.withLock { $0.stats } }
    /// Why the last transaction failed; nil once one commits again.
    public var lastFailure: String? { state.withLock { $0.lastFailure } }

    // MARK: - Test hooks

    /// Parks the writer thread until the returned closure is called.
    @_spi(Testing) public func hold() -> @Sendable () -> Void {
        let gate = DispatchSemaphore(value: 0)
        queue.async { gate.wait() }
        return { gate.signal() }
    }

    @_spi(Testing) public var queuedRecordCount: Int { state.withLock { $0.records.count } }
    @_spi(Testing) public var queuedQuarantineCount: Int { state.withLock { $0.quarantine.count } }
}

/// The writer's series, shared by every engine.
enum WriterMetrics {
    /// Notifications per group-commit transaction.
    static let batchSize = Recorder(label: "pgnoti_group_commit_batch_size")
    static let evicted = Counter(label: "pgnoti_quarantine_evicted_total")
}

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
