import Foundation
import GRDB

#if canImport(Glibc)
    import Glibc
#endif

/// The two ways to open the SQLite file: for writing (the daemon and the commands that change
/// things), which creates and migrates it, and for reading (the commands that only look), which
/// never writes a byte of it.
extension Ledger {
    /// Opens the database read-only (`SQLITE_OPEN_READONLY`, never `immutable=1`, which would
    /// ignore the daemon's uncommitted WAL). It never migrates:
    /// - a database at this binary's schema is read in place;
    /// - an older schema this binary knows (a host where the new package's restart was
    ///   declined) is copied through SQLite's backup API into a temporary file beside it,
    ///   migrated there, and read from there; the copy is removed on `close()`;
    /// - a newer schema is refused, naming both versions.
    public static func openReadOnly(path: String, busyTimeout: Duration = .seconds(5)) throws -> Ledger {
        guard FileManager.default.fileExists(atPath: path) else { throw LedgerError.missing(path: path) }
        var config = Configuration()
        config.label = "pgnoti.ledger.readonly"
        config.readonly = true
        config.busyMode = .timeout(seconds(busyTimeout))
        let pool = try DatabasePool(path: path, configuration: config)
        let applied = try pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
        switch try Schema.compare(applied: applied, path: path) {
        case .current:
            return try Ledger(
                path: path, pool: pool, maxBatch: 1, quarantinePolicy: QuarantinePolicy(), isReadOnly: true,
                temporaryCopy: nil)
        case .older:
            let copyPath =
                (path as NSString).deletingLastPathComponent + "/.\((path as NSString).lastPathComponent)"
                + ".readonly-\(getpid()).sqlite"
            do {
                createPrivately(copyPath)
                let copy = try DatabasePool(path: copyPath)
                try pool.backup(to: copy)
                try pool.close()
                try Schema.migrator.migrate(copy)
                return try Ledger(
                    path: path, pool: copy, maxBatch: 1, quarantinePolicy: QuarantinePolicy(), isReadOnly: true,
                    temporaryCopy: copyPath)
            } catch {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copyPath + suffix) }
                throw error
            }
        }
    }

    /// The schema version the file at `path` holds, read without writing to it; nil for a file
    /// no pgnoti has migrated yet.
    public static func schemaVersion(path: String) throws -> String? {
        var config = Configuration()
        config.readonly = true
        let pool = try DatabasePool(path: path, configuration: config)
        defer { try? pool.close() }
        let applied = try pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
        return Schema.version(of: applied)
    }

    /// The schema version this binary writes.
    public static var schemaVersion: String { Schema.current }

    static func openForWriting(_ path: String, busyTimeout: Duration) throws -> DatabasePool {
        let parent = (path as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw LedgerError.cannotCreateDirectory(path: parent, reason: "\(error)")
            }
        }
        createPrivately(path)
        var config = Configuration()
        config.label = "pgnoti.ledger"
        config.busyMode = .timeout(seconds(busyTimeout))
        // DatabasePool puts the file in WAL mode.
        let pool = try DatabasePool(path: path, configuration: config)

        // With WAL, NORMAL (which DatabasePool sets on its writer after any
        // prepareDatabase hook has run) may lose the last commits on power
        // loss. We ACK the PG right after commit, so every commit must reach
        // the disk. The writer connection lives as long as the pool, so
        // setting it once here holds for every write.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode")
            let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous")
            guard mode == "wal", sync == 2 else {
                throw DatabaseError(
                    message: "\(path): expected journal_mode=wal, synchronous=FULL; got \(mode ?? "?"), \(sync ?? -1)")
            }
        }
        let applied = try pool.read { db in try Schema.migrator.appliedIdentifiers(db) }
        _ = try Schema.compare(applied: applied, path: path)
        try Schema.migrator.migrate(pool)
        return pool
    }

    /// A new database is created 0640 whatever the umask: it holds raw bodies with names and
    /// phones, for the service's user and group only. SQLite gives the `-wal` and `-shm`
    /// sidecars the main file's mode, so they follow.
    static func createPrivately(_ path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return }  // it exists already, or SQLite will say why it cannot
        fchmod(fd, 0o640)
        Glibc.close(fd)
    }

    private static func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
