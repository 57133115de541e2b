import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

// The commands that change what is stored wholesale: backup, purge, retention.

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of the database while the daemon runs (VACUUM INTO), mode 0600.",
        discussion: """
            `backup FILE` writes one copy. `backup --dated DIR` writes DIR/pgnoti-YYYYMMDD-HHMMSS.sqlite and
            keeps the newest --keep copies there (what pgnoti-backup.timer runs); it refuses to start when
            DIR's file system has less free space than the database's size plus min_free_bytes.
            """)

    @OptionGroup var options: ConfigOptions
    @Argument(help: "Where to write the copy; must not exist.") var file: String?
    @Option(help: "Write a dated copy into this directory instead of FILE.") var dated: String?
    @Option(help: "With --dated: how many dated copies to keep.") var keep = 14

    func validate() throws {
        guard (file == nil) != (dated == nil) else { throw ValidationError("give FILE or --dated DIR (one of them)") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1") }
    }

    func run() async throws {
        let config = try options.load()
        if let postgres = config.postgres {
            // A copy of one table set is not a backup of a shared database; PostgreSQL's own tool is.
            let url = postgres.url
            if dated != nil {
                // pgnoti-backup.timer's run: off in this mode, said once a day, not a failed unit.
                print(
                    "backup: off with a PostgreSQL database (\(config.database)); back it up with pg_dump or your PostgreSQL's own backups"
                )
                return
            }
            throw CommandFailure(
                "backup does not copy a PostgreSQL database; use pg_dump, e.g.: pg_dump --format=custom --file=pgnoti-$(date +%Y%m%d).dump --host=\(url.host) --port=\(url.port) --username=\(url.user) \(url.database)"
            )
        }
        try requireDatabase(config)
        var target = file ?? ""
        if let dated {
            try FileManager.default.createDirectory(
                atPath: dated, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let size = (try? FileManager.default.attributesOfItem(atPath: config.database)[.size] as? Int) ?? 0
            let needed = size + config.minFreeBytes
            if let free = FreeSpace.bytes(at: dated), free < needed {
                throw CommandFailure(
                    "not backing up: \(dated) has \(free) bytes free, under the database's \(size) bytes plus min_free_bytes (\(config.minFreeBytes))"
                )
            }
            target = dated + "/" + BackupName.make(Date())
        }
        guard !FileManager.default.fileExists(atPath: target) else { throw CommandFailure("\(target) already exists") }
        // The copy is the operator's file, written where they ask: no switch to the state's
        // owner, who may not be allowed to write there. (SQLite gives sidecars it creates as
        // root to the database file's owner.)
        let ledger = try Ledger.open(config)
        // The copy holds raw bodies (names, phones): nobody but its owner reads it, whatever
        // the shell's umask.
        let previous = umask(0o077)
        do {
            try await ledger.backup(to: target)
            umask(previous)
        } catch {
            umask(previous)
            try? await ledger.close()
            // A partial copy (a full disk) must not block the next try with "already exists".
            for leftover in [target, target + "-journal", target + "-wal", target + "-shm"] {
                try? FileManager.default.removeItem(atPath: leftover)
            }
            throw CommandFailure("backup to \(target) failed: \(error)")
        }
        try? await ledger.close()
        chmod(target, 0o600)
        let size = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? 0
        print("backed up \(config.database) to \(target) (\(size) bytes)")
        if let dated {
            let pruned = BackupName.prune(directory: dated, keep: keep)
            if !pruned.isEmpty {
                print(
                    "removed \(pruned.count) older cop\(pruned.count == 1 ? "y" : "ies"): \(pruned.joined(separator: ", "))"
                )
            }
        }
    }
}

/// Dated backup names sort by time, so pruning keeps the last ones by name alone.
enum BackupName {
    static func make(_ date: Date) -> String {
        "pgnoti-" + KoreanTime.compactStamp(date) + ".sqlite"
    }

    static func prune(directory: String, keep: Int) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix("pgnoti-") && $0.hasSuffix(".sqlite") }.sorted()
        let old = Array(names.dropLast(keep))
        for name in old { try? FileManager.default.removeItem(atPath: directory + "/" + name) }
        return old
    }
}

/// The choices `purge` and `retention` share: they delete, so they show what they would do and
/// act only on a confirmation.
struct DeletionOptions: ParsableArguments {
    @Flag(help: "Only print what would be purged.") var dryRun = false
    @Flag(help: "Do it without asking (required without a terminal).") var yes = false
}

