import Foundation
import GRDB
import PGNotiCore
@_spi(Testing) import PGNotiStore
import Testing

/// The commands that only look open the database read-only: they never migrate, never change a
/// byte of it, and refuse a schema from a newer binary, naming both versions.
@Suite struct ReadOnlyOpeningTests {
    static func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    @Test func readingACurrentDatabaseLeavesItByteForByteAndRefusesWrites() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let writable = try Ledger(path: path)
            _ = try await writable.record(makeEntry(tid: "T1"))
            _ = try await writable.quarantine(makeQuarantineEntry())
            try await writable.close()
            let before = try Self.bytes(path)

            let ledger = try Ledger.openReadOnly(path: path)
            #expect(ledger.isReadOnly)
            #expect(try await ledger.events(EventFilter()).map(\.tid) == ["T1"])
            #expect(try await ledger.quarantined(reason: nil, since: nil, limit: 10).count == 1)
            #expect(try await ledger.stats(since: nil).byKind.first?.events == 1)
            #expect(try await ledger.payupIntents(states: [.sent, .unknown]).isEmpty)
            await #expect(throws: LedgerError.readOnly(path: path)) { try await ledger.record(makeEntry(tid: "T2")) }
            await #expect(throws: LedgerError.readOnly(path: path)) {
                try await ledger.quarantine(makeQuarantineEntry())
            }
            try await ledger.close()
            #expect(try Self.bytes(path) == before)
        }
    }

    @Test func anOlderSchemaIsReadFromAMigratedCopyAndTheFileIsNeitherMigratedNorChanged() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("v1.sqlite").path
            try SchemaUpgradeTests.writeV1Database(at: path)
            let before = try Self.bytes(path)

            let ledger = try Ledger.openReadOnly(path: path)
            let stored = try #require(try await ledger.events(EventFilter()).first)
            #expect(stored.eventID == "E1" && stored.orderID == "O1")
            #expect(try await ledger.quarantined(reason: nil, since: nil, limit: 10).first?.reason == "missing_field")
            try await ledger.close()

            #expect(try Self.bytes(path) == before)
            #expect(try Ledger.schemaVersion(path: path) == "v1")
            // The copy it read from is gone.
            let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
            #expect(left == ["v1.sqlite"])
        }
    }

    @Test func aNewerSchemaIsRefusedNamingBothVersions() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let writable = try Ledger(path: path)
            try await writable.executeOnWriter("INSERT INTO grdb_migrations VALUES ('v99-from-the-future')")
            try await writable.close()
            let before = try Self.bytes(path)
            #expect(
                throws: LedgerError.newerSchema(path: path, found: "v99-from-the-future", known: Ledger.schemaVersion)
            ) {
                _ = try Ledger.openReadOnly(path: path)
            }
            #expect(try Self.bytes(path) == before)
        }
    }

    @Test func aMissingDatabaseIsNotCreated() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-absent-\(UUID()).sqlite").path
        #expect(throws: LedgerError.missing(path: path)) { _ = try Ledger.openReadOnly(path: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
