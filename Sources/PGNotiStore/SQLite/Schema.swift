import GRDB
import PGNotiSpool

// Timestamps are INTEGER unix microseconds: exact round-trips, cheap ordering,
// and still readable in the sqlite3 shell with datetime(x / 1e6, 'unixepoch').
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE notifications (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        provider TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        tid TEXT NOT NULL,
                        state TEXT NOT NULL,
                        fingerprint TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        event_json BLOB NOT NULL,
                        queue_file_name TEXT NOT NULL,
                        raw_body BLOB NOT NULL,
                        content_type TEXT,
                        remote_address TEXT,
                        received_at INTEGER NOT NULL,
                        retries INTEGER NOT NULL DEFAULT 0,
                        last_seen_at INTEGER,
                        UNIQUE (provider, merchant_id, tid, state)
                    );

                    -- The CHECK matters: the relay writes file_name verbatim into the
                    -- queue directory, so a name with a slash must never reach it, and
                    -- a name the filesystem refuses (NAME_MAX is 255 bytes, minus the
                    -- spool's temporary suffix) would block the outbox head forever.
                    -- Better the record fails and the PG retries while someone looks.
                    CREATE TABLE outbox (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        file_name TEXT NOT NULL
                            CHECK (file_name <> '' AND file_name NOT IN ('.', '..')
                                   AND instr(file_name, '/') = 0
                                   AND length(CAST(file_name AS BLOB)) <= \(QueueFileName.maximumLength)),
                        payload BLOB NOT NULL,
                        notification_id INTEGER NOT NULL
                    );

                    CREATE TABLE conflicts (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        provider TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        tid TEXT NOT NULL,
                        state TEXT NOT NULL,
                        event_id TEXT NOT NULL,
                        stored_fingerprint TEXT NOT NULL,
                        new_fingerprint TEXT NOT NULL,
                        raw_body BLOB NOT NULL,
                        content_type TEXT,
                        remote_address TEXT,
                        received_at INTEGER NOT NULL
                    );

                    CREATE TABLE rejected (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        provider TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        raw_body BLOB NOT NULL,
                        content_type TEXT,
                        remote_address TEXT,
                        received_at INTEGER NOT NULL
                    );
                    """)
        }
        // v2: peer and client beside each other (a TLS proxy hides the client), the facts the
        // operator CLI filters on as columns, conflict events, and `rejected` grown into a
        // quarantine that can be released. Every v1 row is kept.
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE notifications ADD COLUMN peer TEXT;
                    ALTER TABLE notifications ADD COLUMN client TEXT;
                    ALTER TABLE notifications ADD COLUMN kind TEXT;
                    ALTER TABLE notifications ADD COLUMN order_id TEXT;
                    ALTER TABLE notifications ADD COLUMN amount INTEGER;
                    ALTER TABLE notifications ADD COLUMN result_code TEXT;
                    ALTER TABLE notifications ADD COLUMN filed_at INTEGER;
                    ALTER TABLE notifications ADD COLUMN conflicts_ignored INTEGER NOT NULL DEFAULT 0;
                    UPDATE notifications SET
                        peer = remote_address, client = remote_address,
                        kind = json_extract(event_json, '$.kind'),
                        order_id = json_extract(event_json, '$.order_id'),
                        amount = json_extract(event_json, '$.amount'),
                        result_code = json_extract(event_json, '$.result_code'),
                        filed_at = received_at
                    WHERE json_valid(event_json);
                    CREATE INDEX notifications_received ON notifications (received_at);
                    CREATE INDEX notifications_tid ON notifications (tid);
                    CREATE INDEX notifications_order ON notifications (order_id);
                    CREATE INDEX notifications_event ON notifications (event_id);

                    ALTER TABLE conflicts ADD COLUMN peer TEXT;
                    ALTER TABLE conflicts ADD COLUMN client TEXT;
                    ALTER TABLE conflicts ADD COLUMN conflict_event_id TEXT;
                    ALTER TABLE conflicts ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE conflicts ADD COLUMN event_json BLOB;
                    ALTER TABLE conflicts ADD COLUMN queue_file_name TEXT;
                    UPDATE conflicts SET peer = remote_address, client = remote_address;
                    CREATE INDEX conflicts_key ON conflicts (provider, merchant_id, tid, state, new_fingerprint);

                    -- Each PG retry of a stored notification (the first ones; the count goes on
                    -- in notifications.retries), for `pgnoti events show`.
                    CREATE TABLE retries (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        notification_id INTEGER NOT NULL,
                        received_at INTEGER NOT NULL,
                        peer TEXT,
                        client TEXT
                    );
                    CREATE INDEX retries_notification ON retries (notification_id);

                    -- When a row entered the outbox, for the age of the oldest unfiled event.
                    ALTER TABLE outbox ADD COLUMN queued_at INTEGER;

                    CREATE TABLE quarantine (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        provider TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        detail TEXT NOT NULL,
                        raw_body BLOB NOT NULL,
                        content_type TEXT,
                        forwarded_for TEXT,
                        peer TEXT,
                        client TEXT,
                        -- SHA-256 of the path secret the request presented (NULL: none), so a
                        -- release can check it against the current secrets without storing it.
                        path_secret_sha256 BLOB,
                        -- 1 when the body read as a notification (it failed authentication or
                        -- verification); 0 for garbage, which is evicted first.
                        parsed INTEGER NOT NULL DEFAULT 0,
                        merchant_id TEXT,
                        tid TEXT,
                        size INTEGER NOT NULL,
                        received_at INTEGER NOT NULL,
                        released_at INTEGER,
                        released_event_id TEXT
                    );
                    INSERT INTO quarantine (provider, reason, detail, raw_body, content_type, peer, client,
                        size, received_at)
                    SELECT provider, reason, detail, raw_body, content_type, remote_address, remote_address,
                        length(raw_body), received_at FROM rejected ORDER BY id;
                    DROP TABLE rejected;
                    CREATE INDEX quarantine_eviction ON quarantine (parsed, id);
                    CREATE INDEX quarantine_reason ON quarantine (reason, received_at);
                    """)
        }
        // v3: the sources that call no URL of ours. How far each Toss file has been read (the
        // pushes are cumulative), and Payup calls journaled before they are sent.
        migrator.registerMigration("v3") { db in
            try db.execute(
                sql: """
                    CREATE TABLE toss_files (
                        file_name TEXT PRIMARY KEY,
                        -- Bytes and lines read so far, and the SHA-256 of those bytes: a push
                        -- that changes them is a rewrite and is read again from the start.
                        ingested_bytes INTEGER NOT NULL,
                        ingested_lines INTEGER NOT NULL,
                        prefix_sha256 BLOB NOT NULL,
                        size INTEGER NOT NULL,
                        rows INTEGER NOT NULL DEFAULT 0,
                        updated_at INTEGER NOT NULL,
                        finalized_at INTEGER
                    );

                    -- No card data: order, amount and time only.
                    CREATE TABLE payup_intents (
                        id TEXT PRIMARY KEY,
                        operation TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        order_number TEXT,
                        amount TEXT,
                        transaction_id TEXT,
                        timestamp TEXT NOT NULL,
                        state TEXT NOT NULL,
                        response_code TEXT,
                        response_message TEXT,
                        event_id TEXT,
                        error TEXT,
                        created_at INTEGER NOT NULL,
                        updated_at INTEGER NOT NULL
                    );
                    CREATE INDEX payup_intents_state ON payup_intents (state, created_at);
                    """)
        }
        // v4-toss-tail: a Toss file's last line without its newline is taken only once its day
        // is over and the file has not changed for final_after_minutes; a pulled body has no
        // modification time, so how long it has been unchanged is kept here.
        migrator.registerMigration("v4-toss-tail") { db in
            try db.execute(
                sql: """
                    ALTER TABLE toss_files ADD COLUMN content_sha256 BLOB;
                    ALTER TABLE toss_files ADD COLUMN content_since INTEGER;
                    ALTER TABLE toss_files ADD COLUMN pending_line INTEGER;
                    ALTER TABLE toss_files ADD COLUMN tail_sha256 BLOB;
                    """)
        }
        return migrator
    }

    /// The version this binary writes: its last migration.
    static var current: String { migrator.migrations.last! }

    /// A database's version: the last of its migrations in this binary's order, or, for one
    /// written by a newer binary, the latest of those this binary does not know.
    static func version(of applied: Set<String>) -> String? {
        let unknown = applied.subtracting(migrator.migrations)
        if let newest = unknown.sorted().last { return newest }
        return migrator.migrations.last { applied.contains($0) }
    }

    enum Comparison { case current, older }

    /// Whether this binary can use a database with these migrations applied; throws for a newer
    /// one, naming both versions.
    static func compare(applied: Set<String>, path: String) throws -> Comparison {
        let known = migrator.migrations
        let unknown = applied.subtracting(known)
        guard unknown.isEmpty else {
            throw LedgerError.newerSchema(path: path, found: version(of: applied) ?? "?", known: current)
        }
        return applied.count == known.count ? .current : .older
    }
}
