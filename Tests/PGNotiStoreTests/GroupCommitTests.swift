import Foundation
@_spi(Testing) import PGNotiStore
import Testing

@Suite struct GroupCommitTests {
    @Test func manyConcurrentRecordsAcceptEachKeyExactlyOnceInFewerTransactions() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            // Each key arrives three times unchanged and once with another amount.
            var submissions: [(key: Int, entry: LedgerEntry)] = []
            for key in 0..<200 {
                for _ in 0..<3 { submissions.append((key, makeEntry(tid: "T\(key)", amount: 1000))) }
                submissions.append((key, makeEntry(tid: "T\(key)", amount: 2000)))
            }
            submissions.shuffle()

            let results = try await withThrowingTaskGroup(of: (Int, LedgerEntry, RecordOutcome).self) { group in
                for (key, entry) in submissions {
                    group.addTask { (key, entry, try await ledger.record(entry)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }

            var conflicts = 0
            for (key, outcomes) in Dictionary(grouping: results, by: \.0) {
                let accepted = outcomes.filter { $0.2.acceptedID == $0.1.eventID }
                #expect(accepted.count == 1, "key \(key)")
                guard let winner = accepted.first?.1 else { continue }
                // The other version is one conflict event; its repeats are retries of that conflict.
                let losers = outcomes.filter { $0.1.fingerprint != winner.fingerprint }
                let conflictIDs = losers.compactMap { loser -> String? in
                    if case .conflict(let id, let with, let stored, _) = loser.2 {
                        #expect(with == winner.eventID && stored == winner.fingerprint)
                        return id
                    }
                    return nil
                }
                #expect(conflictIDs.count == 1, "key \(key)")
                conflicts += conflictIDs.count
                for loser in losers where conflictIDs.first.map({ loser.2 != .duplicate(eventID: $0) }) ?? true {
                    if case .conflict = loser.2 { continue }
                    Issue.record("key \(key): \(loser.2)")
                }
                for (_, entry, outcome) in outcomes
                where entry.fingerprint == winner.fingerprint && outcome.acceptedID == nil {
                    #expect(outcome == .duplicate(eventID: winner.eventID))
                }
            }

            let counts = try await ledger.counts()
            #expect(counts.notifications == 200 && counts.conflicts == conflicts)
            #expect(counts.outbox == 200 + conflicts, "each conflict files one event")
            let stats = ledger.writerStats
            #expect(stats.committedEntries == 800)
            #expect(stats.committedBatches < 800)
            #expect(stats.largestBatch > 1)
            #expect(stats.failedBatches == 0)
        }
    }

    @Test func recordsQueuedDuringACommitShareOneTransactionAndActSequentially() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let a = makeEntry(tid: "A")
            let b = makeEntry(tid: "B")
            let release = ledger.holdWriter()
            let t1 = try await submit(a, to: ledger)
            let t2 = try await submit(a, to: ledger)
            let t3 = try await submit(makeEntry(tid: "A", amount: 7), to: ledger)
            let t4 = try await submit(b, to: ledger)
            release()

            #expect(try await t1.value.acceptedID == a.eventID)
            #expect(try await t2.value == .duplicate(eventID: a.eventID))
            guard case .conflict(_, let with, let stored, _) = try await t3.value else {
                Issue.record("no conflict")
                return
            }
            #expect(with == a.eventID && stored == a.fingerprint)
            #expect(try await t4.value.acceptedID == b.eventID)
            let stats = ledger.writerStats
            #expect(stats.committedBatches == 1 && stats.committedEntries == 4 && stats.largestBatch == 4)
            #expect(try await ledger.counts().outbox == 3)
        }
    }

    @Test func batchesAreCappedAtMaxBatch() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path, maxBatch: 2)
            let release = ledger.holdWriter()
            var tasks: [Task<RecordOutcome, any Error>] = []
            for i in 0..<5 { tasks.append(try await submit(makeEntry(tid: "T\(i)"), to: ledger)) }
            release()
            for task in tasks { _ = try await task.value }
            #expect(ledger.writerStats.committedBatches == 3)
            #expect(ledger.writerStats.largestBatch == 2)
        }
    }

    /// Entries recorded together keep their order across transactions: queue file names follow
    /// it, and of two versions of one key the earlier is the one stored.
    @Test func entriesRecordedInOrderAreAppliedAndFiledInThatOrder() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path, maxBatch: 7)
            var entries = (0..<40).map { makeEntry(tid: "T\($0)") }
            entries.append(makeEntry(tid: "T3", amount: 5))
            let results = await ledger.recordInOrder(entries)
            let outcomes = try results.map { try $0.get() }
            let names = outcomes.prefix(40).compactMap(\.fileName)
            #expect(names.count == 40 && names == names.sorted(), "file names in entry order")
            guard case .conflict(_, let conflictsWith, _, _) = outcomes[40] else {
                Issue.record("the later version is not the conflict: \(outcomes[40])")
                return
            }
            #expect(conflictsWith == entries[3].eventID)
            #expect(ledger.writerStats.committedBatches >= 6, "spread over several transactions")
            try await ledger.close()
            let closed = await ledger.recordInOrder([makeEntry(tid: "late")])
            #expect(throws: LedgerError.self) { try closed[0].get() }
        }
    }

    @Test func aConstraintFailureUndoesOnlyThatEntry() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            // The notification row of `bad` is written before its outbox row
            // trips the file-name CHECK (an id with a slash makes a name with one);
            // the savepoint must take both back.
            let bad = makeEntry(tid: "BAD", eventID: "../escape")
            let release = ledger.holdWriter()
            let before = try await submit(makeEntry(tid: "X"), to: ledger)
            let failing = try await submit(bad, to: ledger)
            let after = try await submit(makeEntry(tid: "Y"), to: ledger)
            release()

            #expect(try await before.value.acceptedID == makeEntry(tid: "X").eventID)
            await #expect(throws: (any Error).self) { try await failing.value }
            #expect(try await after.value.acceptedID == makeEntry(tid: "Y").eventID)
            #expect(try await ledger.notifications(limit: 10).map(\.tid) == ["X", "Y"])
            #expect(ledger.writerStats.committedBatches == 1)

            // Had the half-written entry stuck, this retry would be a "duplicate"
            // with no outbox row: an ACKed event that never reaches the queue.
            let fixed = makeEntry(tid: "BAD")
            let name = try #require(try await ledger.record(fixed).fileName)
            #expect(try await ledger.pendingOutbox(limit: 10).map(\.fileName).contains(name))
        }
    }

    @Test(arguments: ["a/b", String(repeating: "x", count: 200 - 23 + 1)])
    func queueFileNamesTheSpoolWouldRefuseAreRejectedAtRecord(eventID: String) async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            await #expect(throws: (any Error).self) { try await ledger.record(makeEntry(tid: "T1", eventID: eventID)) }
            #expect(try await ledger.counts().notifications == 0)
            // 17 digits, a dash, the id and ".json": 200 bytes in all is still a plain name.
            let longest = String(repeating: "x", count: 200 - 23)
            #expect(try await ledger.record(makeEntry(tid: "T1", eventID: longest)).acceptedID == longest)
        }
    }
}

