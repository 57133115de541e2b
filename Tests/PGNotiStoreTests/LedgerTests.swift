import Foundation
@_spi(Testing) import PGNotiStore
import Testing

@Suite struct LedgerRecordTests {
    @Test func firstIsAcceptedRetryIsDuplicateChangedRetryIsConflict() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let first = makeEntry(tid: "T1", amount: 1000)
            let changed = makeEntry(tid: "T1", amount: 9999, rawBody: Array("P_AMT=9999".utf8))

            #expect(try await ledger.record(first) == .accepted(eventID: first.eventID))
            #expect(try await ledger.record(first) == .duplicate(eventID: first.eventID))
            #expect(
                try await ledger.record(changed)
                    == .conflict(eventID: first.eventID, storedFingerprint: "amount=1000;result=3001"))
            // A different state of the same transaction is a new notification.
            let cancelled = makeEntry(tid: "T1", state: "cancelled")
            #expect(try await ledger.record(cancelled) == .accepted(eventID: cancelled.eventID))

            let counts = try await ledger.counts()
            #expect(counts.notifications == 2 && counts.conflicts == 1 && counts.rejected == 0)

            let conflict = try #require(try await ledger.conflicts(limit: 10).first)
            #expect(conflict.eventID == first.eventID)
            #expect(conflict.storedFingerprint == "amount=1000;result=3001")
            #expect(conflict.newFingerprint == "amount=9999;result=3001")
            #expect(conflict.rawBody == Array("P_AMT=9999".utf8))
            #expect(
                (conflict.provider, conflict.merchantID, conflict.tid, conflict.state)
                    == ("inicis", "M100", "T1", "paid"))
            #expect(conflict.remoteAddress == "203.0.113.7" && conflict.receivedAt == fixedDate)
        }
    }

    @Test func outboxRowOnlyForAcceptedEntries() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let a = makeEntry(tid: "A")
            let b = makeEntry(tid: "B")
            _ = try await ledger.record(a)
            _ = try await ledger.record(a)
            _ = try await ledger.record(makeEntry(tid: "A", amount: 5))
            _ = try await ledger.record(b)

            let pending = try await ledger.pendingOutbox(limit: 10)
            #expect(pending.map(\.fileName) == [a.queueFileName, b.queueFileName])
            #expect(pending.map(\.payload) == [a.eventJSON, b.eventJSON])
            #expect(try await ledger.pendingOutbox(limit: 1).map(\.fileName) == [a.queueFileName])

            try await ledger.removeFromOutbox(ids: [pending[0].id])
            #expect(try await ledger.pendingOutbox(limit: 10).map(\.fileName) == [b.queueFileName])
            #expect(try await ledger.counts().outbox == 1)
        }
    }

    @Test func storedNotificationRoundTripsEveryField() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            // Empty bodies happen (a PG pinging with GET) and must not trip NOT NULL.
            let entry = makeEntry(tid: "T9", rawBody: [], contentType: nil)
            _ = try await ledger.record(entry)
            let later = fixedDate.addingTimeInterval(30)
            var retry = entry
            retry.receivedAt = later
            _ = try await ledger.record(retry)

            let stored = try #require(try await ledger.notifications(limit: 10).first)
            #expect(stored.provider == "inicis" && stored.merchantID == "M100")
            #expect(stored.tid == "T9" && stored.state == "paid")
            #expect(stored.eventID == entry.eventID && stored.fingerprint == entry.fingerprint)
            #expect(stored.eventJSON == entry.eventJSON)
            #expect(stored.rawBody == [] && stored.contentType == nil)
            #expect(stored.remoteAddress == "203.0.113.7")
            #expect(stored.receivedAt == fixedDate)
            #expect(stored.retries == 1 && stored.lastSeenAt == later)
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
            do {
                let ledger = try Ledger(path: path)
                #expect(try await ledger.record(entry) == .accepted(eventID: entry.eventID))
                try await ledger.close()
            }
            let reopened = try Ledger(path: path)
            #expect(try await reopened.record(entry) == .duplicate(eventID: entry.eventID))
            #expect(
                try await reopened.record(makeEntry(tid: "T1", amount: 1))
                    == .conflict(eventID: entry.eventID, storedFingerprint: entry.fingerprint))
            #expect(try await reopened.pendingOutbox(limit: 10).map(\.fileName) == [entry.queueFileName])
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
            try await Task.sleep(for: .milliseconds(50))
            release()

            #expect(try await pending.value == .accepted(eventID: entry.eventID))
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

@Suite struct RejectedRequestTests {
    @Test func keepsOnlyTheNewestRows() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            for i in 0..<12 {
                try await ledger.recordRejected(
                    RejectedRequest(
                        provider: "toss", reason: "r\(i)", detail: "bad signature",
                        rawBody: i == 11 ? [] : [UInt8(i)], contentType: nil,
                        remoteAddress: nil, receivedAt: fixedDate),
                    keep: 5)
            }
            #expect(try await ledger.counts().rejected == 5)
            let kept = try await ledger.rejected(limit: 100)
            #expect(kept.map(\.reason) == ["r11", "r10", "r9", "r8", "r7"])
            #expect(
                kept[0]
                    == RejectedRequest(
                        provider: "toss", reason: "r11", detail: "bad signature",
                        rawBody: [], contentType: nil, remoteAddress: nil,
                        receivedAt: fixedDate))
            #expect(kept[1].rawBody == [10])
        }
    }
}
