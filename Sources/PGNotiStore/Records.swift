import Foundation
import GRDB
import PGNotiCore

/// One notification as the intake wants it stored. The dedup key is (provider, merchant, tid,
/// state); everything else is payload.
///
/// The event document is not built up front: whether this entry is new is only known inside
/// the writer, against committed state, so the writer asks for the JSON only when it is.
public struct LedgerEntry: Sendable {
    public var key: NotificationKey
    /// What has to match for a retry to count as a duplicate rather than a conflict.
    public var fingerprint: String
    public var eventID: String
    public var kind: String
    public var orderID: String?
    public var amount: Int?
    public var resultCode: String?
    public var rawBody: [UInt8]
    public var contentType: String?
    public var peer: String?
    public var client: String?
    /// When the notification first arrived (before any quarantine), stored with microsecond precision.
    public var receivedAt: Date
    /// The event document, asked for only when the entry turns out to be new.
    public var eventJSON: @Sendable () -> [UInt8]
    /// The `notification.conflict` document for this version, asked for only when it contradicts
    /// a stored one: (event id, JSON), given the stored event's id, amount and result code.
    public var conflictEvent:
        (@Sendable (_ storedEventID: String, _ storedAmount: Int?, _ storedResultCode: String?) -> (String, [UInt8]))?

    public init(
        key: NotificationKey, fingerprint: String, eventID: String, kind: String, orderID: String? = nil,
        amount: Int? = nil, resultCode: String? = nil, rawBody: [UInt8], contentType: String?, peer: String?,
        client: String?, receivedAt: Date, eventJSON: @escaping @Sendable () -> [UInt8],
        conflictEvent: (@Sendable (String, Int?, String?) -> (String, [UInt8]))? = nil
    ) {
        self.key = key
        self.fingerprint = fingerprint
        self.eventID = eventID
        self.kind = kind
        self.orderID = orderID
        self.amount = amount
        self.resultCode = resultCode
        self.rawBody = rawBody
        self.contentType = contentType
        self.peer = peer
        self.client = client
        self.receivedAt = receivedAt
        self.eventJSON = eventJSON
        self.conflictEvent = conflictEvent
    }
}

public enum RecordOutcome: Sendable, Equatable {
    /// Committed for the first time; an outbox row was written in the same transaction.
    case accepted(eventID: String, queueFileName: String)
    /// The same key and version as something already stored (a PG retry), including a retry
    /// of a conflicting version already filed as a conflict event.
    case duplicate(eventID: String)
    /// Same key, different fingerprint: a `notification.conflict` event was committed.
    case conflict(eventID: String, conflictsWith: String, storedFingerprint: String, queueFileName: String)
    /// Same key, different fingerprint, but the key already has `LedgerRules.maximumConflictsPerKey`
    /// conflict events: counted, not stored. `ignored` is how many so far for this key.
    case conflictIgnored(conflictsWith: String, storedFingerprint: String, ignored: Int)
}

/// A request the intake refused (bad signature, unparsable body, wrong source …), kept so an
/// operator can inspect it and release it once the cause is fixed.
public struct QuarantineEntry: Sendable, Equatable {
    public var provider: String
    public var reason: String
    public var detail: String
    public var rawBody: [UInt8]
    public var contentType: String?
    public var forwardedFor: String?
    public var peer: String?
    public var client: String?
    /// SHA-256 of the path secret the URL carried; nil when it carried none.
    public var pathSecretSHA256: [UInt8]?
    /// The body read as a notification; it failed authentication or verification.
    public var parsed: Bool
    public var merchantID: String?
    public var tid: String?
    public var receivedAt: Date

    public init(
        provider: String, reason: String, detail: String, rawBody: [UInt8], contentType: String?,
        forwardedFor: String? = nil, peer: String?, client: String?, pathSecretSHA256: [UInt8]? = nil,
        parsed: Bool = false, merchantID: String? = nil, tid: String? = nil, receivedAt: Date
    ) {
        self.provider = provider
        self.reason = reason
        self.detail = detail
        self.rawBody = rawBody
        self.contentType = contentType
        self.forwardedFor = forwardedFor
        self.peer = peer
        self.client = client
        self.pathSecretSHA256 = pathSecretSHA256
        self.parsed = parsed
        self.merchantID = merchantID
        self.tid = tid
        self.receivedAt = receivedAt
    }
}

public enum QuarantineOutcome: Sendable, Equatable {
    case stored(id: Int64)
    /// The quarantine queue was full (a flood): counted, not stored.
    case dropped
}

/// A stored notification, as the operator CLI and tests read it.
public struct StoredNotification: Sendable, Equatable, Decodable, FetchableRecord, TableRecord {
    public static let databaseTableName = "notifications"

    /// Pass the last one seen as `afterRowID` to page through `notifications`.
    public let rowID: Int64
    public let provider: String
    public let merchantID: String
    public let tid: String
    public let state: String
    public let eventID: String
    public let fingerprint: String
    public let kind: String?
    public let orderID: String?
    public let amount: Int?
    public let resultCode: String?
    let receivedAtMicros: Int64
    let filedAtMicros: Int64?
    public let eventJSON: Data
    public let queueFileName: String
    public let rawBody: Data
    public let contentType: String?
    public let peer: String?
    public let client: String?
    /// How many duplicates (same fingerprint) arrived after the first one.
    public let retries: Int
    let lastSeenAtMicros: Int64?
    public let conflictsIgnored: Int

