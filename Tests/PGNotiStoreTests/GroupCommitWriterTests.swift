import Foundation
import PGNotiCore
@_spi(Testing) import PGNotiStore
import PGNotiTestSupport
import Synchronization
import Testing

/// An engine with no database: it notes each batch it is handed and answers as told. The writer
/// is exercised here on its own, so what it does (batching, waking, failing) is known to be
/// engine-neutral.
final class RecordingCommitter: BatchCommitter {
    typealias Work = String
    struct Failure: Error, Equatable {}

    let batches = Mutex<[(records: [String], quarantine: Int, writes: [String])]>([])
    let failing = Mutex(false)

    func commit(_ batch: CommitBatch<String>) -> Result<CommitOutcome, any Error> {
        batches.withLock { $0.append((batch.records.map(\.eventID), batch.quarantine.count, batch.writes)) }
        if failing.withLock({ $0 }) { return .failure(Failure()) }
        var outcome = CommitOutcome()
        outcome.records = batch.records.map {
            .success(.accepted(eventID: $0.eventID, queueFileName: "f-\($0.eventID)"))
        }
        outcome.quarantineIDs = batch.quarantine.indices.map { Int64($0 + 1) }
        outcome.writes = batch.writes.map { _ in .success(()) }
        return .success(outcome)
    }
}

@Suite struct GroupCommitWriterTests {
    @Test func whatArrivesDuringACommitSharesTheNextOneAndEachCallerGetsItsOwnOutcome() async throws {
        let committer = RecordingCommitter()
        let writer = GroupCommitWriter(committer, label: "test", maxBatch: 64)
        let release = writer.hold()
        let tasks = (0..<10).map { i in Task { try await writer.record(makeEntry(tid: "T\(i)")) } }
        let quarantined = Task { try await writer.quarantine(makeQuarantineEntry()) }
        let wrote = Task { try await writer.write("note") }
        try await waitUntil("all queued") { writer.queuedRecordCount == 10 && writer.queuedQuarantineCount == 1 }
        release()
        for (i, task) in tasks.enumerated() {
            #expect(
                try await task.value
                    == .accepted(
                        eventID: makeEntry(tid: "T\(i)").eventID, queueFileName: "f-\(makeEntry(tid: "T\(i)").eventID)")
            )
        }
        #expect(try await quarantined.value == .stored(id: 1))
        try await wrote.value
        let batches = committer.batches.withLock { $0 }
        #expect(batches.count == 1)
        #expect(
            batches.first?.records.count == 10 && batches.first?.quarantine == 1 && batches.first?.writes == ["note"])
        #expect(writer.stats.committedBatches == 1 && writer.stats.largestBatch == 10)
    }

    @Test func aFailedCommitFailsEveryCallerInItAndTheNextCommitClearsTheFailure() async throws {
        let committer = RecordingCommitter()
        committer.failing.withLock { $0 = true }
        let writer = GroupCommitWriter(committer, label: "test", maxBatch: 64)
        let release = writer.hold()
        let record = Task { try await writer.record(makeEntry(tid: "T1")) }
        let ordered = Task { await writer.recordInOrder([makeEntry(tid: "T2"), makeEntry(tid: "T3")]) }
        let refused = Task { try await writer.quarantine(makeQuarantineEntry()) }
        try await waitUntil("all queued") { writer.queuedRecordCount == 3 && writer.queuedQuarantineCount == 1 }
        release()
        await #expect(throws: RecordingCommitter.Failure.self) { try await record.value }
        await #expect(throws: RecordingCommitter.Failure.self) { try await refused.value }
        for result in await ordered.value {
            #expect(throws: RecordingCommitter.Failure.self) { try result.get() }
        }
        #expect(writer.lastFailure != nil && writer.stats.failedBatches == 1)

        committer.failing.withLock { $0 = false }
        _ = try await writer.record(makeEntry(tid: "T4"))
        #expect(writer.lastFailure == nil)
    }

    @Test func batchesStopAtMaxBatchAndKeepTheOrder() async throws {
        let committer = RecordingCommitter()
        let writer = GroupCommitWriter(committer, label: "test", maxBatch: 2)
        let results = await writer.recordInOrder((1...5).map { makeEntry(tid: "T\($0)") })
        #expect(results.count == 5)
        let batches = committer.batches.withLock { $0.map(\.records) }
        #expect(batches.map(\.count) == [2, 2, 1])
        #expect(batches.flatMap { $0 } == (1...5).map { makeEntry(tid: "T\($0)").eventID })
    }

    @Test func aClosedWriterRefusesAndLeavesNoCallerWaiting() async throws {
        let writer = GroupCommitWriter(RecordingCommitter(), label: "test", maxBatch: 8)
        await writer.closeAndDrain()
        await #expect(throws: LedgerError.closed) { try await writer.record(makeEntry(tid: "T1")) }
        await #expect(throws: LedgerError.closed) { try await writer.write("late") }
    }
}
