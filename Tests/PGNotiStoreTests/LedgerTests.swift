import Foundation
import GRDB
import PGNotiCore
@_spi(Testing) import PGNotiStore
import PGNotiTestSupport
import Synchronization
import Testing

@Suite struct LedgerRecordTests {
    @Test func firstIsAcceptedRetryIsDuplicateChangedRetryIsAConflictEvent() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let first = makeEntry(tid: "T1", amount: 1000)
            let changed = makeEntry(tid: "T1", amount: 9999, rawBody: Array("Amt=9999".utf8))

            #expect(try await ledger.record(first).acceptedID == first.eventID)
            #expect(try await ledger.record(first) == .duplicate(eventID: first.eventID))
            let conflict = try await ledger.record(changed)
            guard case .conflict(let conflictID, let conflictsWith, let stored, _) = conflict else {
                Issue.record("\(conflict)")
                return
            }
            #expect(conflictID == "conflict-\(first.eventID)-9999")
            #expect(conflictsWith == first.eventID)
            #expect(stored == "amount=1000;result=3001")
            // The same conflicting version again is a retry of that conflict, not a new event.
            #expect(try await ledger.record(changed) == .duplicate(eventID: conflictID))
            // A different state of the same transaction is a new notification.
            let cancelled = makeEntry(tid: "T1", state: "2")
            #expect(try await ledger.record(cancelled).acceptedID == cancelled.eventID)

            let counts = try await ledger.counts()
            #expect(counts.notifications == 2 && counts.conflicts == 1 && counts.quarantine == 0)
            #expect(counts.outbox == 3, "the conflict was filed like any event")
            let payloads = try await ledger.pendingOutbox(limit: 10).map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(payloads[1].contains(#""conflicts_with":"\#(first.eventID)""#))
            #expect(payloads[1].contains(#""stored_amount":1000"#))

            let record = try #require(try await ledger.conflicts(limit: 10).first)
            #expect(record.eventID == first.eventID && record.conflictEventID == conflictID)
            #expect(record.newFingerprint == "amount=9999;result=3001")
            #expect(record.rawBody == Data("Amt=9999".utf8))
            #expect(record.peer == "203.0.113.7" && record.client == "198.51.100.1")
            #expect(record.retries == 1)
        }
    }

