import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import PostgresNIO

/// `pgnoti copy-ledger`: merges a host's SQLite ledger into the cluster's PostgreSQL ledger.
///
/// Each page of source rows is one transaction, so a copy cut short leaves whole pages behind
/// and a rerun finds them (every insert is keyed: `ON CONFLICT DO NOTHING`, or, for the
/// quarantine, which has no key, the row's provider, reason, time, size and body). What the
/// target holds differently is decided by `LedgerMerge`, which asks `LedgerRules`, as the live
/// path does; the held row is locked and read by the committer's own `lockHeld`, and a conflict
/// is filed by its `fileConflict`. Rows are applied in key order within a page, the order the
/// daemons lock keys in, so a copy into a running cluster cannot deadlock with them.
///
/// Outbox rows travel with the row they belong to, in its transaction: an event still in the
/// old host's outbox is delivered from the cluster, and one already filed into the old queue
/// directory gets none and is not sent again.
public struct PostgresLedgerCopy: Sendable {
    let source: Ledger
    let session: PostgresSession
    let conflictEvents: ConflictEventSource
    let pageSize: Int
    let logger: Logger

    /// Taken for the whole copy: two copies at once would each miss the other's quarantine rows.
    static let lockKey: Int64 = 0x7067_6e6f_7463  // "pgnotc"

    public init(
        source: Ledger, session: PostgresSession, conflictEvents: @escaping ConflictEventSource, pageSize: Int = 200,
        logger: Logger
    ) {
        self.source = source
        self.session = session
        self.conflictEvents = conflictEvents
        self.pageSize = pageSize
        self.logger = logger
    }

