import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiStore
import Testing

@testable import PGNotiIntake

/// A conflict found by `copy-ledger` is described by the document the intake would have filed
/// had the stored version arrived live: same id, same bytes.
struct StoredVersionReaderTests {
    let receivedAt = Date(unixMicroseconds: 1_750_000_000_123_456)

    @Test func aStoredBodyGivesTheConflictDocumentTheLiveIntakeFiles() async throws {
        let config = Config.sandbox(directory: try temporaryDirectory().path)
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: Logger(label: "t"))
        let stored = smartroBody(extra: "StateCd=0&Amt=15000&PayMethod=CARD")
        let other = smartroBody(extra: "StateCd=0&Amt=20000&PayMethod=CARD")
        let first = await intake.process(
            submission(stored, provider: .smartro, secret: nil, receivedAt: receivedAt))
        let live = await intake.process(submission(other, provider: .smartro, secret: nil, receivedAt: receivedAt))
        #expect(live.outcome == .conflict)
        let filed = try #require(try await ledger.pendingOutbox(limit: 10).last?.payload)

        let firstID = try #require(first.eventID)
        let storedRow = try #require(try await ledger.lookup(firstID).first)
        let reader = StoredVersionReader(policy: IntakePolicy(config: config))
        let document = try #require(
            reader.conflictEvent(
                for: StoredVersion(
                    provider: "smartro", rawBody: Array(other.utf8), contentType: "application/x-www-form-urlencoded",
                    receivedAt: receivedAt, eventJSON: Data(filed))))
        let (id, json) = document(storedRow.eventID, storedRow.amount, storedRow.resultCode)
        #expect(id == live.eventID)
        // Given the version's own stored document (a conflict row's, here), as the copy gives it.
        #expect(json == filed, "the same bytes as the live conflict event, its flags and verification included")
        try await ledger.close()
    }

    @Test func aBodyThatNoLongerReadsGivesNoDocument() throws {
        let reader = StoredVersionReader(policy: IntakePolicy(config: Config.sandbox(directory: "/nonexistent")))
        func version(_ provider: String, _ body: String) -> StoredVersion {
            StoredVersion(
                provider: provider, rawBody: Array(body.utf8), contentType: nil, receivedAt: receivedAt, eventJSON: nil)
        }
        #expect(reader.conflictEvent(for: version("smartro", "")) == nil, "purged")
        #expect(reader.conflictEvent(for: version("smartro", "garbage")) == nil)
        #expect(reader.conflictEvent(for: version("nopay", smartroBody())) == nil, "unknown provider")
        #expect(reader.conflictEvent(for: version("smartro", smartroBody())) != nil)
    }
}
