import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import PostgresNIO
import Synchronization

/// The SQL behind one group-commit transaction on PostgreSQL. It asks `LedgerRules` and
/// `QuarantineEviction` what to do, as the SQLite committer does, and leaves the database to
/// enforce what must hold across hosts:
/// - a key is claimed by `INSERT … ON CONFLICT DO NOTHING` on the unique (provider, MID, TID,
///   state); a host that loses the race sees the winner's row and takes the duplicate path;
/// - the stored row is locked (`FOR UPDATE`) before a retry or a conflict is counted, so two
///   hosts filing conflicts for one key take turns and the per-key cap holds;
/// - entries are applied in key order, so two hosts' batches lock keys in the same order and
///   cannot deadlock; results go back in submission order;
/// - nothing is reported until COMMIT has returned: an error anywhere, the COMMIT's included
///   (a dropped connection leaves its outcome unknown), fails the whole batch, so no caller ACKs.
final class PostgresCommitter: BatchCommitter, Sendable {
    typealias Work = @Sendable (PostgresConnection) async throws -> Void

    struct Local {
        var lastFiledMicros: Int64 = 0
        var lastAgeSweep = Date.distantPast
    }

    let connections: PostgresConnections
    let logger: Logger
    let local = Mutex(Local())
    let policy: Mutex<QuarantinePolicy>
    /// A transaction still running after this is stuck (a partition without a reset): its
    /// session is closed, which leaves the outcome unknown. Its callers were answered without
    /// an ACK long before (`PostgresLedger.answerWithin`), so a retry finds it either committed
    /// (a duplicate) or not (a fresh insert).
    static let stuckAfter: Duration = .seconds(15)

    init(connections: PostgresConnections, policy: QuarantinePolicy, logger: Logger) {
        self.connections = connections
        self.policy = Mutex(policy)
        self.logger = logger
    }

