import Foundation
import GRDB

/// How far a Toss transaction file has been read. Toss pushes the whole day so far every
/// twenty minutes to the same path, so a file is read on from where it was left, unless the
/// bytes already read changed (a rewrite), when it is read again from the start; the ledger's
/// dedup keeps the rows already filed from being filed twice.
///
/// `ingestedBytes` always ends just past a newline (or at 0): a last line without one is never
/// behind it, however it was read. When such a line was taken as it was (its day over and the
/// file quiet long enough), `tailSHA256` says which bytes were taken, so that an unchanged file
/// does not submit it again.
public struct TossFileProgress: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "toss_files"

    public var fileName: String
    public var ingestedBytes: Int
    public var ingestedLines: Int
    public var prefixSHA256: Data
    public var size: Int
    public var rows: Int
    public var updatedAtMicros: Int64
    public var finalizedAtMicros: Int64?
    /// SHA-256 of the whole file as last read, and since when it has had exactly those bytes
    /// (as far as pgnoti saw): how long a pulled body, which has no modification time, has been
    /// unchanged.
    public var contentSHA256: Data?
    public var contentSinceMicros: Int64?
    /// The line number of a last line without its newline, left unread by the last read.
    public var pendingLine: Int?
    /// SHA-256 of the bytes after `ingestedBytes` when they were taken as a last line without
    /// its newline; nil when no such line was taken.
    public var tailSHA256: Data?

    public init(
        fileName: String, ingestedBytes: Int, ingestedLines: Int, prefixSHA256: [UInt8], size: Int, rows: Int,
        updatedAt: Date, finalizedAt: Date? = nil, contentSHA256: [UInt8]? = nil, contentSince: Date? = nil,
        pendingLine: Int? = nil, tailSHA256: [UInt8]? = nil
    ) {
        self.fileName = fileName
        self.ingestedBytes = ingestedBytes
        self.ingestedLines = ingestedLines
        self.prefixSHA256 = Data(prefixSHA256)
        self.size = size
        self.rows = rows
        self.updatedAtMicros = updatedAt.unixMicroseconds
        self.finalizedAtMicros = finalizedAt?.unixMicroseconds
        self.contentSHA256 = contentSHA256.map { Data($0) }
        self.contentSinceMicros = contentSince?.unixMicroseconds
        self.pendingLine = pendingLine
        self.tailSHA256 = tailSHA256.map { Data($0) }
    }

    public var finalizedAt: Date? { finalizedAtMicros.map(Date.init(unixMicroseconds:)) }
    public var contentSince: Date? { contentSinceMicros.map(Date.init(unixMicroseconds:)) }

    enum CodingKeys: String, CodingKey {
        case fileName = "file_name"
        case ingestedBytes = "ingested_bytes"
        case ingestedLines = "ingested_lines"
        case prefixSHA256 = "prefix_sha256"
        case size, rows
        case updatedAtMicros = "updated_at"
        case finalizedAtMicros = "finalized_at"
        case contentSHA256 = "content_sha256"
        case contentSinceMicros = "content_since"
        case pendingLine = "pending_line"
        case tailSHA256 = "tail_sha256"
    }
}

/// One call to Payup, journaled before it is sent. A call whose answer never came stays
/// `sent` or becomes `unknown`: `pgnoti payup pending` lists those for the operator to check in
/// Payup's console. Holds no card data.
public struct PayupIntent: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "payup_intents"

    public enum State: String, Sendable, Codable, CaseIterable {
        /// Journaled and being sent (or the process died while it was).
        case sent
        case approved, canceled, failed
        /// Sent, but the answer was lost (timeout, dropped connection, unreadable body).
        case unknown
        /// Never reached Payup (connection refused, DNS): nothing happened there.
        case notSent = "not_sent"

        /// Outcomes an operator has to settle by hand.
        public static let pending: [State] = [.sent, .unknown]
    }

    public var id: String
    public var operation: String
    public var merchantID: String
    public var orderNumber: String?
    public var amount: String?
    public var transactionID: String?
    public var timestamp: String
    public var state: State
    public var responseCode: String?
    public var responseMessage: String?
    public var eventID: String?
    public var error: String?
    public var createdAtMicros: Int64
    public var updatedAtMicros: Int64

    public init(
        id: String, operation: String, merchantID: String, orderNumber: String?, amount: String?,
        transactionID: String?, timestamp: String, state: State, createdAt: Date
    ) {
        self.id = id
        self.operation = operation
        self.merchantID = merchantID
        self.orderNumber = orderNumber
        self.amount = amount
        self.transactionID = transactionID
        self.timestamp = timestamp
        self.state = state
        self.createdAtMicros = createdAt.unixMicroseconds
        self.updatedAtMicros = createdAt.unixMicroseconds
    }

    public var createdAt: Date { Date(unixMicroseconds: createdAtMicros) }
    public var updatedAt: Date { Date(unixMicroseconds: updatedAtMicros) }

    enum CodingKeys: String, CodingKey {
        case id, operation
        case merchantID = "merchant_id"
        case orderNumber = "order_number"
        case amount
        case transactionID = "transaction_id"
        case timestamp, state
        case responseCode = "response_code"
        case responseMessage = "response_message"
        case eventID = "event_id"
        case error
        case createdAtMicros = "created_at"
        case updatedAtMicros = "updated_at"
    }
}

extension Ledger {
    public func tossProgress(fileName: String) async throws -> TossFileProgress? {
        try await read { db in try TossFileProgress.fetchOne(db, key: fileName) }
    }

    public func tossFiles() async throws -> [TossFileProgress] {
        try await read { db in try TossFileProgress.order(Column("file_name")).fetchAll(db) }
    }

    public func saveTossProgress(_ progress: TossFileProgress) async throws {
        try await write { db in try progress.save(db) }
    }

    /// Journals (or updates) an intent; returns once committed.
    public func savePayupIntent(_ intent: PayupIntent) async throws {
        var intent = intent
        intent.updatedAtMicros = max(intent.updatedAtMicros, Date().unixMicroseconds)
        let row = intent
        try await write { db in try row.save(db) }
    }

    public func payupIntent(id: String) async throws -> PayupIntent? {
        try await read { db in try PayupIntent.fetchOne(db, key: id) }
    }

    /// The approval that produced `transactionID`, if pgnoti's client made it.
    public func payupApproval(transactionID: String) async throws -> PayupIntent? {
        try await read { db in
            try PayupIntent.filter(Column("operation") == "approve" && Column("transaction_id") == transactionID)
                .order(Column("created_at").desc).fetchOne(db)
        }
    }

    /// Oldest first.
    public func payupIntents(states: [PayupIntent.State]) async throws -> [PayupIntent] {
        try await read { db in
            try PayupIntent.filter(states.map(\.rawValue).contains(Column("state")))
                .order(Column("created_at")).fetchAll(db)
        }
    }
}
