import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import PostgresNIO
import Synchronization

/// The ledger on PostgreSQL, shared by every pgnoti host behind one load balancer: the same
/// roles as the SQLite `Ledger`, the same rules (`LedgerRules`, `QuarantineEviction`) and the
/// same group-commit writer. One session writes (the group commit); another reads.
public final class PostgresLedger: LedgerStore, Sendable {
    public let session: PostgresSession
    let connections: PostgresConnections
    let committer: PostgresCommitter
    let writer: GroupCommitWriter<PostgresCommitter>
    let logger: Logger
    /// How long a caller of `record` or `quarantine` waits for its commit before it is told the
    /// outcome is unknown (no ACK). The commit itself goes on; it is never cancelled.
    let answerWithin: Duration

    /// Connects now (and creates or migrates the tables under the advisory lock), failing with the
    /// reason when it cannot; then keeps the sessions open. For commands and tests.
    /// `migrating: false` (the commands that only look) checks the schema and changes nothing.
    public static func open(
        _ session: PostgresSession, quarantinePolicy: QuarantinePolicy = QuarantinePolicy(), maxBatch: Int = 256,
        migrating: Bool = true, logger: Logger
    ) async throws -> PostgresLedger {
        let ledger = PostgresLedger(
            session: session, policy: quarantinePolicy, maxBatch: maxBatch, answerWithin: .seconds(30),
            migrating: migrating, logger: logger)
        do {
            try await ledger.connections.connectOnce()
        } catch {
            await ledger.connections.close()
            throw error
        }
        ledger.connections.start()
        return ledger
    }

    /// Returns at once and connects in the background, retrying until the database is reachable
    /// and migrating then: the daemon starts not ready rather than not at all. Callers get a
    /// 500-worthy error within `answerWithin` whenever a commit cannot be confirmed.
    public static func starting(
        _ session: PostgresSession, quarantinePolicy: QuarantinePolicy = QuarantinePolicy(), maxBatch: Int = 256,
        answerWithin: Duration = .milliseconds(4500), logger: Logger
    ) -> PostgresLedger {
        let ledger = PostgresLedger(
            session: session, policy: quarantinePolicy, maxBatch: maxBatch, answerWithin: answerWithin, migrating: true,
            logger: logger)
        ledger.connections.start()
        return ledger
    }

    private init(
        session: PostgresSession, policy: QuarantinePolicy, maxBatch: Int, answerWithin: Duration, migrating: Bool,
        logger: Logger
    ) {
        self.session = session
        self.logger = logger
        self.answerWithin = answerWithin
        connections = PostgresConnections(
            session: session, logger: logger, migrates: migrating, poolSize: session.poolSize)
        committer = PostgresCommitter(connections: connections, policy: policy, logger: logger)
        writer = GroupCommitWriter(committer, label: "pgnoti.postgres.group-commit", maxBatch: maxBatch)
    }

    /// Returns once the database is reachable and migrated.
    public func waitUntilConnected() async {
        await connections.waitUntilReady()
    }

    var reader: PostgresConnection {
        get throws { try connections.reader }
    }

    public var location: String { session.url.redacted }

    /// The schema version this binary writes.
    public static var schemaVersion: Int { PostgresSchema.current }

    // MARK: - Recording (the intake)

