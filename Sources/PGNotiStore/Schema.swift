import GRDB

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
                                   AND length(CAST(file_name AS BLOB)) <= 200),
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
        return migrator
    }
}
