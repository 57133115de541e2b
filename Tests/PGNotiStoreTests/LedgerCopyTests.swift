import Foundation
import GRDB
import Logging
import PGNotiCore
import PGNotiPostgres
@_spi(Testing) import PGNotiStore
import PostgresNIO
import Testing

/// `LedgerMerge` alone: what a version read from an old ledger becomes.
struct LedgerMergeTests {
    let held = LedgerRules.Held(eventID: "E", fingerprint: "f1")

    @Test func aFreeKeyIsInsertedAndAConflictWithoutItsNotificationIsAnOrphan() {
        #expect(
            LedgerMerge.decide(fingerprint: "f1", recorded: .notification, held: nil, canBuildConflictEvent: true)
                == .insert)
        #expect(
            LedgerMerge.decide(
                fingerprint: "f2", recorded: .conflict(storedFingerprint: "f1"), held: nil, canBuildConflictEvent: true)
                == .orphan)
    }

    @Test func theSameVersionOrAFiledConflictIsAlreadyThere() {
        #expect(
            LedgerMerge.decide(fingerprint: "f1", recorded: .notification, held: held, canBuildConflictEvent: false)
                == .alreadyThere)
        var filed = held
        filed.filedConflictEventID = "C"
        filed.filedConflicts = 1
        #expect(
            LedgerMerge.decide(
                fingerprint: "f2", recorded: .conflict(storedFingerprint: "f1"), held: filed,
                canBuildConflictEvent: false) == .alreadyThere)
    }

    @Test func aDifferentVersionIsFiledAsLiveOrIgnoredPastTheCap() {
        #expect(
            LedgerMerge.decide(fingerprint: "f2", recorded: .notification, held: held, canBuildConflictEvent: true)
                == .fileConflict(conflictsWith: "E", storedFingerprint: "f1"))
        #expect(
            LedgerMerge.decide(fingerprint: "f2", recorded: .notification, held: held, canBuildConflictEvent: false)
                == .ignore(conflictsWith: "E", storedFingerprint: "f1"))
        var full = held
        full.filedConflicts = LedgerRules.maximumConflictsPerKey
        #expect(
            LedgerMerge.decide(fingerprint: "f2", recorded: .notification, held: full, canBuildConflictEvent: true)
                == .ignore(conflictsWith: "E", storedFingerprint: "f1"))
    }

    @Test func aRecordedConflictAgainstTheSameStoredVersionIsCopiedAsItWas() {
        #expect(
            LedgerMerge.decide(
                fingerprint: "f2", recorded: .conflict(storedFingerprint: "f1"), held: held,
                canBuildConflictEvent: false) == .copyConflict)
        // Against another version than the cluster holds, its document would be wrong: filed anew.
        #expect(
            LedgerMerge.decide(
                fingerprint: "f2", recorded: .conflict(storedFingerprint: "f0"), held: held,
                canBuildConflictEvent: true) == .fileConflict(conflictsWith: "E", storedFingerprint: "f1"))
        var full = held
        full.filedConflicts = LedgerRules.maximumConflictsPerKey
        #expect(
            LedgerMerge.decide(
                fingerprint: "f2", recorded: .conflict(storedFingerprint: "f1"), held: full,
                canBuildConflictEvent: true) == .ignore(conflictsWith: "E", storedFingerprint: "f1"))
    }

    @Test func theSummaryFindsRowsNotAccountedForOrMissing() {
        var summary = LedgerCopySummary()
        summary[.notifications].source = 3
        summary[.notifications].copied = 2
        summary[.notifications].alreadyThere = 1
        #expect(summary.problems.isEmpty)
        summary[.quarantine].source = 1
        #expect(
            summary.problems == [
                "quarantine: 1 in the source, but 0 accounted for (copied, already there, conflicts, ignored)"
            ])
        summary[.quarantine].copied = 1
        summary.missing[.quarantine] = 1
        #expect(summary.problems.count == 1 && summary.problems[0].contains("not found in the target"))
        let text = summary.rendered(from: "a.sqlite", to: "postgresql://u:***@h/d")
        #expect(text.contains("notifications") && text.contains("already there") && text.contains("not sent again"))
    }
}

