import Foundation
import Logging
import PGNotiSpool
import Synchronization
import Testing

/// A fresh directory per test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (URL) async throws -> R) async throws -> R {
    let url = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

func withTemporaryDirectorySync<R>(_ body: (URL) throws -> R) throws -> R {
    let url = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

private func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("pgnoti-spool-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// An outbox in memory: the relay's side of the ledger, without SQLite.
final class FakeOutbox: OutboxSource {
    private let items = Mutex<[OutboxItem]>([])
    private let nextID = Mutex<Int64>(1)

    static func payload(_ name: String) -> [UInt8] { Array(#"{"name":"\#(name)"}"#.utf8) }

    /// Adds an event and returns its file name; names sort in the order they were added.
    @discardableResult
    func add(_ tag: String) -> String {
        let id = nextID.withLock { id in
            defer { id += 1 }
            return id
        }
        let name = String(format: "%017d", id) + "-\(tag).json"
        items.withLock { $0.append(OutboxItem(id: id, fileName: name, payload: Self.payload(name))) }
        return name
    }

    var count: Int { items.withLock { $0.count } }

    func pendingOutbox(limit: Int) async throws -> [OutboxItem] {
        items.withLock { Array($0.prefix(limit)) }
    }

    func removeFromOutbox(ids: [Int64]) async throws {
        let remove = Set(ids)
        items.withLock { $0.removeAll { remove.contains($0.id) } }
    }
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

func files(in directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
}

/// Keeps log messages so tests can check that failures are reported.
struct CapturingLogHandler: LogHandler {
    final class Box: Sendable {
        private let entries = Mutex<[(Logger.Level, String)]>([])
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
