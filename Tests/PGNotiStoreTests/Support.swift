import Foundation
import Logging
import PGNotiCore
@_spi(Testing) import PGNotiStore
import Testing

/// A fresh directory per test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (URL) async throws -> R) async throws -> R {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("pgnoti-store-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

/// A whole-microsecond timestamp, so stored and read-back dates compare equal.
let fixedDate = Date(timeIntervalSince1970: 1_750_000_000.123456)

func makeEntry(
    tid: String, state: String = "paid", provider: String = "inicis", merchantID: String = "M100",
    amount: Int = 1000, rawBody: [UInt8]? = nil, contentType: String? = "application/x-www-form-urlencoded",
    fileName: String? = nil, receivedAt: Date = fixedDate
) -> LedgerEntry {
    let json = #"{"provider":"\#(provider)","tid":"\#(tid)","state":"\#(state)","amount":\#(amount)}"#
    return LedgerEntry(
        provider: provider, merchantID: merchantID, tid: tid, state: state,
        fingerprint: "amount=\(amount);result=3001",
        eventID: "evt-\(provider)-\(merchantID)-\(tid)-\(state)",
        eventJSON: Array(json.utf8),
        queueFileName: fileName ?? "\(provider)-\(tid)-\(state).json",
        rawBody: rawBody ?? Array("P_TID=\(tid)&P_AMT=\(amount)".utf8),
        contentType: contentType, remoteAddress: "203.0.113.7", receivedAt: receivedAt)
}

/// Polls until `condition` holds; fails the test after `timeout`.
func waitUntil(
    timeout: Duration = .seconds(10), _ what: String = "condition",
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        if ContinuousClock.now > deadline {
            Issue.record("timed out waiting for \(what)")
            throw CancellationError()
        }
        try await Task.sleep(for: .milliseconds(5))
    }
}

/// Starts `record` in a task and returns once the ledger has it queued, so
/// the order of records inside a held batch is the order of these calls.
func submit(_ entry: LedgerEntry, to ledger: Ledger) async throws -> Task<RecordOutcome, any Error> {
    let before = ledger.queuedRecordCount
    let task = Task { try await ledger.record(entry) }
    try await waitUntil(timeout: .seconds(5), "record to be queued") { ledger.queuedRecordCount == before + 1 }
    return task
}

func files(in directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
}

/// Keeps log messages so tests can check that failures are reported.
struct CapturingLogHandler: LogHandler {
    struct Box: Sendable {
        private let entries = Locked<[(Logger.Level, String)]>([])
        func append(_ entry: (Logger.Level, String)) { entries.withLock { $0.append(entry) } }
        var all: [(Logger.Level, String)] { entries.withLock { $0 } }
    }

    let box: Box
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let details = (event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " ")
        box.append((event.level, "\(event.message) \(details)"))
    }
}

func capturingLogger() -> (Logger, CapturingLogHandler.Box) {
    let box = CapturingLogHandler.Box()
    return (Logger(label: "test", factory: { _ in CapturingLogHandler(box: box) }), box)
}
