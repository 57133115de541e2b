import Foundation
import GRDB
import Synchronization

extension Ledger {
    /// Newest first, optionally only one reason and only since a time.
    public func quarantined(reason: String? = nil, since: Date? = nil, limit: Int = 1000) async throws
        -> [QuarantinedRequest]
    {
        try await read { db in
            var request = QuarantinedRequest.all()
            if let reason { request = request.filter(Column("reason") == reason) }
            if let since { request = request.filter(Column("received_at") >= since.unixMicroseconds) }
            return try request.order(Column("id").desc).limit(limit).fetchAll(db)
        }
    }

    public func quarantined(id: Int64) async throws -> QuarantinedRequest? {
        try await read { db in try QuarantinedRequest.fetchOne(db, key: id) }
    }

    /// Removes the given items; returns how many existed.
    @discardableResult
    /// Deletes the items with these ids; returns the ids that were there.
    public func dropQuarantined(ids: [Int64]) async throws -> [Int64] {
        let removed = Mutex<[Int64]>([])
        try await write { db in
            for id in ids {
                try db.execute(sql: "DELETE FROM quarantine WHERE id = ?", arguments: [id])
                if db.changesCount > 0 { removed.withLock { $0.append(id) } }
            }
        }
        return removed.withLock { $0 }
    }

    /// Notes that an item was released as (or found to duplicate) `eventID`.
    public func markReleased(id: Int64, eventID: String) async throws {
        let now = Date().unixMicroseconds
        try await write { db in
            try db.execute(
                sql: "UPDATE quarantine SET released_at = ?, released_event_id = ? WHERE id = ?",
                arguments: [now, eventID, id])
        }
    }
}
