import Foundation
import Logging
import PGNotiSpool
import PGNotiTestSupport
import Synchronization
import Testing

/// A fresh directory per test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (URL) async throws -> R) async throws -> R {
    let url = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
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

func files(in directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
}
