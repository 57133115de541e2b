import Foundation

/// What the non-HTTP sources keep between runs: how far each Toss file was read, and the journal
/// of Payup requests (an intent is written before the request leaves, so a crash never hides a
/// charge).
public protocol SourceProgress: Sendable {
    func tossProgress(fileName: String) async throws -> TossFileProgress?
    /// Every Toss file seen, by name.
    func tossFiles() async throws -> [TossFileProgress]
    func saveTossProgress(_ progress: TossFileProgress) async throws

    /// Journals (or updates) an intent; returns once committed.
    func savePayupIntent(_ intent: PayupIntent) async throws
    func payupIntent(id: String) async throws -> PayupIntent?
    /// The approval that produced `transactionID`, if pgnoti's client made it.
    func payupApproval(transactionID: String) async throws -> PayupIntent?
    /// Oldest first.
    func payupIntents(states: [PayupIntent.State]) async throws -> [PayupIntent]
}