    @Test func conflictsPerKeyAreCappedAndCountedBeyondTheCap() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            _ = try await ledger.record(makeEntry(tid: "T1", amount: 1))
            for amount in 2...(LedgerRules.maximumConflictsPerKey + 1) {
                guard case .conflict = try await ledger.record(makeEntry(tid: "T1", amount: amount)) else {
                    Issue.record("amount \(amount) not filed")
                    continue
                }
            }
            let over1 = try await ledger.record(makeEntry(tid: "T1", amount: 500))
            let over2 = try await ledger.record(makeEntry(tid: "T1", amount: 501))
            #expect(
                over1
                    == .conflictIgnored(
                        conflictsWith: makeEntry(tid: "T1").eventID, storedFingerprint: "amount=1;result=3001",
                        ignored: 1))
            #expect(
                over2
                    == .conflictIgnored(
                        conflictsWith: makeEntry(tid: "T1").eventID, storedFingerprint: "amount=1;result=3001",
                        ignored: 2))
            let counts = try await ledger.counts()
            #expect(counts.conflicts == LedgerRules.maximumConflictsPerKey)
            #expect(counts.outbox == 1 + LedgerRules.maximumConflictsPerKey)
            #expect(try await ledger.notifications(limit: 1).first?.conflictsIgnored == 2)
        }
    }

    @Test func eventJSONIsBuiltOnlyForNewEntries() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let built = Mutex(0)
            var entry = makeEntry(tid: "T1")
            entry.eventJSON = {
                built.withLock { $0 += 1 }
                return Array("{}".utf8)
            }
            _ = try await ledger.record(entry)
            _ = try await ledger.record(entry)
            _ = try await ledger.record(entry)
            #expect(built.withLock { $0 } == 1)
        }
    }

    @Test func queueFileNamesSortInFilingOrderAndCarryTheEventID() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            var names: [String] = []
            // Received in the opposite order to filing: a release files an old notification now.
            for i in 0..<20 {
                let entry = makeEntry(tid: "T\(i)", receivedAt: fixedDate.addingTimeInterval(Double(-i)))
                names.append(try #require(try await ledger.record(entry).fileName))
            }
            #expect(names == names.sorted())
            #expect(Set(names).count == 20)
            #expect(names[3].hasSuffix("-\(makeEntry(tid: "T3").eventID).json"))
            #expect(names.allSatisfy { $0.prefix(17).allSatisfy(\.isNumber) })
        }
    }

    @Test func outboxRowOnlyForNewEvents() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let a = makeEntry(tid: "A")
            let b = makeEntry(tid: "B")
            let nameA = try await ledger.record(a).fileName
            _ = try await ledger.record(a)
            let nameB = try await ledger.record(b).fileName

            let pending = try await ledger.pendingOutbox(limit: 10)
            #expect(pending.map(\.fileName) == [nameA, nameB])
            #expect(pending.map(\.payload) == [a.eventJSON(), b.eventJSON()])
            #expect(try await ledger.pendingOutbox(limit: 1).map(\.fileName) == [nameA])

            try await ledger.removeFromOutbox(ids: [pending[0].id])
            #expect(try await ledger.pendingOutbox(limit: 10).map(\.fileName) == [nameB])
            #expect(try await ledger.counts().outbox == 1)
        }
    }

    @Test func storedNotificationRoundTripsEveryField() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            // Empty bodies happen (a PG pinging with GET) and must not trip NOT NULL.
            let entry = makeEntry(tid: "T9", rawBody: [], contentType: nil)
            let fileName = try await ledger.record(entry).fileName
            _ = try await ledger.record(entry)

            let stored = try #require(try await ledger.notifications(limit: 10).first)
            #expect(stored.provider == "smartro" && stored.merchantID == "M100")
            #expect(stored.tid == "T9" && stored.state == "0")
            #expect(stored.eventID == entry.eventID && stored.fingerprint == entry.fingerprint)
            #expect(stored.kind == "payment.approved" && stored.amount == 1000 && stored.resultCode == "3001")
            #expect(Array(stored.eventJSON) == entry.eventJSON())
            #expect(stored.queueFileName == fileName)
            #expect(stored.rawBody.isEmpty && stored.contentType == nil)
            #expect(stored.peer == "203.0.113.7" && stored.client == "198.51.100.1")
            #expect(stored.receivedAt == fixedDate)
            #expect(stored.retries == 1 && stored.lastSeenAt != nil)
        }
    }

    @Test func notificationsPageByRowID() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            for i in 0..<5 { _ = try await ledger.record(makeEntry(tid: "T\(i)")) }

            let firstPage = try await ledger.notifications(limit: 2)
            #expect(firstPage.map(\.tid) == ["T0", "T1"])
            let secondPage = try await ledger.notifications(limit: 2, afterRowID: firstPage.last!.rowID)
            #expect(secondPage.map(\.tid) == ["T2", "T3"])
            let rest = try await ledger.notifications(limit: 10, afterRowID: secondPage.last!.rowID)
            #expect(rest.map(\.tid) == ["T4"])
        }
    }

    @Test func journalIsWALWithFullSync() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let settings = try await ledger.journalSettings()
            #expect(settings.journalMode == "wal")
            #expect(settings.synchronous == 2)  // FULL
        }
    }

    @Test func createsMissingParentDirectories() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("var/lib/pgnoti/ledger.sqlite").path
            let ledger = try Ledger(path: path)
            _ = try await ledger.record(makeEntry(tid: "T1"))
            #expect(FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func survivesRestart() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let entry = makeEntry(tid: "T1")
            let name: String?
            do {
                let ledger = try Ledger(path: path)
                name = try await ledger.record(entry).fileName
                try await ledger.close()
            }
            let reopened = try Ledger(path: path)
            #expect(try await reopened.record(entry) == .duplicate(eventID: entry.eventID))
            guard
                case .conflict(_, let with, let stored, _) = try await reopened.record(makeEntry(tid: "T1", amount: 1))
            else {
                Issue.record("no conflict after restart")
                return
            }
            #expect(with == entry.eventID && stored == entry.fingerprint)
            #expect(try await reopened.pendingOutbox(limit: 10).first?.fileName == name)
            #expect(try await reopened.journalSettings().synchronous == 2)
        }
    }

    @Test func removingManyIDsAtOnceStaysUnderSQLiteParameterLimit() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            _ = try await ledger.record(makeEntry(tid: "T1"))
            _ = try await ledger.record(makeEntry(tid: "T2"))
            // Above the 250_000 some distributions compile in, not just the 32_766 default.
            try await ledger.removeFromOutbox(ids: Array(1...300_000))
            #expect(try await ledger.counts().outbox == 0)
        }
    }

    @Test func closeLetsQueuedRecordsFinishFirst() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let ledger = try Ledger(path: path)
            let entry = makeEntry(tid: "T1")
            let release = ledger.holdWriter()
            let pending = try await submit(entry, to: ledger)
            let closing = Task.detached { try await ledger.close() }
            try await waitUntil("close to refuse new work") {
                (try? await ledger.counts()) == nil
            }
            release()

            #expect(try await pending.value.acceptedID == entry.eventID)
            try await closing.value
            await #expect(throws: LedgerError.closed) { try await ledger.record(makeEntry(tid: "T2")) }

            let reopened = try Ledger(path: path)
            #expect(try await reopened.notifications(limit: 10).map(\.tid) == ["T1"])
        }
    }

    @Test func recordAfterCloseThrows() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            try await ledger.close()
            await #expect(throws: LedgerError.closed) { try await ledger.record(makeEntry(tid: "T1")) }
            await #expect(throws: LedgerError.closed) { try await ledger.counts() }
        }
    }
}

