import Foundation
import PGNotiSpool

/// One engine's whole ledger: every role, plus what the daemon needs to watch it and stop it.
/// The daemon and the commands hold this; each part of them takes only the role it uses.
public protocol LedgerStore: NotificationStore, OutboxSource, OperatorQueries, SourceProgress {
    /// Where it lives, as an operator would name it (a file path).
    var location: String { get }
    /// Applies a reloaded configuration's quarantine caps from the next commit on.
    func setQuarantinePolicy(_ policy: QuarantinePolicy)
    /// Returns once the writer has taken a turn, without touching the database.
    func probeWriter() async
    /// Commits an empty write transaction: throws if the ledger cannot be written.
    func probeWritable() async throws
    /// Why the last write transaction failed, or nil when the last one committed.
    var lastFailure: String? { get }
    var writerStats: WriterStats { get }
    func outboxStatus() async throws -> (depth: Int, oldest: Date?)
    /// Refuses new work, lets what is queued finish, and closes.
    func close() async throws
}