    public func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        try await withTimeout(answerWithin) { [writer] in try await writer.record(entry) }
    }

    public func recordInOrder(_ entries: [LedgerEntry]) async -> [Result<RecordOutcome, any Error>] {
        await writer.recordInOrder(entries)
    }

    public func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome {
        try await withTimeout(answerWithin) { [writer] in try await writer.quarantine(entry) }
    }

    /// Runs `work` inside the writer's next transaction.
    public func write(_ work: @escaping @Sendable (PostgresConnection) async throws -> Void) async throws {
        try await writer.write(work)
    }

    public func setQuarantinePolicy(_ policy: QuarantinePolicy) {
        committer.policy.withLock { $0 = policy }
    }

    public var writerStats: WriterStats { writer.stats }
    /// Why the database cannot take a commit now: unreachable, or the last commit failed.
    public var lastFailure: String? {
        connections.problem.map { "PostgreSQL unreachable: \($0)" } ?? writer.lastFailure
    }

    public func probeWriter() async {
        await writer.probe()
    }

    public func probeWritable() async throws {
        try await write { _ in }
    }

    public func close() async throws {
        await writer.closeAndDrain()
        await connections.close()
    }

    // MARK: - The outbox (the relay)

    /// In filing order: by file name, which begins with the filing time in microseconds. (Not by
    /// id: a batch inserts in key order, to lock keys in the same order on every host.)
    public func pendingOutbox(limit: Int) async throws -> [OutboxItem] {
        let rows = try await reader.query(
            """
            SELECT o.id, o.file_name, CASE WHEN length(o.payload) > 0 THEN o.payload ELSE n.event_json END
            FROM outbox o LEFT JOIN notifications n ON n.id = o.notification_id
            WHERE \(unescaped: Self.undelivered)
            ORDER BY o.file_name, o.id LIMIT \(limit)
            """, logger: logger)
        var items: [OutboxItem] = []
        for try await (id, name, payload) in rows.decode((Int64, String, Data).self) {
            items.append(OutboxItem(id: id, fileName: name, payload: Array(payload)))
        }
        return items
    }

    public func removeFromOutbox(ids: [Int64]) async throws {
        guard !ids.isEmpty else { return }
        let logger = self.logger
        try await write { connection in
            try await connection.query("DELETE FROM outbox WHERE id = ANY(\(ids))", logger: logger)
        }
    }

    /// An outbox row still to be delivered: neither delivered nor given up (schema 2 keeps
    /// both, for `forward status` and until `keep_done_days` have passed).
    static let undelivered = "o.delivered_at IS NULL AND o.failed_at IS NULL"

    /// Events no forwarder has tried yet: what waits for delivery as the outbox of one host
    /// waits for its relay. Events being retried are `forward status`'s to report.
    public func outboxStatus() async throws -> (depth: Int, oldest: Date?) {
        let rows = try await reader.query(
            """
            SELECT count(*)::bigint, min(queued_at) FROM outbox o
            WHERE \(unescaped: Self.undelivered) AND o.attempts = 0
            """, logger: logger)
        for try await (n, oldest) in rows.decode((Int64, Int64?).self) {
            return (Int(n), oldest.map(Date.init(unixMicroseconds:)))
        }
        return (0, nil)
    }

    // MARK: - Reading

    /// Rows per table.
    public func counts() async throws -> LedgerCounts {
        let rows = try await reader.query(
            """
            SELECT (SELECT count(*) FROM notifications)::bigint,
                (SELECT count(*) FROM outbox o WHERE \(unescaped: Self.undelivered))::bigint,
                (SELECT count(*) FROM quarantine)::bigint, (SELECT coalesce(sum(size), 0) FROM quarantine)::bigint,
                (SELECT count(*) FROM conflicts)::bigint
            """, logger: logger)
        for try await (n, o, q, qb, c) in rows.decode((Int64, Int64, Int64, Int64, Int64).self) {
            return LedgerCounts(
                notifications: Int(n), outbox: Int(o), quarantine: Int(q), quarantineBytes: Int(qb), conflicts: Int(c))
        }
        throw PostgresLedgerError("no counts")
    }

    /// Newest first, optionally one reason and only since a time.
    public func quarantined(reason: String?, since: Date?, limit: Int) async throws -> [QuarantinedRequest] {
        try await records(
            """
            SELECT row_to_json(q)::text FROM quarantine q
            WHERE (\(reason)::text IS NULL OR reason = \(reason))
                AND received_at >= \(since?.unixMicroseconds ?? Int64.min)
            ORDER BY id DESC LIMIT \(limit)
            """)
    }

    public func quarantined(id: Int64) async throws -> QuarantinedRequest? {
        let found: [QuarantinedRequest] = try await records(
            "SELECT row_to_json(q)::text FROM quarantine q WHERE id = \(id)")
        return found.first
    }

    /// Every stored notification, oldest first.
    public func notifications(limit: Int) async throws -> [StoredNotification] {
        try await records("SELECT row_to_json(n)::text FROM notifications n ORDER BY id LIMIT \(limit)")
    }

    /// Rows read as the records SQLite's reads return: `row_to_json` gives the columns under
    /// their names, which are the records' coding keys, with bytea as `\x` hex.
    /// Rows of one JSON text column, decoded: `row_to_json` rows by default, or the JSON records
    /// Toss progress and Payup intents are kept as (`JSONDecoder()`).
    func records<Record: Decodable>(
        decoder: JSONDecoder = PostgresLedger.rowDecoder(), _ query: PostgresQuery
    ) async throws -> [Record] {
        let rows = try await reader.query(query, logger: logger)
        var out: [Record] = []
        for try await json in rows.decode(String.self) {
            out.append(try decoder.decode(Record.self, from: Data(json.utf8)))
        }
        return out
    }

    /// For `row_to_json` rows: bytea arrives as `\x` hex.
    static func rowDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dataDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let bytes = HexBytes.decode(text) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "not \\x hex"))
            }
            return Data(bytes)
        }
        return decoder
    }

    // MARK: - Source progress (Toss files, Payup intents)

    public func tossProgress(fileName: String) async throws -> TossFileProgress? {
        let found: [TossFileProgress] = try await records(
            decoder: JSONDecoder(),
            "SELECT record::text FROM toss_files WHERE file_name = \(fileName)")
        return found.first
    }

    public func tossFiles() async throws -> [TossFileProgress] {
        try await records(decoder: JSONDecoder(), "SELECT record::text FROM toss_files ORDER BY file_name")
    }

    public func saveTossProgress(_ progress: TossFileProgress) async throws {
        let record = String(decoding: try JSONEncoder().encode(progress), as: UTF8.self)
        let logger = self.logger
        try await write { connection in
            try await connection.query(
                """
                INSERT INTO toss_files (file_name, record) VALUES (\(progress.fileName), \(record)::jsonb)
                ON CONFLICT (file_name) DO UPDATE SET record = excluded.record
                """, logger: logger)
        }
    }

    public func savePayupIntent(_ intent: PayupIntent) async throws {
        var intent = intent
        intent.updatedAtMicros = max(intent.updatedAtMicros, Date().unixMicroseconds)
        let record = String(decoding: try JSONEncoder().encode(intent), as: UTF8.self)
        let row = intent
        let logger = self.logger
        try await write { connection in
            try await connection.query(
                """
                INSERT INTO payup_intents (id, operation, transaction_id, state, created_at, record)
                VALUES (\(row.id), \(row.operation), \(row.transactionID), \(row.state.rawValue),
                    \(row.createdAtMicros), \(record)::jsonb)
                ON CONFLICT (id) DO UPDATE SET transaction_id = excluded.transaction_id, state = excluded.state,
                    record = excluded.record
                """, logger: logger)
        }
    }

    public func payupIntent(id: String) async throws -> PayupIntent? {
        let found: [PayupIntent] = try await records(
            decoder: JSONDecoder(), "SELECT record::text FROM payup_intents WHERE id = \(id)")
        return found.first
    }

    public func payupApproval(transactionID: String) async throws -> PayupIntent? {
        let found: [PayupIntent] = try await records(
            decoder: JSONDecoder(),
            """
            SELECT record::text FROM payup_intents WHERE operation = 'approve' AND transaction_id = \(transactionID)
            ORDER BY created_at DESC LIMIT 1
            """)
        return found.first
    }

    public func payupIntents(states: [PayupIntent.State]) async throws -> [PayupIntent] {
        try await records(
            decoder: JSONDecoder(),
            "SELECT record::text FROM payup_intents WHERE state = ANY(\(states.map(\.rawValue))) ORDER BY created_at")
    }
}

/// PostgreSQL's bytea text form, `\x` then two hex digits a byte.
enum HexBytes {
    static func decode(_ text: String) -> [UInt8]? {
        guard text.hasPrefix("\\x") else { return nil }
        let digits = Array(text.utf8.dropFirst(2))
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
