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
/// Both engines are a whole `LedgerStore`; the suite uses nothing else.
typealias ConformingStore = LedgerStore

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

    @Test(arguments: Engine.available)
    func operatorQueriesFindEventsConflictsAndTheirHistory(engine: Engine) async throws {
        try await engine.withStore { store in
            let first = makeEntry(tid: "T1", amount: 1000)
            _ = try await store.record(first)
            _ = try await store.record(first)  // a retry
            guard case .conflict(let conflictID, _, _, _) = try await store.record(makeEntry(tid: "T1", amount: 5))
            else {
                Issue.record("no conflict")
                return
            }
            _ = try await store.record(makeEntry(tid: "T2", provider: .innopay))

            #expect(try await store.events(EventFilter()).map(\.tid) == ["T2", "T1"], "newest first")
            #expect(try await store.events(EventFilter(provider: "innopay")).map(\.tid) == ["T2"])
            #expect(try await store.events(EventFilter(tid: "T1")).first?.retries == 1)
            let conflicts = try await store.events(EventFilter(kind: EventKind.notificationConflict.rawValue))
            #expect(conflicts.map(\.eventID) == [conflictID])
            #expect(try await store.lookup(conflictID).first?.kind == EventKind.notificationConflict.rawValue)
            #expect(try await store.lookup("T1").map(\.eventID) == [first.eventID])
            #expect(try await store.knownEventIDs([first.eventID, conflictID, "nope"]) == [first.eventID, conflictID])

            let stored = try #require(try await store.lookup(first.eventID).first)
            let history = try await store.history(of: stored)
            #expect(history.retries.count == 1 && history.retries.first?.peer == "203.0.113.7")
            #expect(history.conflicts.map(\.conflictEventID) == [conflictID])
            #expect(history.inOutbox)

            let stats = try await store.stats(since: nil)
            #expect(stats.byKind.map(\.events).reduce(0, +) == 2 && stats.conflicts == 1 && stats.outboxDepth == 3)
        }
    }

    @Test(arguments: Engine.available)
    func redeliverPutsEventsBackUnderTheirOwnNames(engine: Engine) async throws {
        try await engine.withStore { store in
            let entry = makeEntry(tid: "T1")
            let name = try #require(try await store.record(entry).fileName)
            try await store.removeFromOutbox(ids: try await store.pendingOutbox(limit: 10).map(\.id))
            #expect(try await store.redeliver(eventIDs: [entry.eventID], since: nil, until: nil) == 1)
            let again = try await store.pendingOutbox(limit: 10)
            #expect(again.map(\.fileName) == [name] && again.first?.payload == entry.eventJSON())
        }
    }

    @Test(arguments: Engine.available)
    func aPurgeEmptiesBodiesAndPersonalMembersAndKeepsTheKeys(engine: Engine) async throws {
        try await engine.withStore { store in
            let old = makeEntry(tid: "OLD", receivedAt: Date(timeIntervalSinceNow: -10 * 86_400))
            _ = try await store.record(old)
            _ = try await store.record(makeEntry(tid: "NEW", receivedAt: Date()))
            let cutoff = Date(timeIntervalSinceNow: -86_400)
            #expect(try await store.purgeCandidates(before: cutoff).notifications == 1)
            #expect(try await store.purge(before: cutoff).notifications == 1)
            #expect(try await store.purgeCandidates(before: cutoff).notifications == 0, "purged once")
            let purged = try #require(try await store.lookup("OLD").first)
            #expect(purged.rawBody.isEmpty)
            let document = try JSONSerialization.jsonObject(with: purged.eventJSON) as? [String: Any]
            #expect(document?["purged"] as? Bool == true && document?["tid"] as? String == "OLD")
            #expect(try await store.record(old) == .duplicate(eventID: old.eventID), "the key still deduplicates")
            #expect(try #require(try await store.lookup("NEW").first).rawBody.isEmpty == false)
        }
    }

    @Test(arguments: Engine.available)
    func quarantineItemsCanBeShownMarkedReleasedAndDropped(engine: Engine) async throws {
        try await engine.withStore { store in
            guard case .stored(let id) = try await store.quarantine(makeQuarantineEntry(reason: "bad_signature")),
                case .stored(let other) = try await store.quarantine(makeQuarantineEntry(reason: "unparsable"))
            else {
                Issue.record("not stored")
                return
            }
            #expect(try await store.quarantined(reason: "bad_signature", since: nil, limit: 10).map(\.id) == [id])
            try await store.markReleased(id: id, eventID: "E9")
            #expect(try await store.quarantined(id: id)?.releasedEventID == "E9")
            #expect(try await store.dropQuarantined(ids: [other, 12345]) == [other])
            #expect(try await store.quarantined(id: other) == nil)
        }
    }

    /// `copy-ledger`: a host's SQLite ledger copied into PostgreSQL answers every operator query
    /// as the engine that recorded the same history live does, and goes on deduplicating it.
    @Test(
        .enabled(
            if: Engine.postgresURL != nil,
            "PGNOTI_TEST_DATABASE_URL is not set: copy-ledger, which writes to PostgreSQL, is skipped"),
        arguments: Engine.available)
    func aLedgerCopiedIntoPostgreSQLAnswersAsTheEngineThatRecordedItLive(engine: Engine) async throws {
        let history = [
            makeEntry(tid: "T1", amount: 1000), makeEntry(tid: "T1", amount: 1000), makeEntry(tid: "T1", amount: 5),
            makeEntry(tid: "T2", provider: .innopay), makeEntry(tid: "T3", state: "1"),
        ]
        func replay(into store: any ConformingStore) async throws {
            for entry in history { _ = try await store.record(entry) }
            _ = try await store.quarantine(makeQuarantineEntry(reason: "invalid_field"))
            try await store.saveTossProgress(
                TossFileProgress(
                    fileName: "toss_AUTH_20250101.dat", ingestedBytes: 1, ingestedLines: 1, prefixSHA256: [9],
                    size: 1, rows: 1, updatedAt: fixedDate))
        }
        func answers(_ store: any ConformingStore) async throws -> [String] {
            var out: [String] = []
            for n in try await store.events(EventFilter()) {
                let h = try await store.history(of: n)
                out.append(
                    "\(n.provider) \(n.tid) \(n.state) \(n.eventID) \(n.fingerprint) \(n.retries) \(n.queueFileName.isEmpty)"
                        + " retries=\(h.retries.count) conflicts=\(h.conflicts.map(\.newFingerprint)) outbox=\(h.inOutbox)"
                )
            }
            // Sorted: the list is newest first by row id, and a copy assigns ids in key order
            // within a page (the order every host locks keys in), not in the source's.
            out.sort()
            let conflicts = try await store.events(EventFilter(kind: EventKind.notificationConflict.rawValue))
            out.append("conflict events \(conflicts.map(\.eventID))")
            let counts = try await store.counts()
            out.append("\(counts.notifications) \(counts.outbox) \(counts.conflicts) \(counts.quarantine)")
            out.append("toss \(try await store.tossFiles().map(\.fileName))")
            return out
        }
        try await withTemporaryDirectory { dir in
            let source = try Ledger(path: dir.appendingPathComponent("host.sqlite").path)
            try await replay(into: source)
            try await engine.withStore { live in
                try await replay(into: live)
                try await PostgresScratch.withDatabase { scratch in
                    var session = scratch
                    session.poolSize = 2
                    let summary = try await PostgresLedgerCopy(
                        source: source, session: session, conflictEvents: { _ in nil }, logger: PostgresScratch.logger
                    ).run()
                    #expect(summary.problems.isEmpty, "\(summary.problems)")
                    let copied = try await PostgresLedger.open(session, logger: PostgresScratch.logger)
                    do {
                        let (fromCopy, fromLive) = (try await answers(copied), try await answers(live))
                        #expect(fromCopy == fromLive)
                        for entry in history {
                            #expect(try await copied.record(entry) == (try await live.record(entry)), "\(entry.key)")
                        }
                        try await copied.close()
                    } catch {
                        try? await copied.close()
                        throw error
                    }
                }
            }
            try await source.close()
        }
    }
}
