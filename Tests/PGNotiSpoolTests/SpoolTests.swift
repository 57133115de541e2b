import Foundation
import Logging
import PGNotiSpool
import PGNotiTestSupport
import Synchronization
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

    // Every delivery on a thread of its own, so that they really overlap (the cooperative pool
    // has two threads on the CI machines) and none blocks a thread of that pool.
    @Test func concurrentDeliveriesOfOneNameNeverMixContent() async throws {
        try await withTemporaryDirectory { dir in
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let payloads = (0..<6).map { [UInt8](repeating: UInt8(65 + $0), count: 512 * 1024) }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<(payloads.count * 3) {
                    let payload = payloads[i % payloads.count]
                    group.addTask {
                        try await onOwnThread { try queue.deliver(fileName: "same.json", payload: payload) }
                    }
                }
                try await group.waitForAll()
            }
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
    @Test func drainFilesEveryPendingEventAndEmptiesTheOutbox() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            // batchSize 2 makes the relay loop over several outbox pages.
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0, batchSize: 2)
            let names = (0..<5).map { outbox.add("T\($0)") }

            #expect(try await relay.drain() == 5)
            let newDir = queue.root.appendingPathComponent("new")
            #expect(try files(in: newDir) == names.sorted())
            for name in names {
                #expect(try Array(Data(contentsOf: newDir.appendingPathComponent(name))) == FakeOutbox.payload(name))
            }
            #expect(outbox.count == 0)
            #expect(try await relay.drain() == 0)
        }
    }

    @Test func afterACrashPendingEventsAreFiledExactlyOnce() async throws {
        try await withTemporaryDirectory { dir in
            let queueRoot = dir.appendingPathComponent("queue")
            let outbox = FakeOutbox()
            let names = (0..<3).map { outbox.add("T\($0)") }
            do {
                // The daemon ACKed three events, filed the first one, and died before deleting
                // its outbox row; it also left a half-written temp.
                let queue = try QueueDirectory(root: queueRoot)
                try queue.deliver(fileName: names[0], payload: FakeOutbox.payload(names[0]))
                try Data([0x7b]).write(to: queueRoot.appendingPathComponent("tmp/\(names[1]).99.1"))
            }

            let queue = try QueueDirectory(root: queueRoot)
            try queue.cleanStaleTemporaries()
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            #expect(try await relay.drain() == 3)
            #expect(try await relay.drain() == 0)

            #expect(try files(in: queueRoot.appendingPathComponent("new")) == names.sorted())
            #expect(try files(in: queueRoot.appendingPathComponent("tmp")).isEmpty)
            #expect(outbox.count == 0)
        }
    }

    /// Starts `run` and returns once its startup pass is over, so whatever is
    /// added afterwards can only be filed by a wake, a poll or shutdown.
    private func startRelay(_ relay: OutboxRelay, outbox: FakeOutbox, newDir: URL) async throws -> Task<Void, Never> {
        let early = outbox.add("early")
        let running = Task { await relay.run() }
        try await waitUntil("startup pass") { try files(in: newDir) == [early] }
        _ = try await relay.drain()  // queued behind the startup pass, so that pass has ended
        return running
    }

    @Test func runFilesOnWakeWithoutWaitingForThePoll() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                outbox: outbox, queue: queue, logger: capturingLogger().0, pollInterval: .seconds(3600))
            let running = try await startRelay(relay, outbox: outbox, newDir: newDir)
            defer { running.cancel() }

            let name = outbox.add("T1")
            relay.wake()
            try await waitUntil("woken relay to file the event") { try files(in: newDir).contains(name) }
        }
    }

    @Test func runPollsWhenNobodyWakesIt() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                outbox: outbox, queue: queue, logger: capturingLogger().0, pollInterval: .milliseconds(50))
            let running = try await startRelay(relay, outbox: outbox, newDir: newDir)
            defer { running.cancel() }

            let name = outbox.add("T1")
            try await waitUntil("poll to file the event") { try files(in: newDir).contains(name) }
        }
    }

    @Test func cancelledRunDrainsOnceMoreBeforeReturning() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(
                outbox: outbox, queue: queue, logger: capturingLogger().0, pollInterval: .seconds(3600))
            let running = try await startRelay(relay, outbox: outbox, newDir: newDir)

            let name = outbox.add("T1")
            running.cancel()
            await running.value
            #expect(try files(in: newDir).contains(name))
            #expect(outbox.count == 0)
        }
    }

    @Test func concurrentDrainsNeverFileARowTwice() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            for i in 0..<40 { _ = outbox.add("T\(i)") }

            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<4 { group.addTask { try await relay.drain() } }
                return try await group.reduce(0, +)
            }
            #expect(counts == 40)
        }
    }

    /// Only the holder of `<queue>/.outbox.lock` files: a second drainer (another process, or a
    /// command run beside the daemon) is told so and files nothing.
    @Test func onlyTheLockHolderDrains() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let daemon = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            let command = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            _ = outbox.add("T1")
            #expect(try await daemon.drain() == 1)
            _ = outbox.add("T2")
            await #expect(throws: OutboxRelay.LockHeldElsewhere.self) { try await command.drain() }
            #expect(try await command.takeLock() == false)
            #expect(outbox.count == 1)
            #expect(FileManager.default.fileExists(atPath: queue.root.appendingPathComponent(".outbox.lock").path))

            await daemon.releaseLock()
            #expect(try await command.takeLock(waitingUpTo: .seconds(1)))
            #expect(try await command.drain() == 1)
            #expect(try await daemon.takeLock() == false)
        }
    }

    @Test func aFailedDeliveryKeepsItsRowAndForgetsTheOnesBeforeIt() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            let names = ["A", "B", "C"].map { outbox.add($0) }
            // rename(2) cannot replace a directory with a file, even for root.
            let blocker = newDir.appendingPathComponent(names[1])
            try FileManager.default.createDirectory(at: blocker, withIntermediateDirectories: false)

            await #expect(throws: SpoolError.self) { try await relay.drain() }
            #expect(try await outbox.pendingOutbox(limit: 10).map(\.fileName) == [names[1], names[2]])

            try FileManager.default.removeItem(at: blocker)
            #expect(try await relay.drain() == 2)
            #expect(try files(in: newDir) == names.sorted())
        }
    }

    @Test func aMissingQueueIsCreatedByTheNextDrain() async throws {
        try await withTemporaryDirectory { (dir: URL) async throws in
            let outbox = FakeOutbox()
            let root = dir.appendingPathComponent("queue")
            let queue = QueueDirectory(unpreparedAt: root)
            #expect(!FileManager.default.fileExists(atPath: root.path), "nothing touched before the relay runs")
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: capturingLogger().0)
            let name = outbox.add("T1")
            #expect(try await relay.drain() == 1)
            #expect(try files(in: root.appendingPathComponent("new")) == [name])
        }
    }

    @Test func runLogsFailuresAndKeepsGoing() async throws {
        try await withTemporaryDirectory { dir in
            let outbox = FakeOutbox()
            let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
            let newDir = queue.root.appendingPathComponent("new")
            // A file where new/ should be: neither filing nor re-creating the directory works.
            try FileManager.default.removeItem(at: newDir)
            FileManager.default.createFile(atPath: newDir.path, contents: Data("x".utf8))
            let (logger, logs) = capturingLogger()
            let relay = OutboxRelay(outbox: outbox, queue: queue, logger: logger, pollInterval: .seconds(3600))
            let running = Task { await relay.run() }
            defer { running.cancel() }

            let name = outbox.add("T1")
            relay.wake()
            try await waitUntil("the failure to be logged") {
                logs.all.contains { $0.0 == .error && $0.1.contains(newDir.path) }
            }
            #expect(outbox.count == 1)

            // The disk recovers; the relay must get there on its own (backoff),
            // without another wake and long before the hour-long poll.
            try FileManager.default.removeItem(at: newDir)
            try FileManager.default.createDirectory(at: newDir, withIntermediateDirectories: false)
            try await waitUntil("retry after backoff") { try files(in: newDir) == [name] }
        }
    }
}

@Suite struct QueueFileNameTests {
    @Test func namesSortInFilingOrder() {
        let earlier = QueueFileName.make(filedAtMicroseconds: 9_500_000, eventID: "ffff")
        let later = QueueFileName.make(filedAtMicroseconds: 1_800_000_000_250_000, eventID: "0000")
        #expect(earlier < later)
        #expect(later == "01800000000250000-0000.json")
        #expect(earlier.hasSuffix("-ffff.json"))
        #expect(QueueFileName.isPlain(later))
        #expect(!QueueFileName.isPlain("a/b") && !QueueFileName.isPlain("..") && !QueueFileName.isPlain(""))
    }
}