    /// Called on the writer's own thread, which may block: it waits here for the transaction,
    /// run on the connection's event loop.
    func commit(_ batch: CommitBatch<Work>) -> Result<CommitOutcome, any Error> {
        let result = Mutex<Result<CommitOutcome, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<CommitOutcome, any Error>
            do { outcome = .success(try await self.transaction(batch)) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        return result.withLock { $0! }
    }

    private func transaction(_ batch: CommitBatch<Work>) async throws -> CommitOutcome {
        let connection = try connections.writer
        let finished = Mutex(false)
        let logger = self.logger
        let watchdog = Task {
            try await Task.sleep(for: Self.stuckAfter)
            guard !finished.withLock({ $0 }) else { return }
            logger.error(
                "a PostgreSQL transaction is stuck; closing its session (its outcome is unknown, nothing was ACKed)")
            try? await connection.close()
        }
        defer {
            finished.withLock { $0 = true }
            watchdog.cancel()
        }
        try await connection.query("BEGIN", logger: logger)
        do {
            var outcome = CommitOutcome()
            // Key order for the locks; submission order for file names and results.
            let names = batch.records.map { nextFileName($0.eventID) }
            let order = batch.records.indices.sorted {
                Self.sortKey(batch.records[$0]).lexicographicallyPrecedes(Self.sortKey(batch.records[$1]))
            }
            var records = [Result<RecordOutcome, any Error>?](repeating: nil, count: batch.records.count)
            let accepted = try await claimNew(
                order.map { ($0, batch.records[$0], names[$0]) }, on: connection)
            for index in order {
                let entry = batch.records[index]
                records[index] =
                    accepted.contains(index)
                    ? .success(.accepted(eventID: entry.eventID, queueFileName: names[index]))
                    : .success(try await applyHeld(entry, fileName: names[index], on: connection))
            }
            outcome.records = records.map { $0! }
            for work in batch.writes {
                try await work(connection)
                outcome.writes.append(.success(()))
            }
            for entry in batch.quarantine { outcome.quarantineIDs.append(try await insert(entry, on: connection)) }
            let sweep = local.withLock { $0.lastAgeSweep.timeIntervalSinceNow < -3600 }
            if !batch.quarantine.isEmpty || sweep { outcome.evicted = try await evict(ageSweep: sweep, on: connection) }
            try await connection.query("COMMIT", logger: logger)
            return outcome
        } catch {
            // Best effort: a broken connection has already ended the transaction.
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    static func sortKey(_ entry: LedgerEntry) -> [String] {
        [entry.key.provider.rawValue, entry.key.merchantID, entry.key.tid, entry.key.state]
    }

    private func nextFileName(_ eventID: String) -> String {
        local.withLock { local in
            // Strictly increasing even if the clock steps back: names sort in filing order.
            let micros = max(Date().unixMicroseconds, local.lastFiledMicros + 1)
            local.lastFiledMicros = micros
            return QueueFileName.make(filedAtMicroseconds: micros, eventID: eventID)
        }
    }

    // MARK: - One notification

    /// Claims every key of the batch that is new, with its outbox row, in one statement: the
    /// rows in key order, `ON CONFLICT DO NOTHING` leaving a key another transaction holds to
    /// that transaction (once it commits, this entry is a duplicate below). Returns the indices
    /// accepted. (`LedgerRules.decide` with nothing held is always `.new`: the database decides
    /// that case here, atomically across hosts.) Every entry's document is built, though a held
    /// key's is then unused: building it costs less than a look-up round trip before the insert.
    private func claimNew(
        _ entries: [(index: Int, entry: LedgerEntry, fileName: String)], on connection: PostgresConnection
    ) async throws -> Set<Int> {
        guard !entries.isEmpty else { return [] }
        let now = Date().unixMicroseconds
        var binds = PostgresBindings(capacity: entries.count * 19 + 1)
        try binds.append(now)
        var rows: [String] = []
        rows.reserveCapacity(entries.count)
        for (_, entry, fileName) in entries {
            let first = binds.count + 1
            rows.append("(" + (first..<first + 19).map { "$\($0)" }.joined(separator: ",") + ")")
            let k = entry.key
            try binds.append(k.provider.rawValue)
            try binds.append(k.merchantID)
            try binds.append(k.tid)
            try binds.append(k.state)
            try binds.append(entry.fingerprint)
            try binds.append(entry.eventID)
            try binds.append(Data(entry.eventJSON()))
            try binds.append(fileName)
            try binds.append(Data(entry.rawBody))
            try binds.append(entry.contentType)
            try binds.append(entry.peer)
            try binds.append(entry.peer)
            try binds.append(entry.client)
            try binds.append(entry.kind)
            try binds.append(entry.orderID)
            try binds.append(entry.amount.map(Int64.init))
            try binds.append(entry.resultCode)
            try binds.append(entry.receivedAt.unixMicroseconds)
            try binds.append(now)
        }
        let sql = """
            WITH claimed AS (
                INSERT INTO notifications (provider, merchant_id, tid, state, fingerprint, event_id, event_json,
                    queue_file_name, raw_body, content_type, remote_address, peer, client, kind, order_id, amount,
                    result_code, received_at, filed_at)
                VALUES \(rows.joined(separator: ","))
                ON CONFLICT (provider, merchant_id, tid, state) DO NOTHING
                RETURNING id, queue_file_name),
            filed AS (
                INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                SELECT queue_file_name, ''::bytea, id, $1 FROM claimed)
            SELECT queue_file_name FROM claimed
            """
        let claimed = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
        var names = Set<String>()
        for try await name in claimed.decode(String.self) { names.insert(name) }
        return Set(entries.filter { names.contains($0.fileName) }.map(\.index))
    }

    /// An entry whose key is held already: a retry, a conflict, or one past the cap.
    private func applyHeld(_ entry: LedgerEntry, fileName: String, on connection: PostgresConnection) async throws
        -> RecordOutcome
    {
        let now = Date().unixMicroseconds
        guard
            let (stored, held, filedConflictRowID) = try await Self.lockHeld(
                entry.key, fingerprint: entry.fingerprint, on: connection, logger: logger)
        else {
            // ON CONFLICT skipped it, so a committed row held the key; rows are never deleted.
            throw PostgresLedgerError("notification \(entry.eventID) held by a row that cannot be read")
        }
        switch LedgerRules.decide(
            fingerprint: entry.fingerprint, held: held, canBuildConflictEvent: entry.conflictEvent != nil)
        {
        case .new:
            // Unreachable with a row held; the database decided "new" above.
            throw PostgresLedgerError("the ledger rule called a held key new")
        case .retryOfStored(let eventID):
            try await connection.query(
                "UPDATE notifications SET retries = retries + 1, last_seen_at = \(now) WHERE id = \(stored.id)",
                logger: logger)
            if LedgerRules.keepsRetryDetail(retriesBefore: stored.retries) {
                try await connection.query(
                    """
                    INSERT INTO retries (notification_id, received_at, peer, client)
                    VALUES (\(stored.id), \(entry.receivedAt.unixMicroseconds), \(entry.peer), \(entry.client))
                    """, logger: logger)
            }
            return .duplicate(eventID: eventID)
        case .retryOfConflict(let eventID):
            try await connection.query(
                "UPDATE conflicts SET retries = retries + 1 WHERE id = \(filedConflictRowID!)", logger: logger)
            return .duplicate(eventID: eventID)
        case .ignoreConflict(let conflictsWith, let storedFingerprint):
            let rows = try await connection.query(
                """
                UPDATE notifications SET conflicts_ignored = conflicts_ignored + 1 WHERE id = \(stored.id)
                RETURNING conflicts_ignored
                """, logger: logger)
            var ignored = 0
            for try await n in rows.decode(Int.self) { ignored = n }
            return .conflictIgnored(
                conflictsWith: conflictsWith, storedFingerprint: storedFingerprint, ignored: ignored)
        case .fileConflict(let conflictsWith, let storedFingerprint):
            let (conflictID, json) = entry.conflictEvent!(stored.eventID, stored.amount.map(Int.init), stored.result)
            let filed = try await Self.fileConflict(
                ConflictVersion(entry), conflictsWith: conflictsWith, storedFingerprint: storedFingerprint,
                conflictEventID: conflictID, json: json, fileName: fileName, queued: true, storedRowID: stored.id,
                on: connection, logger: logger)
            // The rules saw no filed conflict for this version, so nothing can hold its place.
            guard filed else { throw PostgresLedgerError("conflict \(conflictID) could not be filed") }
            return .conflict(
                eventID: conflictID, conflictsWith: conflictsWith, storedFingerprint: storedFingerprint,
                queueFileName: fileName)
        }
    }

    /// The row stored under a key, as the rules read it.
    struct HeldRow: Sendable {
        var id: Int64
        var eventID: String
        var fingerprint: String
        var amount: Int64?
        var result: String?
        var retries: Int
    }

    /// Locks the row under `key` (`FOR UPDATE`: two hosts counting or filing for one key take
    /// turns, so the per-key cap holds) and reads what `LedgerRules` needs about it for a version
    /// with `fingerprint`. The conflict rows are read only when the version differs. Nil when the
    /// key holds nothing. Shared by the live path and `copy-ledger`'s merge.
    static func lockHeld(
        _ k: NotificationKey, fingerprint: String, on connection: PostgresConnection, logger: Logger
    ) async throws -> (row: HeldRow, rule: LedgerRules.Held, filedConflictRowID: Int64?)? {
        let storedRows = try await connection.query(
            """
            SELECT id, event_id, fingerprint, amount, result_code, retries FROM notifications
            WHERE provider = \(k.provider.rawValue) AND merchant_id = \(k.merchantID) AND tid = \(k.tid)
                AND state = \(k.state)
            FOR UPDATE
            """, logger: logger)
        var found: HeldRow?
        for try await (id, eventID, stored, amount, result, retries) in storedRows.decode(
            (Int64, String, String, Int64?, String?, Int).self)
        {
            found = HeldRow(
                id: id, eventID: eventID, fingerprint: stored, amount: amount, result: result, retries: retries)
        }
        guard let stored = found else { return nil }
        var held = LedgerRules.Held(eventID: stored.eventID, fingerprint: stored.fingerprint)
        var filedConflictRowID: Int64?
        if stored.fingerprint != fingerprint {
            let filed = try await connection.query(
                """
                SELECT id, conflict_event_id FROM conflicts
                WHERE provider = \(k.provider.rawValue) AND merchant_id = \(k.merchantID) AND tid = \(k.tid)
                    AND state = \(k.state) AND new_fingerprint = \(fingerprint) AND conflict_event_id IS NOT NULL
                """, logger: logger)
            for try await (id, eventID) in filed.decode((Int64, String).self) {
                filedConflictRowID = id
                held.filedConflictEventID = eventID
            }
            let count = try await connection.query(
                """
                SELECT count(*)::int FROM conflicts
                WHERE provider = \(k.provider.rawValue) AND merchant_id = \(k.merchantID) AND tid = \(k.tid)
                    AND state = \(k.state) AND conflict_event_id IS NOT NULL
                """, logger: logger)
            for try await n in count.decode(Int.self) { held.filedConflicts = n }
        }
        return (stored, held, filedConflictRowID)
    }

    /// A version that contradicts the stored one, as a conflict row keeps it.
    struct ConflictVersion: Sendable {
        var key: NotificationKey
        var fingerprint: String
        var rawBody: Data
        var contentType: String?
        var peer: String?
        var client: String?
        var receivedAtMicros: Int64
        var retries = 0
        /// The event document stored with the version (a merge reads its test flags from it).
        var storedEventJSON: Data?

        init(_ entry: LedgerEntry) {
            key = entry.key
            fingerprint = entry.fingerprint
            rawBody = Data(entry.rawBody)
            contentType = entry.contentType
            peer = entry.peer
            client = entry.client
            receivedAtMicros = entry.receivedAt.unixMicroseconds
        }

        init(_ record: ConflictRecord, key: NotificationKey) {
            self.key = key
            fingerprint = record.newFingerprint
            rawBody = record.rawBody
            contentType = record.contentType
            peer = record.peer
            client = record.client
            receivedAtMicros = record.receivedAt.unixMicroseconds
            retries = record.retries
        }
    }

    /// Files a conflict row and, when `queued`, its event in the outbox (which names only the
    /// columns every schema version has, so later columns keep their defaults). Returns whether a
    /// row went in: a row already there under the key and fingerprint (one from before conflict
    /// events, which the rules do not count) is left alone.
    static func fileConflict(
        _ version: ConflictVersion, conflictsWith: String, storedFingerprint: String, conflictEventID: String,
        json: [UInt8]?, fileName: String?, queued: Bool, storedRowID: Int64, on connection: PostgresConnection,
        logger: Logger
    ) async throws -> Bool {
        let k = version.key
        let inserted = try await connection.query(
            """
            INSERT INTO conflicts (provider, merchant_id, tid, state, event_id, conflict_event_id,
                stored_fingerprint, new_fingerprint, raw_body, content_type, remote_address, peer, client,
                received_at, event_json, queue_file_name, retries)
            VALUES (\(k.provider.rawValue), \(k.merchantID), \(k.tid), \(k.state), \(conflictsWith),
                \(conflictEventID), \(storedFingerprint), \(version.fingerprint), \(version.rawBody),
                \(version.contentType), \(version.peer), \(version.peer), \(version.client),
                \(version.receivedAtMicros), \(json.map { Data($0) }), \(fileName), \(version.retries))
            ON CONFLICT (provider, merchant_id, tid, state, new_fingerprint) DO NOTHING
            RETURNING id
            """, logger: logger)
        var went = false
        for try await _ in inserted.decode(Int64.self) { went = true }
        if went, queued, let json, let fileName {
            try await connection.query(
                """
                INSERT INTO outbox (file_name, payload, notification_id, queued_at)
                VALUES (\(fileName), \(Data(json)), \(storedRowID), \(Date().unixMicroseconds))
                """, logger: logger)
        }
        return went
    }

    // MARK: - The quarantine

    private func insert(_ entry: QuarantineEntry, on connection: PostgresConnection) async throws -> Int64 {
        let rows = try await connection.query(
            """
            INSERT INTO quarantine (provider, reason, detail, raw_body, content_type, forwarded_for, peer, client,
                path_secret_sha256, parsed, merchant_id, tid, size, received_at)
            VALUES (\(entry.provider), \(entry.reason), \(entry.detail), \(Data(entry.rawBody)), \(entry.contentType),
                \(entry.forwardedFor), \(entry.peer), \(entry.client), \(entry.pathSecretSHA256.map { Data($0) }),
                \(entry.parsed), \(entry.merchantID), \(entry.tid), \(entry.rawBody.count),
                \(entry.receivedAt.unixMicroseconds))
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int64.self) { return id }
        throw PostgresLedgerError("INSERT INTO quarantine returned no id")
    }

    /// Keeps the quarantine inside its policy; `QuarantineEviction` says what goes. The totals are
    /// read each time: other hosts add to the same table.
    private func evict(ageSweep: Bool, on connection: PostgresConnection) async throws -> Int {
        let policy = self.policy.withLock { $0 }
        var evicted = 0
        if ageSweep {
            let cutoff = QuarantineEviction.ageCutoff(now: Date(), policy: policy).unixMicroseconds
            let rows = try await connection.query(
                "WITH gone AS (DELETE FROM quarantine WHERE received_at < \(cutoff) RETURNING 1) SELECT count(*)::int FROM gone",
                logger: logger)
            for try await n in rows.decode(Int.self) { evicted += n }
            local.withLock { $0.lastAgeSweep = Date() }
        }
        let totals = try await connection.query(
            "SELECT coalesce(sum(length(raw_body)), 0)::bigint, count(*)::bigint FROM quarantine", logger: logger)
        var bytes = 0
        var count = 0
        for try await (b, n) in totals.decode((Int64, Int64).self) { (bytes, count) = (Int(b), Int(n)) }
        guard QuarantineEviction.isOver(bytes: bytes, rows: count, policy: policy) else { return evicted }
        // Candidates in `QuarantineEviction.precedes` order (garbage first, then by id), a page
        // at a time until the totals fit.
        var victims: [Int64] = []
        var after: (parsed: Bool, id: Int64) = (false, 0)
        var page: [QuarantineEviction.Candidate] = []
        var exhausted = false
        let result = try await QuarantineEviction.asyncVictims(bytes: bytes, rows: count, policy: policy) {
            if page.isEmpty && !exhausted {
                let rows = try await connection.query(
                    """
                    SELECT id, parsed, length(raw_body) FROM quarantine
                    WHERE (parsed, id) > (\(after.parsed), \(after.id)) ORDER BY parsed, id LIMIT 500
                    """, logger: logger)
                for try await (id, parsed, size) in rows.decode((Int64, Bool, Int).self) {
                    page.append(QuarantineEviction.Candidate(id: id, parsed: parsed, bytes: size))
                }
                exhausted = page.count < 500
                if let last = page.last { after = (last.parsed, last.id) }
            }
            return page.isEmpty ? nil : page.removeFirst()
        }
        victims = result.ids
        if !victims.isEmpty {
            try await connection.query("DELETE FROM quarantine WHERE id = ANY(\(victims))", logger: logger)
        }
        return evicted + victims.count
    }
}

struct PostgresLedgerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
