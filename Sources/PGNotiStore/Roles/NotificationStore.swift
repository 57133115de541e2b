import Foundation

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
