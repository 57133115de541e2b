import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
@_spi(Testing) import PGNotiStore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct QueueDirectoryTests {
    @Test func createsTmpPrivateAndNewGroupWritable() async throws {
        try await withTemporaryDirectory { dir in
            let root = dir.appendingPathComponent("spool/queue")
            let queue = try QueueDirectory(root: root)
            // Under a umask stricter than the unit's 0027, group consumers must still be able
            // to read files and move them out of new/. (umask is process-wide; no other test
            // asserts a mode, and the daemon sets every mode it relies on explicitly.)
            let previous = umask(0o077)
            defer { umask(previous) }
            let strict = try QueueDirectory(root: dir.appendingPathComponent("strict/queue"))
            try strict.deliver(fileName: "e.json", payload: Array("{}".utf8))
            let file = try FileManager.default.attributesOfItem(
                atPath: strict.root.appendingPathComponent("new/e.json").path)
            #expect((file[.posixPermissions] as? Int).map { $0 & 0o777 } == 0o640)
            for (q, sub, mode) in [
                (queue, "tmp", 0o750), (queue, "new", 0o770), (strict, "tmp", 0o750), (strict, "new", 0o770),
            ] {
                let attributes = try FileManager.default.attributesOfItem(
                    atPath: q.root.appendingPathComponent(sub).path)
                #expect(attributes[.type] as? FileAttributeType == .typeDirectory)
                #expect((attributes[.posixPermissions] as? Int).map { $0 & 0o777 } == mode, "\(sub)")
            }
            _ = try QueueDirectory(root: root)  // reopening an existing queue is fine
        }
    }

    @Test func deliverLeavesExactlyOneCompleteFileInNew() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let payload = Array(#"{"tid":"T1","amount":1000}"#.utf8)
            try queue.deliver(fileName: "0001-T1.json", payload: payload)
            try queue.deliver(fileName: "0001-T1.json", payload: payload)  // a replay

            let newDir = queue.root.appendingPathComponent("new")
            #expect(try files(in: newDir) == ["0001-T1.json"])
            #expect(try Array(Data(contentsOf: newDir.appendingPathComponent("0001-T1.json"))) == payload)
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)

            try queue.deliver(fileName: "0002-empty.json", payload: [])
            #expect(try Data(contentsOf: newDir.appendingPathComponent("0002-empty.json")).isEmpty)
        }
    }

    @Test func batchDeliveryFilesInOrderAndStopsAtTheFirstFailure() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let whole = queue.deliver([("1.json", Array("one".utf8)), ("2.json", Array("two".utf8))])
            #expect(whole.delivered == 2 && whole.failure == nil)
            #expect(
                try String(decoding: Data(contentsOf: newDir.appendingPathComponent("2.json")), as: UTF8.self) == "two")

            // rename(2) cannot replace a directory with a file, even for root.
            try FileManager.default.createDirectory(
                at: newDir.appendingPathComponent("4.json"), withIntermediateDirectories: false)
            let cut = queue.deliver([("3.json", [3]), ("4.json", [4]), ("5.json", [5])])
            #expect(cut.delivered == 1)
            #expect((cut.failure as? SpoolError)?.operation == "rename")
            #expect(try files(in: newDir).sorted() == ["1.json", "2.json", "3.json", "4.json"])
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)
            #expect(queue.deliver([]).delivered == 0)
        }
    }

    @Test(arguments: ["", ".", "..", "../escape.json", "a/b.json", String(repeating: "x", count: 201)])
    func refusesNamesThatAreNotPlainFileNames(name: String) async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            #expect(throws: SpoolError.self) { try queue.deliver(fileName: name, payload: [1]) }
            #expect(try files(in: dir).sorted() == ["queue"])
            #expect(try files(in: queue.root.appendingPathComponent("new")).isEmpty)
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)
        }
    }

    @Test func failedDeliverThrowsWithPathAndLeavesNoTemporary() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            try FileManager.default.removeItem(at: newDir)

            let error = #expect(throws: SpoolError.self) {
                try queue.deliver(fileName: "e.json", payload: [1, 2, 3])
            }
            #expect(error?.operation == "rename")
            #expect(error?.path.contains(newDir.appendingPathComponent("e.json").path) == true)
            #expect(error?.code == ENOENT)
            #expect(error?.description.contains("No such file or directory") == true)
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)
        }
    }

    @Test func concurrentDeliveriesOfOneNameNeverMixContent() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let payloads = (0..<6).map { [UInt8](repeating: UInt8(65 + $0), count: 512 * 1024) }
            let failures = Locked<[any Error]>([])
            DispatchQueue.concurrentPerform(iterations: payloads.count * 3) { i in
                do { try queue.deliver(fileName: "same.json", payload: payloads[i % payloads.count]) } catch {
                    failures.withLock { $0.append(error) }
                }
            }
            #expect(failures.withLock { $0.isEmpty })
            let newDir = queue.root.appendingPathComponent("new")
            #expect(try files(in: newDir) == ["same.json"])
            let content = try Array(Data(contentsOf: newDir.appendingPathComponent("same.json")))
            #expect(payloads.contains(content))
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)
        }
    }

    @Test func cleanStaleTemporariesRemovesOnlyTmpLeftovers() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            try queue.deliver(fileName: "kept.json", payload: [1])
            for name in ["half-written.json.123.456", "other"] {
                try Data([0]).write(to: queue.root.appendingPathComponent("tmp/\(name)"))
            }
            #expect(try queue.cleanStaleTemporaries() == 2)
            #expect(try files(in: queue.root.appendingPathComponent("tmp")).isEmpty)
            #expect(try files(in: queue.root.appendingPathComponent("new")) == ["kept.json"])
        }
    }
}

