import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiPostgres
import PGNotiSpool
@_spi(Testing) import PGNotiStore
import Testing

/// What every engine must do, run against each: SQLite always, PostgreSQL when
/// `PGNOTI_TEST_DATABASE_URL` names a server (`.ci/run` starts one). Each test gets an empty
/// ledger of its own: a file in a temporary directory, or a database created for it.
protocol ConformingStore: NotificationStore, OutboxSource, SourceProgress {
    func counts() async throws -> LedgerCounts
    func quarantined(reason: String?, since: Date?, limit: Int) async throws -> [QuarantinedRequest]
    func setQuarantinePolicy(_ policy: QuarantinePolicy)
    func close() async throws
}

extension Ledger: ConformingStore {}
extension PostgresLedger: ConformingStore {}

enum Engine: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgresql

    var testDescription: String { rawValue }

    static var postgresURL: String? {
        ProcessInfo.processInfo.environment["PGNOTI_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The engines this run can test.
    static var available: [Engine] { postgresURL == nil ? [.sqlite] : [.sqlite, .postgresql] }

    /// A fresh, empty ledger on this engine for the length of `body`.
    func withStore<R>(
        policy: QuarantinePolicy = QuarantinePolicy(), _ body: (any ConformingStore) async throws -> R
    ) async throws -> R {
        switch self {
        case .sqlite:
            return try await withTemporaryDirectory { dir in
                let ledger = try Ledger(
                    path: dir.appendingPathComponent("ledger.sqlite").path, quarantinePolicy: policy)
                defer { Task { try? await ledger.close() } }
                return try await body(ledger)
            }
        case .postgresql:
            return try await PostgresScratch.withDatabase { session in
                let ledger = try await PostgresLedger.open(
                    session, quarantinePolicy: policy, logger: Logger(label: "t"))
                do {
                    let result = try await body(ledger)
                    try await ledger.close()
                    return result
                } catch {
                    try? await ledger.close()
                    throw error
                }
            }
        }
    }
}

@Suite struct StoreConformanceTests {
    @Test(
        .enabled(
            if: Engine.postgresURL != nil,
            "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL half of the store conformance suite is skipped"))
    func thePostgreSQLHalfRuns() {
        #expect(Engine.available.contains(.postgresql))
    }

    @Test(arguments: Engine.available)
    func aRetryOfTheSameVersionIsADuplicateAndFilesNothing(engine: Engine) async throws {
        try await engine.withStore { store in
            let entry = makeEntry(tid: "T1")
            #expect(try await store.record(entry).acceptedID == entry.eventID)
            #expect(try await store.record(entry) == .duplicate(eventID: entry.eventID))
            let counts = try await store.counts()
            #expect(counts.notifications == 1 && counts.outbox == 1 && counts.conflicts == 0)
        }
    }

    @Test(arguments: Engine.available)
    func anotherVersionIsOneConflictItsRetriesDuplicatesAndTheCapHolds(engine: Engine) async throws {
        try await engine.withStore { store in
            let first = makeEntry(tid: "T1", amount: 1000)
            _ = try await store.record(first)
            let other = makeEntry(tid: "T1", amount: 2000)
            guard case .conflict(let conflictID, let with, _, _) = try await store.record(other) else {
                Issue.record("not a conflict")
                return
            }
            #expect(with == first.eventID)
            #expect(try await store.record(other) == .duplicate(eventID: conflictID))
            for amount in 3...(LedgerRules.maximumConflictsPerKey + 1) {
                _ = try await store.record(makeEntry(tid: "T1", amount: amount * 1000))
            }
            let past = try await store.record(makeEntry(tid: "T1", amount: 99_000))
            guard case .conflictIgnored(let ignoredWith, _, let ignored) = past else {
                Issue.record("past the cap: \(past)")
                return
            }
            #expect(ignoredWith == first.eventID && ignored == 1)
            let counts = try await store.counts()
            #expect(counts.conflicts == LedgerRules.maximumConflictsPerKey)
            #expect(counts.outbox == 1 + LedgerRules.maximumConflictsPerKey)
        }
    }

    @Test(arguments: Engine.available)
    func concurrentSubmissionsOfOneKeyAreAcceptedOnce(engine: Engine) async throws {
        try await engine.withStore { store in
            let entry = makeEntry(tid: "RACE")
            let outcomes = try await withThrowingTaskGroup(of: RecordOutcome.self) { group in
                for _ in 0..<40 { group.addTask { try await store.record(entry) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0.acceptedID != nil }.count == 1)
            #expect(outcomes.filter { $0 == .duplicate(eventID: entry.eventID) }.count == 39)
        }
    }

    @Test(arguments: Engine.available)
    func entriesInOrderAreDeduplicatedAgainstEachOtherAndFiledInThatOrder(engine: Engine) async throws {
        try await engine.withStore { store in
            let entries = [makeEntry(tid: "B"), makeEntry(tid: "A"), makeEntry(tid: "B"), makeEntry(tid: "C")]
            let results = await store.recordInOrder(entries).map { try? $0.get() }
            #expect(results[2] == .duplicate(eventID: entries[0].eventID))
            let names = [results[0], results[1], results[3]].compactMap { $0?.fileName }
            #expect(names.count == 3 && names == names.sorted(), "file names follow submission order")
            let pending = try await store.pendingOutbox(limit: 10)
            #expect(pending.map(\.fileName) == names)
        }
    }

    @Test(arguments: Engine.available)
    func theOutboxHoldsEachEventUntilRemoved(engine: Engine) async throws {
        try await engine.withStore { store in
            let entry = makeEntry(tid: "T1")
            _ = try await store.record(entry)
            let pending = try await store.pendingOutbox(limit: 10)
            #expect(pending.count == 1)
            #expect(pending.first?.payload == entry.eventJSON(), "the stored event document")
            try await store.removeFromOutbox(ids: pending.map(\.id))
            #expect(try await store.pendingOutbox(limit: 10).isEmpty)
            #expect(try await store.counts().notifications == 1, "the notification stays")
        }
    }

    @Test(arguments: Engine.available)
    func theQuarantineKeepsItsCapsEvictingGarbageFirst(engine: Engine) async throws {
        try await engine.withStore(policy: QuarantinePolicy(maxBytes: 1_000_000, maxRows: 3, keepDays: 30)) { store in
            var ids: [Int64] = []
            for parsed in [true, false, true, false, true] {
                guard case .stored(let id) = try await store.quarantine(makeQuarantineEntry(parsed: parsed)) else {
                    Issue.record("not stored")
                    return
                }
                ids.append(id)
            }
            // Five rows over a cap of three: the two never parsed go, the parsed ones stay.
            let kept = try await store.quarantined(reason: nil, since: nil, limit: 10)
            #expect(Set(kept.map(\.id)) == [ids[0], ids[2], ids[4]])
            #expect(kept.filter { !$0.parsed }.isEmpty)
        }
    }

    @Test(arguments: Engine.available)
    func theQuarantineByteCapEvictsOldestParsedWhenNoGarbageIsLeft(engine: Engine) async throws {
        try await engine.withStore(policy: QuarantinePolicy(maxBytes: 250, maxRows: 100, keepDays: 30)) { store in
            var ids: [Int64] = []
            for _ in 0..<3 {
                if case .stored(let id) = try await store.quarantine(makeQuarantineEntry(size: 100, parsed: true)) {
                    ids.append(id)
                }
            }
            let kept = try await store.quarantined(reason: nil, since: nil, limit: 10)
            #expect(kept.map(\.id) == [ids[2], ids[1]], "the oldest went; newest first")
        }
    }

    @Test(arguments: Engine.available)
    func tossProgressAndPayupIntentsRoundTrip(engine: Engine) async throws {
        try await engine.withStore { store in
            var progress = TossFileProgress(
                fileName: "20250101_M.txt", ingestedBytes: 10, ingestedLines: 1, prefixSHA256: [1, 2, 3], size: 10,
                rows: 0, updatedAt: fixedDate, contentSHA256: [4, 5], pendingLine: 2)
            try await store.saveTossProgress(progress)
            progress.rows = 1
            try await store.saveTossProgress(progress)
            #expect(try await store.tossProgress(fileName: "20250101_M.txt") == progress)
            #expect(try await store.tossFiles().map(\.fileName) == ["20250101_M.txt"])

            var intent = PayupIntent(
                id: "I1", operation: "approve", merchantID: "M", orderNumber: "O1", amount: "1000",
                transactionID: nil, timestamp: "20250101000000", state: .sent, createdAt: fixedDate)
            try await store.savePayupIntent(intent)
            #expect(try await store.payupIntents(states: PayupIntent.State.pending).map(\.id) == ["I1"])
            intent.state = .approved
            intent.transactionID = "TX1"
            try await store.savePayupIntent(intent)
            #expect(try await store.payupIntents(states: PayupIntent.State.pending).isEmpty)
            #expect(try await store.payupApproval(transactionID: "TX1")?.id == "I1")
            #expect(try await store.payupIntent(id: "I1")?.state == .approved)
        }
    }
}