    public var receivedAt: Date { Date(unixMicroseconds: receivedAtMicros) }
    public var filedAt: Date? { filedAtMicros.map(Date.init(unixMicroseconds:)) }
    public var lastSeenAt: Date? { lastSeenAtMicros.map(Date.init(unixMicroseconds:)) }

    enum CodingKeys: String, CodingKey {
        case rowID = "id"
        case provider
        case merchantID = "merchant_id"
        case tid, state
        case eventID = "event_id"
        case fingerprint
        case kind
        case orderID = "order_id"
        case amount
        case resultCode = "result_code"
        case receivedAtMicros = "received_at"
        case filedAtMicros = "filed_at"
        case eventJSON = "event_json"
        case queueFileName = "queue_file_name"
        case rawBody = "raw_body"
        case contentType = "content_type"
        case peer, client, retries
        case lastSeenAtMicros = "last_seen_at"
        case conflictsIgnored = "conflicts_ignored"
    }
}

/// A request in quarantine.
public struct QuarantinedRequest: Sendable, Equatable, Decodable, FetchableRecord, TableRecord {
    public static let databaseTableName = "quarantine"

    public let id: Int64
    public let provider: String
    public let reason: String
    public let detail: String
    public let rawBody: Data
    public let contentType: String?
    public let forwardedFor: String?
    public let peer: String?
    public let client: String?
    public let pathSecretSHA256: Data?
    public let parsed: Bool
    public let merchantID: String?
    public let tid: String?
    public let size: Int
    let receivedAtMicros: Int64
    let releasedAtMicros: Int64?
    public let releasedEventID: String?

    public var receivedAt: Date { Date(unixMicroseconds: receivedAtMicros) }
    public var releasedAt: Date? { releasedAtMicros.map(Date.init(unixMicroseconds:)) }
    /// `pgnoti purge` emptied its body; `size` still says how large it was.
    public var isPurged: Bool { rawBody.isEmpty && size > 0 }

    enum CodingKeys: String, CodingKey {
        case id, provider, reason, detail
        case rawBody = "raw_body"
        case contentType = "content_type"
        case forwardedFor = "forwarded_for"
        case peer, client
        case pathSecretSHA256 = "path_secret_sha256"
        case parsed
        case merchantID = "merchant_id"
        case tid, size
        case receivedAtMicros = "received_at"
        case releasedAtMicros = "released_at"
        case releasedEventID = "released_event_id"
    }
}

/// A version of a notification that disagreed with the one stored under the same key.
public struct ConflictRecord: Sendable, Equatable, Decodable, FetchableRecord, TableRecord {
    public static let databaseTableName = "conflicts"

    public let id: Int64
    public let provider: String
    public let merchantID: String
    public let tid: String
    public let state: String
    /// The event id of the stored notification it collided with.
    public let eventID: String
    /// The id of the `notification.conflict` event filed for it (nil for rows from before v2).
    public let conflictEventID: String?
    public let storedFingerprint: String
    public let newFingerprint: String
    public let rawBody: Data
    public let contentType: String?
    public let peer: String?
    public let client: String?
    public let retries: Int
    let receivedAtMicros: Int64

    public var receivedAt: Date { Date(unixMicroseconds: receivedAtMicros) }

    enum CodingKeys: String, CodingKey {
        case id, provider
        case merchantID = "merchant_id"
        case tid, state
        case eventID = "event_id"
        case conflictEventID = "conflict_event_id"
        case storedFingerprint = "stored_fingerprint"
        case newFingerprint = "new_fingerprint"
        case rawBody = "raw_body"
        case contentType = "content_type"
        case peer, client
        case retries
        case receivedAtMicros = "received_at"
    }
}

/// Group-commit counters, for tests and metrics.
public struct WriterStats: Sendable, Equatable {
    /// Write transactions that committed.
    public var committedBatches = 0
    /// Notification entries carried by those transactions (including ones that failed alone).
    public var committedEntries = 0
    /// Batches whose transaction failed as a whole; every caller got the error.
    public var failedBatches = 0
    public var largestBatch = 0
    /// Refused requests stored, dropped because the quarantine queue was full, and evicted to
    /// stay inside `quarantine_max_bytes`, `rejected_keep` or `quarantine_keep_days`.
    public var quarantined = 0
    public var quarantineDropped = 0
    public var quarantineEvicted = 0

    public init() {}
}

public enum LedgerError: Error, Equatable, CustomStringConvertible {
    case closed
    case cannotCreateDirectory(path: String, reason: String)
    case newerSchema(path: String, found: String, known: String)
    case missing(path: String)
    case readOnly(path: String)

    public var description: String {
        switch self {
        case .closed: return "ledger is closed"
        case .cannotCreateDirectory(let path, let reason): return "cannot create directory \(path): \(reason)"
        case .newerSchema(let path, let found, let known):
            return
                "\(path) has schema \(found), newer than \(known), the newest this pgnoti knows (it was written by a newer pgnoti); refusing to open it. Install the newer binary again, or restore a backup"
        case .missing(let path): return "\(path) does not exist"
        case .readOnly(let path): return "\(path) is open read-only here; this command does not write to it"
        }
    }
}

extension Date {
    public var unixMicroseconds: Int64 {
        Int64((timeIntervalSince1970 * 1_000_000).rounded())
    }

    public init(unixMicroseconds: Int64) {
        self.init(timeIntervalSince1970: Double(unixMicroseconds) / 1_000_000)
    }
}