/// Counts what a purge before `cutoff` would change, asks, then purges in short batches that
/// leave the daemon's ACK path free, stopping if the disk runs low.
func runPurge(_ config: Config, cutoff: Date, command: String, options: DeletionOptions) async throws {
    let ledger = try await openLedger(config)
    let candidates: PurgeCounts
    do { candidates = try await ledger.purgeCandidates(before: cutoff) } catch {
        try? await ledger.close()
        throw error
    }
    print(
        "\(options.dryRun ? "would purge" : "to purge") before \(KoreanTime.iso8601(cutoff)): \(describe(candidates))")
    if options.dryRun {
        try? await ledger.close()
        return
    }
    if !options.yes {
        guard isatty(STDIN_FILENO) == 1 else {
            try? await ledger.close()
            printError("\(command) deletes personal data for good: pass --yes to confirm, or --dry-run to look first")
            throw ExitCode(64)
        }
        FileHandle.standardError.write(Data("pgnoti: purge these? [y/N] ".utf8))
        guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
            try? await ledger.close()
            print("nothing purged")
            return
        }
    }
    let database = config.database
    let minimum = config.minFreeBytes
    let counts: PurgeCounts
    do {
        counts = try await ledger.purge(before: cutoff) {
            FreeSpace.bytes(at: (database as NSString).deletingLastPathComponent).map { $0 >= minimum } ?? true
        }
    } catch {
        try? await ledger.close()
        OperatorLog.record(command, outcome: "failed: \(error)", details: ["before": KoreanTime.iso8601(cutoff)])
        throw CommandFailure("\(command) failed: \(error)")
    }
    try? await ledger.close()
    print("purged before \(KoreanTime.iso8601(cutoff)): \(describe(counts))")
    OperatorLog.record(
        command, outcome: counts.stopped == nil ? "done" : "stopped: low on space",
        details: [
            "before": KoreanTime.iso8601(cutoff), "notifications": String(counts.notifications),
            "conflicts": String(counts.conflicts), "quarantine": String(counts.quarantine),
        ])
    if counts.stopped == .lowOnSpace {
        throw CommandFailure(
            "stopped early: free space under \(database)'s directory fell below min_free_bytes (\(minimum)); what was purged stays purged"
        )
    }
}

private func describe(_ counts: PurgeCounts) -> String {
    "\(counts.notifications) notification(s), \(counts.conflicts) conflict(s), \(counts.quarantine) quarantined request(s), \(counts.retries) retry record(s)"
}

struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove raw bodies and personal fields from old notifications and quarantine.",
        discussion: """
            Keeps dedup keys, event ids, amounts and results, so retries are still recognised and the
            ledger still answers "did this payment arrive". How long payment records must be kept is
            the merchant's legal decision. Shows the counts and asks first (--yes to skip, --dry-run
            to only look); works in short batches so the daemon keeps ACKing.
            """)

    @OptionGroup var options: ConfigOptions
    @Option(
        name: .customLong("older-than"),
        help: "ISO 8601, or an age in d, h, min or s (400d). A bare m is refused as ambiguous.")
    var olderThan: String
    @OptionGroup var deletion: DeletionOptions
    @Flag(help: "Allow an age under one day.") var force = false

    func run() async throws {
        let config = try options.load()
        let now = Date()
        let cutoff: Date
        do { cutoff = try TimeSpec.cutoff(olderThan, now: now) } catch {
            throw ValidationError("--older-than: \(error)")
        }
        if now.timeIntervalSince(cutoff) < 86_400 && !force {
            throw ValidationError(
                "--older-than \(olderThan) reaches back less than a day: that strips today's notifications; pass --force if you mean it"
            )
        }
        try await runPurge(config, cutoff: cutoff, command: "purge", options: deletion)
    }
}

struct Retention: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the configured retention policy once (what the daemon does daily).",
        discussion: """
            Purges what is older than `retention` in the configuration, as `purge --older-than` would.
            Shows the counts and asks first (--yes to skip, --dry-run to only look).
            """)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var deletion: DeletionOptions

    func run() async throws {
        let config = try options.load()
        guard let retention = config.retentionSeconds else {
            throw CommandFailure("retention is off in the configuration (set retention = \"400d\" to use it)")
        }
        try await runPurge(
            config, cutoff: Date().addingTimeInterval(-retention), command: "retention", options: deletion)
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring the database to this binary's schema, without starting the daemon.",
        discussion: """
            For a host where the package's upgrade did not restart the daemon (it refused the kept
            configuration): read-only commands already read the older schema from a migrated copy, and
            `serve` migrates when it starts, so this is needed only to migrate ahead of that. It refuses
            while a daemon runs on the database (its <database>.lock is held): stop it first.
            """)

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let config = try options.load()
        if config.postgres != nil {
            // Under pg_advisory_xact_lock: a daemon starting meanwhile waits its turn, then finds
            // the work done. Daemons already running on the older schema keep working (see the
            // rolling-upgrade order).
            let ledger = try await openLedger(config)
            try? await ledger.close()
            print("\(config.database): schema \(PostgresLedger.schemaVersion)")
            OperatorLog.record("migrate", outcome: "ok", details: ["to": "\(PostgresLedger.schemaVersion)"])
            return
        }
        try requireDatabase(config)
        try StateOwner.adopt(directoryOf: config.database)
        let lockPath = config.database + ".lock"
        guard let lock = try QueueLock.tryAcquire(path: lockPath, note: "migrate") else {
            let holder = QueueLock.holder(path: lockPath).map { " (pid \($0.pid))" } ?? ""
            throw CommandFailure(
                "a pgnoti daemon\(holder) holds \(lockPath); stop it first (systemctl stop pgnoti), then migrate")
        }
        // Held to the end: a daemon started meanwhile fails on it (systemd restarts it) rather
        // than opening a database half migrated.
        defer { withExtendedLifetime(lock) {} }
        let before = try Ledger.schemaVersion(path: config.database)
        let ledger = try Ledger.open(config)
        try? await ledger.close()
        let after = Ledger.schemaVersion
        if before == after {
            print("\(config.database): schema \(after) already; nothing to do")
        } else {
            print("\(config.database): migrated from schema \(before ?? "none") to \(after)")
        }
        OperatorLog.record("migrate", outcome: "ok", details: ["from": before ?? "none", "to": after])
    }
}