    /// Copies, then checks the target holds every source row; the summary says what happened
    /// (`problems` is empty when the check passed).
    public func run() async throws -> LedgerCopySummary {
        let connection = try await session.connect(logger: logger)
        do {
            try await PostgresSchema.migrate(connection, logger: logger)
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            var run = Run(copy: self, connection: connection)
            try await run.all()
            try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
            try await connection.close()
            return run.summary
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// One run's state: the connection, the summary filled in, the last file name handed out.
private struct Run {
    let copy: PostgresLedgerCopy
    let connection: PostgresConnection
    var summary = LedgerCopySummary()
    var lastFiledMicros: Int64 = 0
    /// Source rows left out on purpose (listed in the summary), which the check must not miss.
    var absent: [LedgerCopySummary.Table: Int] = [:]

    var logger: Logger { copy.logger }
    var source: Ledger { copy.source }

    init(copy: PostgresLedgerCopy, connection: PostgresConnection) {
        self.copy = copy
        self.connection = connection
    }

    mutating func all() async throws {
        let counts = try await source.exportCounts()
        summary[.notifications].source = counts.notifications
        summary[.conflicts].source = counts.conflicts
        summary[.quarantine].source = counts.quarantine
        summary[.tossFiles].source = counts.tossFiles
        summary[.payupIntents].source = counts.payupIntents
        summary.outboxSource = counts.outbox
        if counts.strayOutbox > 0 {
            summary.notes.append(
                .init(
                    kind: .skipped, table: .notifications, row: "outbox",
                    detail: "\(counts.strayOutbox) outbox row(s) belong to no stored notification or conflict"))
        }
        try await notifications()
        try await conflicts()
        try await quarantine()
        try await tossFiles()
        try await payupIntents()
        try await check()
    }

    // MARK: - Pages

    private mutating func inTransaction(_ body: (inout Run) async throws -> Void) async throws {
        try await connection.query("BEGIN", logger: logger)
        var staged = self
        do {
            try await body(&staged)
            try await connection.query("COMMIT", logger: logger)
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
        // Counted only once committed.
        self = staged
    }

    private static func key(_ provider: String, _ merchantID: String, _ tid: String, _ state: String)
        -> NotificationKey?
    {
        ProviderID(rawValue: provider).map {
            NotificationKey(provider: $0, merchantID: merchantID, tid: tid, state: state)
        }
    }

    /// The row's key, or nil, the row left out and listed, when this pgnoti does not know its
    /// provider.
    private mutating func knownKey(
        _ provider: String, _ merchantID: String, _ tid: String, _ state: String, table: LedgerCopySummary.Table
    ) -> NotificationKey? {
        if let key = Self.key(provider, merchantID, tid, state) { return key }
        summary[table].ignored += 1
        absent[table, default: 0] += 1
        summary.notes.append(
            .init(
                kind: .skipped, table: table, row: "\(provider) \(merchantID) \(tid) \(state)",
                detail: "provider \(provider) is unknown to this pgnoti"))
        return nil
    }

    private static func describe(_ k: NotificationKey) -> String {
        "\(k.provider.rawValue) \(k.merchantID) \(k.tid) \(k.state)"
    }

    private mutating func notifications() async throws {
        let (source, size) = (self.source, copy.pageSize)
        try await byPages(
            { try await source.exportNotifications(afterRowID: $0, limit: size) }, id: \.notification.rowID,
            keyedBy: {
                [$0.notification.provider, $0.notification.merchantID, $0.notification.tid, $0.notification.state]
            }, apply: { run, exported in try await run.merge(exported) })
    }

    private mutating func conflicts() async throws {
        let (source, size) = (self.source, copy.pageSize)
        try await byPages(
            { try await source.exportConflicts(afterID: $0, limit: size) }, id: \.record.id,
            keyedBy: {
                [$0.record.provider, $0.record.merchantID, $0.record.tid, $0.record.state, $0.record.newFingerprint]
            }, apply: { run, exported in try await run.merge(exported) })
    }

    private mutating func quarantine() async throws {
        let (source, size) = (self.source, copy.pageSize)
        try await byPages(
            { try await source.exportQuarantine(afterID: $0, limit: size) }, id: \.id,
            apply: { run, item in try await run.copy(item) })
    }

    /// Reads the source a page at a time, after the last row's id, and applies each page in one
    /// transaction. With `keyedBy`, a page is applied in key order, as the live path locks keys,
    /// so a copy and the running daemons cannot deadlock.
    private mutating func byPages<Item>(
        _ read: (Int64) async throws -> [Item], id: (Item) -> Int64, keyedBy key: ((Item) -> [String])? = nil,
        apply: (inout Run, Item) async throws -> Void
    ) async throws {
        var after: Int64 = 0
        while true {
            let page = try await read(after)
            guard let last = page.last else { return }
            let ordered = key.map { key in page.sorted { key($0).lexicographicallyPrecedes(key($1)) } } ?? page
            try await inTransaction { run in
                for item in ordered { try await apply(&run, item) }
            }
            after = id(last)
        }
    }

    private mutating func tossFiles() async throws {
        let all = try await source.tossFiles()
        for start in stride(from: 0, to: all.count, by: copy.pageSize) {
            let page = all[start..<min(start + copy.pageSize, all.count)]
            try await inTransaction { run in
                for progress in page { try await run.copy(progress) }
            }
        }
    }

    private mutating func payupIntents() async throws {
        let all = try await source.payupIntents(states: PayupIntent.State.allCases)
        for start in stride(from: 0, to: all.count, by: copy.pageSize) {
            let page = all[start..<min(start + copy.pageSize, all.count)]
            try await inTransaction { run in
                for intent in page { try await run.copy(intent) }
            }
        }
    }

    // MARK: - Notifications and conflicts

    private mutating func merge(_ exported: ExportedNotification) async throws {
        let n = exported.notification
        guard let key = knownKey(n.provider, n.merchantID, n.tid, n.state, table: .notifications) else { return }
        let inserted = try await connection.query(
            """
            INSERT INTO notifications (provider, merchant_id, tid, state, fingerprint, event_id, event_json,
                queue_file_name, raw_body, content_type, remote_address, peer, client, kind, order_id, amount,
                result_code, received_at, filed_at, retries, last_seen_at, conflicts_ignored)
            VALUES (\(n.provider), \(n.merchantID), \(n.tid), \(n.state), \(n.fingerprint), \(n.eventID),
                \(n.eventJSON), \(n.queueFileName), \(n.rawBody), \(n.contentType), \(n.peer), \(n.peer), \(n.client),
                \(n.kind), \(n.orderID), \(n.amount.map(Int64.init)), \(n.resultCode),
                \(n.receivedAt.unixMicroseconds), \(n.filedAt?.unixMicroseconds), \(n.retries),
                \(n.lastSeenAt?.unixMicroseconds), \(n.conflictsIgnored))
            ON CONFLICT (provider, merchant_id, tid, state) DO NOTHING
            RETURNING id
            """, logger: logger)
        var newID: Int64?
        for try await id in inserted.decode(Int64.self) { newID = id }
        if let newID {
            for retry in exported.retries {
                try await connection.query(
                    """
                    INSERT INTO retries (notification_id, received_at, peer, client)
                    VALUES (\(newID), \(retry.receivedAt.unixMicroseconds), \(retry.peer), \(retry.client))
                    """, logger: logger)
            }
            try await queue(exported.pendingOutbox, for: newID)
            summary[.notifications].copied += 1
            return
        }
        let stored = StoredVersion(
            provider: n.provider, rawBody: Array(n.rawBody), contentType: n.contentType, receivedAt: n.receivedAt,
            eventJSON: n.eventJSON)
        var version = PostgresCommitter.ConflictVersion(key: key, fingerprint: n.fingerprint, version: stored)
        version.peer = n.peer
        version.client = n.client
        // Filed as a conflict, the PG's retries of this version are that conflict's retries.
        version.retries = n.retries
        try await mergeHeld(version, recorded: .notification, table: .notifications, original: nil)
    }

    private mutating func merge(_ exported: ExportedConflict) async throws {
        let c = exported.record
        guard let key = knownKey(c.provider, c.merchantID, c.tid, c.state, table: .conflicts) else { return }
        var version = PostgresCommitter.ConflictVersion(c, key: key)
        version.storedEventJSON = exported.eventJSON
        try await mergeHeld(
            version, recorded: .conflict(storedFingerprint: c.storedFingerprint),
            table: .conflicts, original: exported)
    }

    /// A version whose key the target may hold already: decided by `LedgerMerge`.
    private mutating func mergeHeld(
        _ version: PostgresCommitter.ConflictVersion, recorded: LedgerMerge.Recorded, table: LedgerCopySummary.Table,
        original: ExportedConflict?
    ) async throws {
        let held = try await PostgresCommitter.lockHeld(
            version.key, fingerprint: version.fingerprint, on: connection, logger: logger)
        // Read again only when it may be needed: a contradiction the source never filed.
        let document =
            held.map { $0.row.fingerprint != version.fingerprint } ?? false
            ? copy.conflictEvents(
                StoredVersion(
                    provider: version.key.provider.rawValue, rawBody: Array(version.rawBody),
                    contentType: version.contentType, receivedAt: Date(unixMicroseconds: version.receivedAtMicros),
                    eventJSON: version.storedEventJSON)) : nil
        let row = Self.describe(version.key)
        switch LedgerMerge.decide(
            fingerprint: version.fingerprint, recorded: recorded, held: held?.rule,
            canBuildConflictEvent: document != nil)
        {
        case .insert:
            // A notification's key that was free was inserted before asking.
            throw PostgresLedgerError("copy-ledger: \(row) was free yet not inserted")
        case .alreadyThere:
            summary[table].alreadyThere += 1
        case .orphan:
            summary[table].ignored += 1
            absent[table, default: 0] += 1
            summary.notes.append(
                .init(
                    kind: .skipped, table: table, row: row,
                    detail: "a conflict whose notification is in neither ledger (fingerprint \(version.fingerprint))"))
        case .ignore(_, let storedFingerprint):
            summary[table].ignored += 1
            // The contradicting version stays out; a notification's key is there all the same.
            if table == .conflicts { absent[table, default: 0] += 1 }
            let why =
                document == nil
                ? "its body no longer reads as a notification, so no conflict event can be built"
                : "the key has \(LedgerRules.maximumConflictsPerKey) conflict events already"
            summary.notes.append(
                .init(
                    kind: .ignored, table: table, row: row,
                    detail:
                        "fingerprint \(version.fingerprint) contradicts the cluster's \(storedFingerprint); not filed: \(why) (it stays in the SQLite file)"
                ))
        case .copyConflict:
            guard let original, let held else { throw PostgresLedgerError("copy-ledger: \(row) is not a conflict") }
            let c = original.record
            let went = try await PostgresCommitter.fileConflict(
                version, conflictsWith: c.eventID, storedFingerprint: c.storedFingerprint,
                // A row from before conflict events gets the id its event would have had, so the
                // live path finds it filed (and counts its retries) rather than filing it again.
                conflictEventID: c.conflictEventID ?? EventID.derive(version.key, fingerprint: version.fingerprint),
                json: original.eventJSON.map { Array($0) }, fileName: original.queueFileName, queued: false,
                storedRowID: held.row.id, on: connection, logger: logger)
            if went {
                try await queue(original.pendingOutbox, for: held.row.id)
                summary[table].copied += 1
            } else {
                summary[table].alreadyThere += 1
            }
        case .fileConflict(let conflictsWith, let storedFingerprint):
            guard let held, let document else { throw PostgresLedgerError("copy-ledger: \(row) has no document") }
            let (conflictID, json) = document(held.row.eventID, held.row.amount.map(Int.init), held.row.result)
            let fileName = nextFileName(conflictID)
            _ = try await PostgresCommitter.fileConflict(
                version, conflictsWith: conflictsWith, storedFingerprint: storedFingerprint,
                conflictEventID: conflictID,
                json: json, fileName: fileName, queued: true, storedRowID: held.row.id, on: connection, logger: logger)
            summary[table].conflicts += 1
            summary.conflictEventsQueued += 1
            summary.notes.append(
                .init(
                    kind: .conflict, table: table, row: row,
                    detail:
                        "fingerprint \(version.fingerprint) contradicts the cluster's \(storedFingerprint): conflict event \(conflictID) queued"
                ))
        }
    }

    private mutating func nextFileName(_ eventID: String) -> String {
        // Strictly increasing, as the committers' names are: they sort in filing order.
        lastFiledMicros = max(Date().unixMicroseconds, lastFiledMicros + 1)
        return QueueFileName.make(filedAtMicroseconds: lastFiledMicros, eventID: eventID)
    }

    /// Only the columns every schema version has: later ones (delivery state) keep their
    /// defaults, which say "not delivered yet".
    private mutating func queue(_ rows: [ExportedOutboxRow], for notificationID: Int64) async throws {
        for outbox in rows {
            try await connection.query(
                """
                INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                VALUES (\(outbox.fileName), \(outbox.payload), \(notificationID),
                    \(outbox.queuedAtMicros ?? Date().unixMicroseconds))
                """, logger: logger)
            summary.outboxCopied += 1
        }
    }

    // MARK: - The quarantine and the sources' progress

    private mutating func copy(_ item: QuarantinedRequest) async throws {
        // No key: the same request is the same provider, reason, time, size and body.
        let inserted = try await connection.query(
            """
            INSERT INTO quarantine (provider, reason, detail, raw_body, content_type, forwarded_for, peer, client,
                path_secret_sha256, parsed, merchant_id, tid, size, received_at, released_at, released_event_id)
            SELECT \(item.provider), \(item.reason), \(item.detail), \(item.rawBody), \(item.contentType),
                \(item.forwardedFor), \(item.peer), \(item.client), \(item.pathSecretSHA256), \(item.parsed),
                \(item.merchantID), \(item.tid), \(item.size), \(item.receivedAt.unixMicroseconds),
                \(item.releasedAt?.unixMicroseconds), \(item.releasedEventID)
            WHERE NOT EXISTS (
                SELECT 1 FROM quarantine WHERE provider = \(item.provider) AND reason = \(item.reason)
                    AND received_at = \(item.receivedAt.unixMicroseconds) AND size = \(item.size)
                    AND raw_body = \(item.rawBody))
            RETURNING id
            """, logger: logger)
        var went = false
        for try await _ in inserted.decode(Int64.self) { went = true }
        if went { summary[.quarantine].copied += 1 } else { summary[.quarantine].alreadyThere += 1 }
    }

    private mutating func copy(_ progress: TossFileProgress) async throws {
        let json = String(decoding: try JSONEncoder().encode(progress), as: UTF8.self)
        let inserted = try await connection.query(
            """
            INSERT INTO toss_files (file_name, record) VALUES (\(progress.fileName), \(json)::jsonb)
            ON CONFLICT (file_name) DO NOTHING RETURNING file_name
            """, logger: logger)
        if try await returnsRow(inserted) {
            summary[.tossFiles].copied += 1
            return
        }
        let held: TossFileProgress? = try await record(
            "SELECT record::text FROM toss_files WHERE file_name = \(progress.fileName)")
        tally(.tossFiles, same: held == progress, row: progress.fileName)
    }

    private mutating func copy(_ intent: PayupIntent) async throws {
        let json = String(decoding: try JSONEncoder().encode(intent), as: UTF8.self)
        let inserted = try await connection.query(
            """
            INSERT INTO payup_intents (id, operation, transaction_id, state, created_at, record)
            VALUES (\(intent.id), \(intent.operation), \(intent.transactionID), \(intent.state.rawValue),
                \(intent.createdAtMicros), \(json)::jsonb)
            ON CONFLICT (id) DO NOTHING RETURNING id
            """, logger: logger)
        if try await returnsRow(inserted) {
            summary[.payupIntents].copied += 1
            return
        }
        let held: PayupIntent? = try await record("SELECT record::text FROM payup_intents WHERE id = \(intent.id)")
        tally(.payupIntents, same: held == intent, row: intent.id)
    }

    private mutating func tally(_ table: LedgerCopySummary.Table, same: Bool, row: String) {
        if same {
            summary[table].alreadyThere += 1
        } else {
            // Progress and intents are the cluster's own by now: its hosts act on them.
            summary[table].conflicts += 1
            summary.notes.append(
                .init(kind: .kept, table: table, row: row, detail: "the cluster holds a different record; kept it"))
        }
    }

    private func returnsRow(_ rows: PostgresRowSequence) async throws -> Bool {
        var any = false
        for try await _ in rows { any = true }
        return any
    }

    private func record<Record: Decodable>(_ query: PostgresQuery) async throws -> Record? {
        let rows = try await connection.query(query, logger: logger)
        var found: Record?
        for try await json in rows.decode(String.self) {
            found = try JSONDecoder().decode(Record.self, from: Data(json.utf8))
        }
        return found
    }

    // MARK: - The check

    /// Reads the source again and counts, page by page, the rows the target does not hold.
    /// A notification's key must be there (with its version or another); a conflict's version
    /// must be there (as a conflict or as the stored notification) unless it was left out.
    private mutating func check() async throws {
        var missing: [LedgerCopySummary.Table: Int] = [:]
        var after: Int64 = 0
        while true {
            // The rows alone: their retries and outbox rows are not checked one by one.
            let n = try await source.notifications(limit: 1000, afterRowID: after)
            guard let last = n.last else { break }
            let found = try await count(
                """
                SELECT count(*)::bigint FROM unnest(\(n.map(\.provider)), \(n.map(\.merchantID)), \(n.map(\.tid)),
                    \(n.map(\.state))) AS k(p, m, t, s)
                WHERE EXISTS (SELECT 1 FROM notifications x WHERE x.provider = k.p AND x.merchant_id = k.m
                    AND x.tid = k.t AND x.state = k.s)
                """)
            missing[.notifications, default: 0] += n.count - found
            after = last.rowID
        }
        after = 0
        while true {
            let page = try await source.exportConflicts(afterID: after, limit: 1000)
            guard let last = page.last else { break }
            let c = page.map(\.record)
            let found = try await count(
                """
                SELECT count(*)::bigint FROM unnest(\(c.map(\.provider)), \(c.map(\.merchantID)), \(c.map(\.tid)),
                    \(c.map(\.state)), \(c.map(\.newFingerprint))) AS k(p, m, t, s, f)
                WHERE EXISTS (SELECT 1 FROM conflicts x WHERE x.provider = k.p AND x.merchant_id = k.m
                        AND x.tid = k.t AND x.state = k.s AND x.new_fingerprint = k.f)
                    OR EXISTS (SELECT 1 FROM notifications x WHERE x.provider = k.p AND x.merchant_id = k.m
                        AND x.tid = k.t AND x.state = k.s AND x.fingerprint = k.f)
                """)
            missing[.conflicts, default: 0] += c.count - found
            after = last.record.id
        }
        for table in [LedgerCopySummary.Table.notifications, .conflicts] {
            missing[table] = max(0, (missing[table] ?? 0) - (absent[table] ?? 0))
        }
        after = 0
        while true {
            let page = try await source.exportQuarantine(afterID: after, limit: 1000)
            guard let last = page.last else { break }
            let bodies = page.map { Digest.hex(Digest.sha256(Array($0.rawBody))) }
            let found = try await count(
                """
                SELECT count(*)::bigint FROM unnest(\(page.map(\.provider)), \(page.map(\.reason)),
                    \(page.map { $0.receivedAt.unixMicroseconds }), \(page.map { Int64($0.size) }), \(bodies))
                    AS k(p, r, t, n, b)
                WHERE EXISTS (SELECT 1 FROM quarantine x WHERE x.provider = k.p AND x.reason = k.r
                    AND x.received_at = k.t AND x.size = k.n AND encode(sha256(x.raw_body), 'hex') = k.b)
                """)
            missing[.quarantine, default: 0] += page.count - found
            after = last.id
        }
        let files = try await source.tossFiles().map(\.fileName)
        missing[.tossFiles] =
            files.count - (try await count("SELECT count(*)::bigint FROM toss_files WHERE file_name = ANY(\(files))"))
        let intents = try await source.payupIntents(states: PayupIntent.State.allCases).map(\.id)
        missing[.payupIntents] =
            intents.count - (try await count("SELECT count(*)::bigint FROM payup_intents WHERE id = ANY(\(intents))"))
        summary.missing = missing.filter { $0.value > 0 }
    }

    private func count(_ query: PostgresQuery) async throws -> Int {
        let rows = try await connection.query(query, logger: logger)
        var n = 0
        for try await value in rows.decode(Int64.self) { n = Int(value) }
        return n
    }
}

extension PostgresCommitter.ConflictVersion {
    init(key: NotificationKey, fingerprint: String, version: StoredVersion) {
        self.key = key
        self.fingerprint = fingerprint
        rawBody = Data(version.rawBody)
        contentType = version.contentType
        receivedAtMicros = version.receivedAt.unixMicroseconds
        storedEventJSON = version.eventJSON
    }
}
