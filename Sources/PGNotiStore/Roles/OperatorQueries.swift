import Foundation
import PGNotiCore

/// What operators ask the ledger: events and their history, the quarantine, counts, and the
/// maintenance writes (purge, redeliver). Reads never hold the writer; the few writes go through
/// it like the daemon's.
public protocol OperatorQueries: Sendable {
    /// Notifications matching `filter`, newest first; `kind: notification.conflict` lists the
    /// conflict events.
    func events(_ filter: EventFilter) async throws -> [StoredNotification]
    /// The ids among `ids` that the ledger holds (notifications or conflicts).
    func knownEventIDs(_ ids: [String]) async throws -> Set<String>
    /// By event id, conflict event id, TID or order id.
    func lookup(_ reference: String) async throws -> [StoredNotification]
    func history(of notification: StoredNotification) async throws -> EventHistory
    /// Puts events back into the outbox; returns how many were queued.
    func redeliver(eventIDs: [String], since: Date?, until: Date?) async throws -> Int
    func stats(since: Date?) async throws -> LedgerStats
    func counts() async throws -> LedgerCounts

    /// What `purge(before:hasRoom:)` would change, counted without writing.
    func purgeCandidates(before cutoff: Date) async throws -> PurgeCounts
    /// Empties the bodies and personal members of what was received before `cutoff`, in short
    /// batches; stops early once `hasRoom` says no.
    func purge(before cutoff: Date, hasRoom: @Sendable () -> Bool) async throws -> PurgeCounts

    /// Newest first, optionally one reason and only since a time.
    func quarantined(reason: String?, since: Date?, limit: Int) async throws -> [QuarantinedRequest]
    func quarantined(id: Int64) async throws -> QuarantinedRequest?
    /// Deletes the items with these ids; returns the ids that were there.
    func dropQuarantined(ids: [Int64]) async throws -> [Int64]
    /// Notes that an item was released as (or found to duplicate) `eventID`.
    func markReleased(id: Int64, eventID: String) async throws
}

extension OperatorQueries {
    public func purge(before cutoff: Date) async throws -> PurgeCounts {
        try await purge(before: cutoff, hasRoom: { true })
    }
}

/// Which events `events(_:)` lists.
public struct EventFilter: Sendable {
    public var provider: String?
    public var since: Date?
    public var until: Date?
    public var tid: String?
    public var orderID: String?
    public var kind: String?
    public var limit: Int

    public init(
        provider: String? = nil, since: Date? = nil, until: Date? = nil, tid: String? = nil,
        orderID: String? = nil, kind: String? = nil, limit: Int = 100
    ) {
        self.provider = provider
        self.since = since
        self.until = until
        self.tid = tid
        self.orderID = orderID
        self.kind = kind
        self.limit = limit
    }
}

/// Everything recorded about one stored notification besides itself.
public struct EventHistory: Sendable {
    public struct Retry: Sendable, Equatable {
        public let receivedAt: Date
        public let peer: String?
        public let client: String?

        public init(receivedAt: Date, peer: String?, client: String?) {
            self.receivedAt = receivedAt
            self.peer = peer
            self.client = client
        }
    }

    public let retries: [Retry]
    public let conflicts: [ConflictRecord]
    public let inOutbox: Bool

    public init(retries: [Retry], conflicts: [ConflictRecord], inOutbox: Bool) {
        self.retries = retries
        self.conflicts = conflicts
        self.inOutbox = inOutbox
    }
}

/// Why a purge stopped before it was done.
public enum PurgeStop: Sendable, Equatable {
    /// The file system fell below the free space the daemon needs (`min_free_bytes`).
    case lowOnSpace
}

/// What a purge did, or (`dryRun`) would do.
public struct PurgeCounts: Sendable, Equatable {
    public var notifications = 0
    public var conflicts = 0
    public var quarantine = 0
    public var retries = 0
    /// Set when the purge stopped early; what it already did stays done.
    public var stopped: PurgeStop?

    public init() {}
}

/// Events, conflicts and refusals by kind, for `pgnoti stats`.
public struct LedgerStats: Sendable {
    public struct Row: Sendable, Equatable {
        public let provider: String
        public let kind: String
        public let events: Int
        public let retries: Int

        public init(provider: String, kind: String, events: Int, retries: Int) {
            self.provider = provider
            self.kind = kind
            self.events = events
            self.retries = retries
        }
    }

    public var byKind: [Row]
    public var conflicts: Int
    public var conflictsIgnored: Int
    public var quarantineByReason: [(reason: String, count: Int)]
    public var outboxDepth: Int
    public var oldestInOutbox: Date?

    public init(
        byKind: [Row], conflicts: Int, conflictsIgnored: Int, quarantineByReason: [(reason: String, count: Int)],
        outboxDepth: Int, oldestInOutbox: Date?
    ) {
        self.byKind = byKind
        self.conflicts = conflicts
        self.conflictsIgnored = conflictsIgnored
        self.quarantineByReason = quarantineByReason
        self.outboxDepth = outboxDepth
        self.oldestInOutbox = oldestInOutbox
    }
}

/// Rows per table, for logs and tests.
public struct LedgerCounts: Sendable, Equatable {
    public var notifications: Int
    public var outbox: Int
    public var quarantine: Int
    public var quarantineBytes: Int
    public var conflicts: Int

    public init(notifications: Int, outbox: Int, quarantine: Int, quarantineBytes: Int, conflicts: Int) {
        self.notifications = notifications
        self.outbox = outbox
        self.quarantine = quarantine
        self.quarantineBytes = quarantineBytes
        self.conflicts = conflicts
    }
}