/// `PostgresLedgerCopy` from a SQLite ledger written by the real `Ledger` into a scratch
/// PostgreSQL database. Skipped (with the conformance suite's message) without
/// `PGNOTI_TEST_DATABASE_URL`. One test at a time, each with the smallest pool: the whole run
/// shares the test server's `max_connections` with the other PostgreSQL suites.
@Suite(
    .serialized,
    .enabled(
        if: Engine.postgresURL != nil,
        "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL half of the copy-ledger tests is skipped"))
struct LedgerCopyTests {
    static let logger = Logger(label: "t")

    /// What the intake would give: a document for bodies that read as notifications (the test
    /// bodies start `TID=`), none for the rest.
    static let conflictEvents: ConflictEventSource = { version in
        guard version.rawBody.starts(with: Array("TID=".utf8)) else { return nil }
        let body = String(decoding: version.rawBody, as: UTF8.self)
        return { stored, amount, _ in
            let id = "conflict-" + String(Digest.hex(Digest.sha256(Array(body.utf8))).prefix(8))
            return (id, Array(#"{"id":"\#(id)","conflicts_with":"\#(stored)","stored":\#(amount ?? -1)}"#.utf8))
        }
    }

    static func copy(_ source: Ledger, into session: PostgresSession, pageSize: Int = 200) async throws
        -> LedgerCopySummary
    {
        try await PostgresLedgerCopy(
            source: source, session: session, conflictEvents: conflictEvents, pageSize: pageSize, logger: logger
        ).run()
    }

    static func withTarget<R>(_ body: (PostgresSession, PostgresLedger) async throws -> R) async throws -> R {
        try await PostgresScratch.withDatabase { scratch in
            // A whole test run forks many backends on two cores: give connecting time, so a slow
            // fork is not mistaken for the failure a test provokes.
            var session = scratch
            session.connectTimeout = .seconds(30)
            session.poolSize = 2
            let target = try await PostgresLedger.open(session, logger: logger)
            do {
                let result = try await body(session, target)
                try await target.close()
                return result
            } catch {
                try? await target.close()
                throw error
            }
        }
    }

    /// A host's ledger: two notifications (one retried), a conflict, two refused requests, Toss
    /// progress and a Payup intent; T2's event already filed into the queue directory.
    static func writeSource(at path: String) async throws -> Ledger {
        let ledger = try Ledger(path: path)
        let first = makeEntry(tid: "T1", amount: 1000)
        _ = try await ledger.record(first)
        _ = try await ledger.record(first)
        _ = try await ledger.record(makeEntry(tid: "T1", amount: 5))
        _ = try await ledger.record(makeEntry(tid: "T2", amount: 2000))
        _ = try await ledger.quarantine(makeQuarantineEntry(reason: "signature_mismatch", size: 3, parsed: true))
        _ = try await ledger.quarantine(makeQuarantineEntry(reason: "invalid_field", size: 4))
        try await ledger.saveTossProgress(
            TossFileProgress(
                fileName: "toss_AUTH_20250101.dat", ingestedBytes: 10, ingestedLines: 1, prefixSHA256: [1, 2],
                size: 10, rows: 1, updatedAt: fixedDate))
        try await ledger.savePayupIntent(
            PayupIntent(
                id: "I1", operation: "approve", merchantID: "M", orderNumber: "O1", amount: "1000",
                transactionID: "TX1", timestamp: "20250101000000", state: .approved, createdAt: fixedDate))
        let filed = try await ledger.pendingOutbox(limit: 10).filter { $0.fileName.contains("-T2-") }
        try await ledger.removeFromOutbox(ids: filed.map(\.id))
        return ledger
    }

    @Test func aFreshCopyTakesEveryTableAndTheOutboxOnlyForEventsNotYetFiled() async throws {
        try await withTemporaryDirectory { dir in
            let source = try await Self.writeSource(at: dir.appendingPathComponent("host.sqlite").path)
            let pending = try await source.pendingOutbox(limit: 10)
            #expect(pending.count == 2, "T1's event and the conflict's; T2's was filed")
            try await Self.withTarget { session, target in
                let summary = try await Self.copy(source, into: session)
                #expect(summary.problems.isEmpty, "\(summary.problems)")
                #expect(summary[.notifications] == tally(source: 2, copied: 2))
                #expect(summary[.conflicts] == tally(source: 1, copied: 1))
                #expect(summary[.quarantine] == tally(source: 2, copied: 2))
                #expect(summary[.tossFiles] == tally(source: 1, copied: 1))
                #expect(summary[.payupIntents] == tally(source: 1, copied: 1))
                #expect(summary.outboxSource == 2 && summary.outboxCopied == 2 && summary.conflictEventsQueued == 0)

                // The cluster delivers exactly what the old host had not filed, under the same names
                // and with the same documents.
                let delivering = try await target.pendingOutbox(limit: 10)
                #expect(delivering.map(\.fileName).sorted() == pending.map(\.fileName).sorted())
                #expect(
                    Set(delivering.map { $0.fileName + String(decoding: $0.payload, as: UTF8.self) })
                        == Set(pending.map { $0.fileName + String(decoding: $0.payload, as: UTF8.self) }))

                // History kept: the retry, the conflict, the stored documents and times.
                let copied = try #require(try await target.lookup("T1").first)
                let original = try #require(try await source.lookup("T1").first)
                #expect(copied.eventJSON == original.eventJSON && copied.receivedAt == original.receivedAt)
                #expect(copied.retries == 1 && copied.queueFileName == original.queueFileName)
                let history = try await target.history(of: copied)
                #expect(history.retries.map(\.peer) == ["203.0.113.7"])
                let sourceHistory = try await source.history(of: original)
                #expect(history.conflicts.map(\.conflictEventID) == sourceHistory.conflicts.map(\.conflictEventID))
                #expect(
                    try await target.quarantined(reason: nil, since: nil, limit: 10).map(\.reason).sorted()
                        == ["invalid_field", "signature_mismatch"])
                #expect(try await target.tossFiles() == (try await source.tossFiles()))
                #expect(try await target.payupIntent(id: "I1") == (try await source.payupIntent(id: "I1")))

                // The live path then treats the copied rows as its own: a PG retry is a duplicate.
                #expect(
                    try await target.record(makeEntry(tid: "T2", amount: 2000))
                        == .duplicate(eventID: makeEntry(tid: "T2").eventID))
            }
            try await source.close()
        }
    }

    @Test func aSecondRunAddsNothing() async throws {
        try await withTemporaryDirectory { dir in
            let source = try await Self.writeSource(at: dir.appendingPathComponent("host.sqlite").path)
            try await Self.withTarget { session, target in
                _ = try await Self.copy(source, into: session)
                let before = try await target.counts()
                let again = try await Self.copy(source, into: session)
                #expect(again.problems.isEmpty, "\(again.problems)")
                for table in LedgerCopySummary.Table.allCases {
                    let t = again[table]
                    #expect(t.copied == 0 && t.conflicts == 0 && t.ignored == 0 && t.alreadyThere == t.source)
                }
                #expect(again.outboxCopied == 0 && again.notes.isEmpty)
                #expect(try await target.counts() == before)
            }
            try await source.close()
        }
    }

    @Test func anotherVersionUnderAKeyTheClusterHoldsBecomesAConflictListedOnce() async throws {
        try await withTemporaryDirectory { dir in
            let source = try await Self.writeSource(at: dir.appendingPathComponent("host.sqlite").path)
            try await Self.withTarget { session, target in
                // Another host already stored T2 with another amount.
                _ = try await target.record(makeEntry(tid: "T2", amount: 7))
                let summary = try await Self.copy(source, into: session)
                #expect(summary.problems.isEmpty, "\(summary.problems)")
                #expect(summary[.notifications] == tally(source: 2, copied: 1, conflicts: 1))
                #expect(summary.conflictEventsQueued == 1)
                let note = try #require(summary.notes.first)
                #expect(note.kind == .conflict && note.row == "smartro M100 T2 0")
                #expect(note.detail.contains("amount=2000;result=3001") && note.detail.contains("amount=7;result=3001"))

                let stored = try #require(try await target.lookup("T2").first)
                #expect(stored.fingerprint == "amount=7;result=3001", "the cluster's version stays")
                let conflicts = try await target.history(of: stored).conflicts
                #expect(conflicts.map(\.newFingerprint) == ["amount=2000;result=3001"])
                let queued = try await target.pendingOutbox(limit: 10)
                let conflictEvent = try #require(queued.first { $0.fileName.contains(conflicts[0].conflictEventID!) })
                #expect(String(decoding: conflictEvent.payload, as: UTF8.self).contains(#""stored":7"#))

                let before = try await target.counts()
                let again = try await Self.copy(source, into: session)
                #expect(again[.notifications] == tally(source: 2, alreadyThere: 2))
                #expect(again.notes.isEmpty && again.conflictEventsQueued == 0)
                #expect(try await target.counts() == before)
            }
            try await source.close()
        }
    }

    @Test func aConflictTheHostFiledAgainstItsOwnVersionIsFiledAgainstTheClusters() async throws {
        try await withTemporaryDirectory { dir in
            let source = try await Self.writeSource(at: dir.appendingPathComponent("host.sqlite").path)
            try await Self.withTarget { session, target in
                // The cluster holds T1 with a third amount: both of the host's versions contradict it.
                _ = try await target.record(makeEntry(tid: "T1", amount: 7))
                let summary = try await Self.copy(source, into: session)
                #expect(summary.problems.isEmpty, "\(summary.problems)")
                #expect(summary[.notifications] == tally(source: 2, copied: 1, conflicts: 1))
                #expect(summary[.conflicts] == tally(source: 1, conflicts: 1))
                #expect(summary.conflictEventsQueued == 2 && summary.notes.map(\.kind) == [.conflict, .conflict])

                let stored = try #require(try await target.lookup("T1").first)
                let conflicts = try await target.history(of: stored).conflicts
                #expect(
                    Set(conflicts.map(\.newFingerprint)) == ["amount=1000;result=3001", "amount=5;result=3001"])
                #expect(conflicts.allSatisfy { $0.storedFingerprint == "amount=7;result=3001" })
                #expect(
                    conflicts.first { $0.newFingerprint == "amount=1000;result=3001" }?.retries == 1,
                    "the PG's retry of the host's version")
                // Each conflict event names the cluster's version as the one it contradicts.
                let documents = try await target.pendingOutbox(limit: 10).filter { $0.fileName.contains("conflict-") }
                #expect(documents.count == 2)
                #expect(documents.allSatisfy { String(decoding: $0.payload, as: UTF8.self).contains(#""stored":7"#) })

                let before = try await target.counts()
                let again = try await Self.copy(source, into: session)
                #expect(again[.notifications] == tally(source: 2, alreadyThere: 2))
                #expect(again[.conflicts] == tally(source: 1, alreadyThere: 1))
                #expect(try await target.counts() == before)
            }
            try await source.close()
        }
    }

    @Test func aV1LedgerIsCopiedAndItsFileIsNotChangedByAByte() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("v1.sqlite").path
            try SchemaUpgradeTests.writeV1Database(at: path)
            let before = try Data(contentsOf: URL(fileURLWithPath: path))
            let source = try Ledger.openReadOnly(path: path)
            try await Self.withTarget { session, target in
                let summary = try await Self.copy(source, into: session)
                #expect(summary.problems.isEmpty, "\(summary.problems)")
                #expect(summary[.notifications] == tally(source: 1, copied: 1))
                #expect(summary[.quarantine] == tally(source: 1, copied: 1))
                // The fixture's conflict names a stored fingerprint the notification does not have,
                // and its body reads as nothing: listed, not filed.
                #expect(summary[.conflicts] == tally(source: 1, ignored: 1))
                #expect(summary.notes.map(\.kind) == [.ignored])
                #expect(summary.outboxCopied == 1)
                #expect(try await target.lookup("E1").first?.orderID == "O1")
                #expect(try await target.quarantined(reason: "missing_field", since: nil, limit: 1).count == 1)
            }
            try await source.close()
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["v1.sqlite"])
        }
    }

    @Test func aCopyCutShortConvergesWhenRunAgain() async throws {
        try await withTemporaryDirectory { dir in
            let source = try Ledger(path: dir.appendingPathComponent("host.sqlite").path)
            for n in 0..<5 { _ = try await source.record(makeEntry(tid: "T\(n)")) }
            try await Self.withTarget { session, target in
                // The database refuses T3, as a crash or a dropped connection would stop the copy.
                try await Self.execute(
                    session,
                    """
                    CREATE FUNCTION refuse_t3() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN IF NEW.tid = 'T3' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$
                    """)
                try await Self.execute(
                    session,
                    "CREATE TRIGGER refuse BEFORE INSERT ON notifications FOR EACH ROW EXECUTE FUNCTION refuse_t3()")
                do {
                    _ = try await Self.copy(source, into: session, pageSize: 2)
                    Issue.record("the copy went through")
                } catch {
                    #expect(PostgresFailure.describe(error).contains("refused"), "\(String(reflecting: error))")
                }
                #expect(
                    try await target.counts().notifications == 2, "the pages before T3's committed, its own did not")
                #expect(try await target.counts().outbox == 2)

                try await Self.execute(session, "DROP TRIGGER refuse ON notifications")
                let summary = try await Self.copy(source, into: session, pageSize: 2)
                #expect(summary.problems.isEmpty)
                #expect(summary[.notifications] == tally(source: 5, copied: 3, alreadyThere: 2))
                let after = try await target.counts()
                #expect(after.notifications == 5 && after.outbox == 5)
            }
            try await source.close()
        }
    }

    @Test func aRowTheTargetDoesNotKeepFailsTheCheck() async throws {
        try await withTemporaryDirectory { dir in
            let source = try await Self.writeSource(at: dir.appendingPathComponent("host.sqlite").path)
            try await Self.withTarget { session, _ in
                // The database swallows quarantine rows without an error.
                try await Self.execute(
                    session,
                    "CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
                try await Self.execute(
                    session,
                    "CREATE TRIGGER swallow BEFORE INSERT ON quarantine FOR EACH ROW EXECUTE FUNCTION swallow()")
                let summary = try await Self.copy(source, into: session)
                #expect(summary.missing == [.quarantine: 2])
                #expect(
                    summary.problems == ["quarantine: 2 row(s) of the source not found in the target after the copy"])
            }
            try await source.close()
        }
    }

    static func execute(_ session: PostgresSession, _ sql: String) async throws {
        let connection = try await session.connect(logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}

func tally(source: Int, copied: Int = 0, alreadyThere: Int = 0, conflicts: Int = 0, ignored: Int = 0)
    -> LedgerCopySummary.Tally
{
    var t = LedgerCopySummary.Tally()
    t.source = source
    t.copied = copied
    t.alreadyThere = alreadyThere
    t.conflicts = conflicts
    t.ignored = ignored
    return t
}