@Suite struct QuarantineStoreTests {
    @Test func everyFieldIsKept() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            var entry = makeQuarantineEntry(parsed: true)
            entry.forwardedFor = "211.193.35.20, 10.0.0.1"
            entry.pathSecretSHA256 = Digest.sha256(Array("x".utf8))
            guard case .stored(let id) = try await ledger.quarantine(entry) else {
                Issue.record("not stored")
                return
            }
            let item = try #require(try await ledger.quarantined(id: id))
            #expect(item.provider == "smartro" && item.reason == "signature_mismatch" && item.detail == "test")
            #expect(item.rawBody.count == 10 && item.size == 10 && item.parsed)
            #expect(item.forwardedFor == "211.193.35.20, 10.0.0.1")
            #expect(item.peer == "203.0.113.7" && item.client == "203.0.113.7")
            #expect(item.pathSecretSHA256.map(Array.init) == Digest.sha256(Array("x".utf8)))
            #expect(item.merchantID == "M100" && item.tid == "T")
            #expect(item.receivedAt == recentDate)

            try await ledger.markReleased(id: id, eventID: "E1")
            #expect(try await ledger.quarantined(id: id)?.releasedEventID == "E1")
            #expect(try await ledger.quarantined(reason: "signature_mismatch").count == 1)
            #expect(try await ledger.quarantined(reason: "missing_field").isEmpty)
            #expect(try await ledger.quarantined(since: recentDate.addingTimeInterval(1)).isEmpty)
            #expect(try await ledger.dropQuarantined(ids: [id, 999]) == [id])
            #expect(try await ledger.counts().quarantine == 0)
        }
    }

    /// A flood of garbage never pushes out what a release will want.
    @Test func garbageIsEvictedBeforeParsedRequestsToStayInsideTheByteCap() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(
                path: dir.appendingPathComponent("ledger.sqlite").path,
                quarantinePolicy: QuarantinePolicy(maxBytes: 10_000, maxRows: 10_000, keepDays: 30))
            guard case .stored(let wrongKey) = try await ledger.quarantine(makeQuarantineEntry(size: 500, parsed: true))
            else {
                Issue.record("not stored")
                return
            }
            for _ in 0..<100 {
                _ = try await ledger.quarantine(makeQuarantineEntry(reason: "missing_field", size: 400))
            }
            let counts = try await ledger.counts()
            #expect(counts.quarantineBytes <= 10_000)
            #expect(try await ledger.quarantined(id: wrongKey) != nil)
            #expect(ledger.writerStats.quarantineEvicted > 0)
            #expect(ledger.writerStats.quarantineEvicted == 101 - counts.quarantine)
        }
    }

    @Test func rowCapEvictsOldestGarbageFirst() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(
                path: dir.appendingPathComponent("ledger.sqlite").path,
                quarantinePolicy: QuarantinePolicy(maxBytes: 1 << 30, maxRows: 5, keepDays: 30))
            _ = try await ledger.quarantine(makeQuarantineEntry(reason: "keep", parsed: true))
            for i in 0..<10 { _ = try await ledger.quarantine(makeQuarantineEntry(reason: "g\(i)")) }
            let kept = try await ledger.quarantined(limit: 100).map(\.reason)
            #expect(kept == ["g9", "g8", "g7", "g6", "keep"])
        }
    }

    @Test func oldItemsLeaveWithAge() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(
                path: dir.appendingPathComponent("ledger.sqlite").path,
                quarantinePolicy: QuarantinePolicy(maxBytes: 1 << 30, maxRows: 1000, keepDays: 1))
            _ = try await ledger.quarantine(
                makeQuarantineEntry(parsed: true, receivedAt: Date().addingTimeInterval(-3 * 86_400)))
            _ = try await ledger.quarantine(makeQuarantineEntry(receivedAt: Date()))
            #expect(try await ledger.counts().quarantine == 1)
        }
    }

    @Test func aFullQueueDropsAndCounts() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let release = ledger.holdWriter()
            let big = makeQuarantineEntry(size: 4 * 1024 * 1024)
            var tasks: [Task<QuarantineOutcome, any Error>] = []
            for _ in 0..<10 { tasks.append(Task { try await ledger.quarantine(big) }) }
            try await waitUntil("the queue to fill") { ledger.writerStats.quarantineDropped > 0 }
            release()
            var stored = 0
            var dropped = 0
            for task in tasks {
                switch try await task.value {
                case .stored: stored += 1
                case .dropped: dropped += 1
                }
            }
            #expect(stored > 0 && dropped > 0)
            #expect(ledger.writerStats.quarantineDropped == dropped)
        }
    }

    /// Refused requests share the notifications' transactions, and a busy batch carries only a
    /// small slice of them.
    @Test func refusalsRideAlongWithoutSwampingACommit() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let release = ledger.holdWriter()
            var refusals: [Task<QuarantineOutcome, any Error>] = []
            for _ in 0..<40 { refusals.append(Task { try await ledger.quarantine(makeQuarantineEntry(size: 60_000)) }) }
            try await waitUntil("refusals queued") { ledger.queuedQuarantineCount == 40 }
            let record = try await submit(makeEntry(tid: "T1"), to: ledger)
            release()
            #expect(try await record.value.acceptedID != nil)
            for task in refusals { _ = try await task.value }
            // 40 × 60 KB cannot ride with the record (a busy batch takes a 256 KiB slice): the
            // rest needs at least one more commit. Counted once all are stored, whatever the
            // order in which the record's and the held writer's batches finished.
            #expect(ledger.writerStats.committedBatches >= 2, "the refusals did not all ride in the commit")
            #expect(try await ledger.counts().quarantine == 40)
        }
    }
}

