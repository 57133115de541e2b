import Foundation

/// One notification as the server wants it stored. The dedup key is
/// (provider, merchantID, tid, state); everything else is payload.
public struct LedgerEntry: Sendable, Equatable {
    public var provider: String
    public var merchantID: String
    public var tid: String
    public var state: String
    /// What has to match for a retry to count as a duplicate rather than a conflict.
    public var fingerprint: String
    public var eventID: String
    /// The exact bytes filed into the queue.
    public var eventJSON: [UInt8]
    /// Must be a plain file name (no `/`); the queue directory uses it verbatim.
    public var queueFileName: String
    public var rawBody: [UInt8]
    public var contentType: String?
    public var remoteAddress: String?
    /// Stored with microsecond precision.
    public var receivedAt: Date

    public init(
        provider: String, merchantID: String, tid: String, state: String,
        fingerprint: String, eventID: String, eventJSON: [UInt8], queueFileName: String,
        rawBody: [UInt8], contentType: String?, remoteAddress: String?, receivedAt: Date
    ) {
        self.provider = provider
        self.merchantID = merchantID
        self.tid = tid
        self.state = state
        self.fingerprint = fingerprint
        self.eventID = eventID
        self.eventJSON = eventJSON
        self.queueFileName = queueFileName
        self.rawBody = rawBody
        self.contentType = contentType
        self.remoteAddress = remoteAddress
        self.receivedAt = receivedAt
    }
}

public enum RecordOutcome: Sendable, Equatable {
    /// Committed for the first time; an outbox row was written in the same transaction.
    case accepted(eventID: String)
    /// Same key and same fingerprint as a stored notification (a PG retry).
    case duplicate(eventID: String)
    /// Same key, different fingerprint: kept aside in `conflicts`, never queued.
    case conflict(eventID: String, storedFingerprint: String)
}

/// A request the server refused (bad signature, unparsable body, ...), kept for forensics.
public struct RejectedRequest: Sendable, Equatable {
    public var provider: String
    public var reason: String
    public var detail: String
    public var rawBody: [UInt8]
    public var contentType: String?
    public var remoteAddress: String?
    public var receivedAt: Date

    public init(
        provider: String, reason: String, detail: String, rawBody: [UInt8],
        contentType: String?, remoteAddress: String?, receivedAt: Date
    ) {
        self.provider = provider
        self.reason = reason
        self.detail = detail
        self.rawBody = rawBody
        self.contentType = contentType
        self.remoteAddress = remoteAddress
        self.receivedAt = receivedAt
    }
}

public struct OutboxItem: Sendable, Equatable {
    public let id: Int64
    public let fileName: String
    public let payload: [UInt8]
}

public struct StoredNotification: Sendable, Equatable {
    /// Pass the last one seen as `afterRowID` to page through `notifications`.
    public let rowID: Int64
    public let provider: String
    public let merchantID: String
    public let tid: String
    public let state: String
    public let eventID: String
    public let fingerprint: String
    public let receivedAt: Date
    public let eventJSON: [UInt8]
    public let rawBody: [UInt8]
    public let contentType: String?
    public let remoteAddress: String?
    /// How many duplicates (same fingerprint) arrived after the first one.
    public let retries: Int
    public let lastSeenAt: Date?
}

/// A retry whose fingerprint disagreed with what was stored under the same key.
public struct ConflictRecord: Sendable, Equatable {
    public let id: Int64
    public let provider: String
    public let merchantID: String
    public let tid: String
    public let state: String
    /// The event id of the stored notification it collided with.
    public let eventID: String
    public let storedFingerprint: String
    public let newFingerprint: String
    public let rawBody: [UInt8]
    public let contentType: String?
    public let remoteAddress: String?
    public let receivedAt: Date
}

/// Group-commit counters, for tests and metrics.
public struct WriterStats: Sendable, Equatable {
    /// Write transactions that committed.
    public var committedBatches = 0
    /// Entries carried by those transactions (including ones that failed alone).
    public var committedEntries = 0
    /// Batches whose transaction failed as a whole; every caller got the error.
    public var failedBatches = 0
    public var largestBatch = 0

    public init(committedBatches: Int = 0, committedEntries: Int = 0, failedBatches: Int = 0, largestBatch: Int = 0) {
        self.committedBatches = committedBatches
        self.committedEntries = committedEntries
        self.failedBatches = failedBatches
        self.largestBatch = largestBatch
    }
}

public enum LedgerError: Error, Equatable, CustomStringConvertible {
    case closed
    case cannotCreateDirectory(path: String, reason: String)

    public var description: String {
        switch self {
        case .closed: return "ledger is closed"
        case .cannotCreateDirectory(let path, let reason): return "cannot create directory \(path): \(reason)"
        }
    }
}
