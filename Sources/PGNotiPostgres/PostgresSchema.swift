import Logging
import PostgresNIO

/// The tables on PostgreSQL, created and migrated by whichever daemon starts first: each
/// migration runs in one transaction holding `pg_advisory_xact_lock`, so two daemons starting at
/// once take turns, and the second finds the work done.
///
/// `pgnoti_schema` records the version and the oldest schema version a binary must know to use
/// it; a binary that knows less refuses to start, with both versions named.
enum PostgresSchema {
    /// The version this binary writes.
    static let current = 2
    /// The advisory lock migrations take. A newer database whose `oldest_usable_by` is at most
    /// `current` is still usable by this binary (an additive migration); beyond, it refuses.
    static let lockKey: Int64 = 0x7067_6e6f_7469  // "pgnoti"

    struct TooNew: Error, CustomStringConvertible {
        var found: Int
        var needs: Int
        var description: String {
            "the PostgreSQL ledger has schema \(found), which needs a pgnoti that knows schema \(needs) or newer; this one knows \(current). Upgrade this host's pgnoti (see \"Running on more than one host\" for the rolling-upgrade order)"
        }
    }

    /// Creates or migrates the tables, then checks that this binary can use them. Returns the
    /// version found.
    @discardableResult
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS pgnoti_schema (
                    version INTEGER NOT NULL, oldest_usable_by INTEGER NOT NULL, migrated_at TIMESTAMPTZ NOT NULL)
                """, logger: logger)
            let found = try await version(connection, logger: logger)
            if let (version, needs) = found, needs > current { throw TooNew(found: version, needs: needs) }
            let at = found?.version ?? 0
            for (offset, migration) in migrations.enumerated() where offset + 1 > at {
                let (version, oldestUsableBy) = (offset + 1, migration.oldestUsableBy)
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query(
                    """
                    INSERT INTO pgnoti_schema (version, oldest_usable_by, migrated_at)
                    VALUES (\(version), \(oldestUsableBy), now())
                    """, logger: logger)
            }
            return max(at, current)
        }
    }

    struct NotMigrated: Error, CustomStringConvertible {
        var database: String
        var description: String {
            "\(database) has no pgnoti tables yet: start pgnoti serve, or run pgnoti migrate, against it first"
        }
    }

    /// For a command that only reads: the schema must be there and usable; nothing is changed.
    static func checkUsable(_ connection: PostgresConnection, database: String, logger: Logger) async throws {
        let tables = try await connection.query("SELECT to_regclass('pgnoti_schema') IS NOT NULL", logger: logger)
        var exists = false
        for try await value in tables.decode(Bool.self) { exists = value }
        guard exists, let (version, needs) = try await version(connection, logger: logger) else {
            throw NotMigrated(database: database)
        }
        if needs > current { throw TooNew(found: version, needs: needs) }
    }

    /// The recorded (version, oldest usable by), or nil before the first migration.
    static func version(_ connection: PostgresConnection, logger: Logger) async throws -> (version: Int, needs: Int)? {
        let rows = try await connection.query(
            "SELECT version, oldest_usable_by FROM pgnoti_schema ORDER BY version DESC LIMIT 1", logger: logger)
        for try await (version, needs) in rows.decode((Int, Int).self) { return (version, needs) }
        return nil
    }

    /// Each version's statements, and the oldest schema version a binary must know to use the
    /// result. Version 2 only adds, so a binary that knows version 1 still takes notifications
    /// on it: a cluster is upgraded one host at a time.
    static let migrations: [(statements: [String], oldestUsableBy: Int)] = [(v1, 1), (v2, 1)]

    /// Timestamps are bigint unix microseconds, as in SQLite: exact round-trips and one code path
    /// for both engines.
    static let v1: [String] = [
        """
        CREATE TABLE notifications (
            id BIGSERIAL PRIMARY KEY, provider TEXT NOT NULL, merchant_id TEXT NOT NULL, tid TEXT NOT NULL,
            state TEXT NOT NULL, fingerprint TEXT NOT NULL, event_id TEXT NOT NULL, event_json BYTEA NOT NULL,
            queue_file_name TEXT NOT NULL, raw_body BYTEA NOT NULL, content_type TEXT, remote_address TEXT,
            peer TEXT, client TEXT, kind TEXT, order_id TEXT, amount BIGINT, result_code TEXT,
            received_at BIGINT NOT NULL, filed_at BIGINT, retries INTEGER NOT NULL DEFAULT 0, last_seen_at BIGINT,
            conflicts_ignored INTEGER NOT NULL DEFAULT 0,
            UNIQUE (provider, merchant_id, tid, state))
        """,
        "CREATE INDEX notifications_received ON notifications (received_at)",
        "CREATE INDEX notifications_event ON notifications (event_id)",
        """
        CREATE TABLE conflicts (
            id BIGSERIAL PRIMARY KEY, provider TEXT NOT NULL, merchant_id TEXT NOT NULL, tid TEXT NOT NULL,
            state TEXT NOT NULL, event_id TEXT NOT NULL, conflict_event_id TEXT, stored_fingerprint TEXT NOT NULL,
            new_fingerprint TEXT NOT NULL, raw_body BYTEA NOT NULL, content_type TEXT, remote_address TEXT,
            peer TEXT, client TEXT, received_at BIGINT NOT NULL, event_json BYTEA, queue_file_name TEXT,
            retries INTEGER NOT NULL DEFAULT 0,
            UNIQUE (provider, merchant_id, tid, state, new_fingerprint))
        """,
        """
        CREATE TABLE retries (
            id BIGSERIAL PRIMARY KEY, notification_id BIGINT NOT NULL REFERENCES notifications (id),
            received_at BIGINT NOT NULL, peer TEXT, client TEXT)
        """,
        "CREATE INDEX retries_notification ON retries (notification_id)",
        """
        CREATE TABLE outbox (
            id BIGSERIAL PRIMARY KEY,
            file_name TEXT NOT NULL CHECK (file_name <> '' AND file_name NOT IN ('.', '..')
                AND strpos(file_name, '/') = 0 AND octet_length(file_name) <= 200),
            payload BYTEA NOT NULL, notification_id BIGINT NOT NULL, queued_at BIGINT NOT NULL)
        """,
        "CREATE INDEX outbox_filing ON outbox (file_name)",
        """
        CREATE TABLE quarantine (
            id BIGSERIAL PRIMARY KEY, provider TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,
            raw_body BYTEA NOT NULL, content_type TEXT, forwarded_for TEXT, peer TEXT, client TEXT,
            path_secret_sha256 BYTEA, parsed BOOLEAN NOT NULL, merchant_id TEXT, tid TEXT, size INTEGER NOT NULL,
            received_at BIGINT NOT NULL, released_at BIGINT, released_event_id TEXT)
        """,
        "CREATE INDEX quarantine_eviction ON quarantine (parsed, id)",
        "CREATE INDEX quarantine_received ON quarantine (received_at)",
        // Toss file progress and Payup intents, kept as their JSON records: the same Codable
        // shape SQLite stores in columns, with the columns that are queried beside them.
        "CREATE TABLE toss_files (file_name TEXT PRIMARY KEY, record JSONB NOT NULL)",
        """
        CREATE TABLE payup_intents (
            id TEXT PRIMARY KEY, operation TEXT NOT NULL, transaction_id TEXT, state TEXT NOT NULL,
            created_at BIGINT NOT NULL, record JSONB NOT NULL)
        """,
        "CREATE INDEX payup_intents_state ON payup_intents (state, created_at)",
    ]

    /// Delivery from the database. The outbox keeps each event's delivery state (a row is
    /// delivered or failed, not deleted, until `keep_done_days` have passed), and one lease row
    /// says which forwarder of the cluster may claim and record: its holder, an epoch that grows
    /// with each takeover (the fencing token) and its expiry by the database's clock.
    static let v2: [String] = [
        """
        ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0, ADD COLUMN first_attempt_at BIGINT,
            ADD COLUMN next_attempt_at BIGINT, ADD COLUMN last_attempt_at BIGINT, ADD COLUMN last_error TEXT,
            ADD COLUMN delivered_at BIGINT, ADD COLUMN failed_at BIGINT, ADD COLUMN claimed_epoch BIGINT
        """,
        "CREATE INDEX outbox_undelivered ON outbox (file_name, id) WHERE delivered_at IS NULL AND failed_at IS NULL",
        "CREATE INDEX outbox_delivered ON outbox (delivered_at) WHERE delivered_at IS NOT NULL",
        "CREATE INDEX outbox_failed ON outbox (id) WHERE failed_at IS NOT NULL",
        """
        CREATE TABLE forward_lease (
            name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch BIGINT NOT NULL, expires TIMESTAMPTZ NOT NULL,
            acquired_at TIMESTAMPTZ NOT NULL, renewed_at TIMESTAMPTZ NOT NULL, in_flight INTEGER NOT NULL DEFAULT 0)
        """,
    ]
}