@Suite struct SchemaUpgradeTests {
    /// A database written by the first release (schema v1) opens under this one with every row
    /// kept: notifications with their facts, conflicts, and `rejected` grown into the quarantine.
    @Test func v1DatabaseUpgradesKeepingEveryRow() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("v1.sqlite").path
            try Self.writeV1Database(at: path)

            let ledger = try Ledger(path: path)
            let stored = try #require(try await ledger.notifications(limit: 10).first)
            #expect(stored.eventID == "E1" && stored.kind == "payment.approved" && stored.orderID == "O1")
            #expect(stored.amount == 5 && stored.resultCode == "3001" && stored.peer == "203.0.113.7")
            #expect(try await ledger.pendingOutbox(limit: 10).map(\.fileName) == ["00000000000000001-E1.json"])
            #expect(try await ledger.conflicts(limit: 10).first?.peer == "203.0.113.8")
            let item = try #require(try await ledger.quarantined(limit: 10).first)
            #expect(item.reason == "missing_field" && item.size == 3 && item.peer == "203.0.113.9")
            // And it goes on working: the stored notification still deduplicates.
            var retry = makeEntry(tid: "T1", merchantID: "M", amount: 5)
            retry.eventID = "E1"
            #expect(try await ledger.record(retry) == .duplicate(eventID: "E1"))
        }
    }

    @Test func aDatabaseFromANewerBinaryIsRefused() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            do {
                let ledger = try Ledger(path: path)
                try await ledger.executeOnWriter("INSERT INTO grdb_migrations VALUES ('v99-from-the-future')")
                try await ledger.close()
            }
            do {
                _ = try Ledger(path: path)
                Issue.record("opened a newer database")
            } catch let error as LedgerError {
                #expect(error == .newerSchema(path: path, found: "v99-from-the-future", known: Ledger.schemaVersion))
                #expect(error.description.contains("v99-from-the-future"))
                #expect(error.description.contains(Ledger.schemaVersion))
            }
        }
    }

    /// A database as the first release (schema v1) left it: `fixtures/ledger/v1.sql`.
    static func writeV1Database(at path: String) throws {
        let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/ledger/v1.sql")
        let sql = try String(contentsOf: fixture, encoding: .utf8)
        let queue = try DatabaseQueue(path: path)
        try queue.write { db in try db.execute(sql: sql) }
        try queue.close()
    }
}