@Suite struct StoreFailureTests {
    @Test func failedCommitFailsEveryCallerInTheBatchAndKeepsNothing() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            // A deferred foreign key is only checked by COMMIT, so every
            // statement succeeds and the commit itself is what fails.
            try await ledger.executeOnWriter(
                """
                CREATE TABLE test_parent (id INTEGER PRIMARY KEY);
                CREATE TABLE test_child (parent INTEGER REFERENCES test_parent (id) DEFERRABLE INITIALLY DEFERRED);
                CREATE TRIGGER test_fail_commit AFTER INSERT ON notifications
                BEGIN INSERT INTO test_child (parent) VALUES (42); END;
                """)
            let entries = (0..<3).map { makeEntry(tid: "T\($0)") }
            let release = ledger.holdWriter()
            var tasks: [Task<RecordOutcome, any Error>] = []
            for entry in entries { tasks.append(try await submit(entry, to: ledger)) }
            release()

            for task in tasks {
                await #expect(throws: (any Error).self) { try await task.value }
            }
            #expect(ledger.writerStats.failedBatches == 1)
            #expect(ledger.writerStats.committedBatches == 0)
            let counts = try await ledger.counts()
            #expect(counts.notifications == 0 && counts.outbox == 0)

            try await ledger.executeOnWriter("DROP TRIGGER test_fail_commit")
            for entry in entries {
                #expect(try await ledger.record(entry).acceptedID == entry.eventID)
            }
        }
    }

    @Test func missingTableIsAnErrorNotALostEvent() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            try await ledger.executeOnWriter("DROP TABLE outbox")
            await #expect(throws: (any Error).self) { try await ledger.record(makeEntry(tid: "T1")) }
            // The notification insert preceded the failing outbox insert and
            // must have been rolled back with it.
            #expect(try await ledger.notifications(limit: 10).isEmpty)
        }
    }

    @Test func readOnlyDatabaseSurfacesAsError() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let entry = makeEntry(tid: "T1")
            try await ledger.executeOnWriter("PRAGMA query_only = 1")
            let error = await #expect(throws: (any Error).self) { try await ledger.record(entry) }
            #expect(String(describing: error).contains("readonly"))

            try await ledger.executeOnWriter("PRAGMA query_only = 0")
            #expect(try await ledger.record(entry).acceptedID == entry.eventID)
        }
    }

    @Test func lockHeldByAnotherConnectionSurfacesAfterBusyTimeout() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let ledger = try Ledger(path: path, busyTimeout: .milliseconds(200))
            let otherProcess = try Ledger(path: path)

            let release = try await otherProcess.holdWriteLock()
            let entry = makeEntry(tid: "T1")
            let started = ContinuousClock.now
            let error = await #expect(throws: (any Error).self) { try await ledger.record(entry) }
            release()
            #expect(String(describing: error).contains("locked"))
            #expect(ContinuousClock.now - started >= .milliseconds(150))

            #expect(try await ledger.record(entry).acceptedID == entry.eventID)
        }
    }

    @Test func unusablePathFailsAtOpen() async throws {
        try await withTemporaryDirectory { dir in
            // Root ignores permission bits, but not a regular file used as a directory.
            let file = dir.appendingPathComponent("not-a-directory")
            try Data("x".utf8).write(to: file)
            #expect(throws: (any Error).self) {
                try Ledger(path: file.appendingPathComponent("ledger.sqlite").path)
            }
            // SQLite treats a file shorter than a page as an empty database.
            let garbage = dir.appendingPathComponent("garbage.sqlite")
            try Data(repeating: 0x78, count: 8192).write(to: garbage)
            #expect(throws: (any Error).self) { try Ledger(path: garbage.path) }
        }
    }
}