@Suite struct OutboxRelayTests {
    @Test func drainFilesEveryAcceptedEventAndEmptiesTheOutbox() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            // batchSize 2 makes the relay loop over several outbox pages.
            let relay = OutboxRelay(ledger: ledger, queue: queue, logger: capturingLogger().0, batchSize: 2)
            let entries = (0..<5).map { makeEntry(tid: "T\($0)") }
            for entry in entries { _ = try await ledger.record(entry) }
            _ = try await ledger.record(entries[0])

            #expect(try await relay.drain() == 5)
            let newDir = queue.root.appendingPathComponent("new")
            #expect(try files(in: newDir) == entries.map(\.queueFileName).sorted())
            for entry in entries {
                #expect(
                    try Array(Data(contentsOf: newDir.appendingPathComponent(entry.queueFileName)))
                        == entry.eventJSON)
            }
            #expect(try await ledger.counts().outbox == 0)
            #expect(try await relay.drain() == 0)
        }
    }

    @Test func afterACrashPendingEventsAreFiledExactlyOnce() async throws {
        try await withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("ledger.sqlite").path
            let queueRoot = dir.appendingPathComponent("queue")
            let entries = (0..<3).map { makeEntry(tid: "T\($0)") }
            do {
                // The daemon ACKed three events, filed the first one, and died
                // before deleting its outbox row; it also left a half-written temp.
                let ledger = try Ledger(path: path)
                for entry in entries { _ = try await ledger.record(entry) }
                let queue = try QueueDirectory(root: queueRoot)
                try queue.deliver(fileName: entries[0].queueFileName, payload: entries[0].eventJSON)
                try Data([0x7b]).write(to: queueRoot.appendingPathComponent("tmp/\(entries[1].queueFileName).99.1"))
                try await ledger.close()
            }

            let ledger = try Ledger(path: path)
            let queue = try QueueDirectory(root: queueRoot)
            try queue.cleanStaleTemporaries()
            let relay = OutboxRelay(ledger: ledger, queue: queue, logger: capturingLogger().0)
            #expect(try await relay.drain() == 3)
            #expect(try await relay.drain() == 0)

            #expect(try files(in: queueRoot.appendingPathComponent("new")) == entries.map(\.queueFileName).sorted())
            #expect(try files(in: queueRoot.appendingPathComponent("tmp")).isEmpty)
            #expect(try await ledger.counts().outbox == 0)
        }
    }

    /// Starts `run` and returns once its startup pass is over, so whatever is
    /// recorded afterwards can only be filed by a wake, a poll or shutdown.
    private func startRelay(_ relay: OutboxRelay, ledger: Ledger, newDir: URL) async throws -> Task<Void, Never> {
        let early = makeEntry(tid: "early", fileName: "0000-early.json")
        _ = try await ledger.record(early)
        let running = Task { await relay.run() }
        try await waitUntil("startup pass") { try files(in: newDir) == [early.queueFileName] }
        _ = try await relay.drain()  // queued behind the startup pass, so that pass has ended
        return running
    }

    @Test func runFilesOnWakeWithoutWaitingForThePoll() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                ledger: ledger, queue: queue, logger: capturingLogger().0,
                pollInterval: .seconds(3600))
            let running = try await startRelay(relay, ledger: ledger, newDir: newDir)
            defer { running.cancel() }

            let entry = makeEntry(tid: "T1")
            _ = try await ledger.record(entry)
            relay.wake()
            try await waitUntil("woken relay to file the event") { try files(in: newDir).contains(entry.queueFileName) }
        }
    }

    @Test func runPollsWhenNobodyWakesIt() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                ledger: ledger, queue: queue, logger: capturingLogger().0,
                pollInterval: .milliseconds(50))
            let running = try await startRelay(relay, ledger: ledger, newDir: newDir)
            defer { running.cancel() }

            let entry = makeEntry(tid: "T1")
            _ = try await ledger.record(entry)
            try await waitUntil("poll to file the event") { try files(in: newDir).contains(entry.queueFileName) }
        }
    }

    @Test func cancelledRunDrainsOnceMoreBeforeReturning() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                ledger: ledger, queue: queue, logger: capturingLogger().0,
                pollInterval: .seconds(3600))
            let running = try await startRelay(relay, ledger: ledger, newDir: newDir)

            let entry = makeEntry(tid: "T1")
            _ = try await ledger.record(entry)
            try await Task.sleep(for: .milliseconds(200))
            #expect(!(try files(in: newDir).contains(entry.queueFileName)), "nothing drains without a wake or poll")

            running.cancel()
            await running.value
            #expect(try files(in: newDir).contains(entry.queueFileName))
            #expect(try await ledger.counts().outbox == 0)
        }
    }

    @Test func concurrentDrainsNeverFileARowTwice() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let relay = OutboxRelay(ledger: ledger, queue: queue, logger: capturingLogger().0)
            for i in 0..<40 { _ = try await ledger.record(makeEntry(tid: "T\(i)")) }

            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await relay.drain() } }
                return try await group.reduce(0, +)
            }
            #expect(counts == 40)
        }
    }

    @Test func aFailedDeliveryKeepsItsRowAndForgetsTheOnesBeforeIt() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(ledger: ledger, queue: queue, logger: capturingLogger().0)
            let entries = ["A", "B", "C"].map { makeEntry(tid: $0) }
            for entry in entries { _ = try await ledger.record(entry) }
            // rename(2) cannot replace a directory with a file, even for root.
            let blocker = newDir.appendingPathComponent(entries[1].queueFileName)
            try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)

            await #expect(throws: SpoolError.self) { try await relay.drain() }
            #expect(
                try await ledger.pendingOutbox(limit: 10).map(\.fileName)
                    == [entries[1].queueFileName, entries[2].queueFileName])

            try FileManager.default.removeItem(at: blocker)
            #expect(try await relay.drain() == 2)
            #expect(try files(in: newDir) == entries.map(\.queueFileName).sorted())
        }
    }

    @Test func runLogsFailuresAndKeepsGoing() async throws {
        try await withTemporaryDirectory { dir in
            let ledger = try Ledger(path: dir.appendingPathComponent("ledger.sqlite").path)
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            try FileManager.default.removeItem(at: newDir)
            let (logger, logs) = capturingLogger()
            let relay = OutboxRelay(ledger: ledger, queue: queue, logger: logger, pollInterval: .seconds(3600))
            let running = Task { await relay.run() }
            defer { running.cancel() }

            let entry = makeEntry(tid: "T1")
            _ = try await ledger.record(entry)
            relay.wake()
            try await waitUntil("the failure to be logged") {
                logs.all.contains { $0.0 == .error && $0.1.contains("rename") && $0.1.contains(newDir.path) }
            }
            #expect(try await ledger.counts().outbox == 1)

            // The disk recovers; the relay must get there on its own (backoff),
            // without another wake and long before the hour-long poll.
            try FileManager.default.createDirectory(at: newDir, withIntermediateDirectories: false)
            try await waitUntil("retry after backoff") { try files(in: newDir) == [entry.queueFileName] }
        }
    }
}