/// A purge of many rows never holds the writer for long: it works in short batches, and a
/// notification that arrives meanwhile commits between two of them.
struct BatchedPurgeTests {
    @Test func aNotificationCommitsWhileALongPurgeRuns() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
            for n in 0..<60 { _ = try await ledger.record(makeEntry(tid: "P\(n)")) }
            let purge = Task {
                try await ledger.purge(before: Date(), batchRows: 5, pause: .milliseconds(30))
            }
            // 12 batches with 30 ms pauses: well over 300 ms. A record in the middle of it is
            // committed long before the purge is done.
            try await Task.sleep(for: .milliseconds(60))
            let started = ContinuousClock.now
            _ = try await ledger.record(makeEntry(tid: "NEW", receivedAt: Date()))
            let waited = ContinuousClock.now - started
            let counts = try await purge.value
            #expect(counts.notifications == 60)
            #expect(waited < .milliseconds(250), "the record waited \(waited) behind the purge")
            let purged = try await ledger.events(.init(limit: 100)).filter { $0.tid.hasPrefix("P") }
            #expect(purged.allSatisfy { $0.rawBody.isEmpty })
            let document = try JSONSerialization.jsonObject(with: purged[0].eventJSON) as? [String: Any]
            #expect(document?["purged"] as? Bool == true && document?["amount"] as? Int == 1000)
            try await ledger.close()
        }
    }

    @Test func aPurgeStopsWhenTheDiskRunsLow() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
            for n in 0..<10 { _ = try await ledger.record(makeEntry(tid: "L\(n)")) }
            let batches = Mutex(0)
            let counts = try await ledger.purge(before: Date(), batchRows: 3, pause: .milliseconds(1)) {
                batches.withLock {
                    $0 += 1
                    return $0 <= 2
                }
            }
            #expect(counts.stopped == .lowOnSpace)
            #expect(counts.notifications == 6, "what was purged stays purged; the rest is left")
            #expect(try await ledger.purgeCandidates(before: Date()).notifications == 4)
            try await ledger.close()
        }
    }
}
