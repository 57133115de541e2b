import ArgumentParser
import Foundation
import PGNotiConfig
import PGNotiIntake
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

/// `pgnoti copy-ledger`: moves a host's SQLite ledger into the cluster's PostgreSQL ledger.
struct CopyLedger: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy-ledger",
        abstract: "Copy a host's SQLite ledger into a PostgreSQL ledger, merging with what it holds.",
        discussion: """
            Copies notifications (with their retries), conflicts, the quarantine, Toss file progress and
            Payup intents, then prints the counts per table and checks that the target holds every row.
            The SQLite file is opened read-only (an older schema is read from a migrated copy beside it);
            the PostgreSQL tables are created or migrated if needed.

            It merges: a row the target holds already under the same key and fingerprint is left as it is,
            so running it twice is harmless; a different version under the same key goes through the rules
            a live notification does (a conflict event, listed in the summary). Events still in the old
            outbox are delivered from the cluster; events already filed into the old queue directory are not
            sent again. Stop the old daemon and let the consumer drain its queue first (see "Running on
            more than one host" in the README).

            The password comes from --password-file (preferred: a URL shows in ps) or from the URL, never
            both. Exits 1 when the check finds rows missing in the target; a rerun finishes a copy cut short.

            --config names the old host's configuration, read only for how its PGs read a body again when a
            conflict event must be built; without it, every PG with its default settings.
            """)

    @Option(
        name: .long,
        help: ArgumentHelp("The SQLite ledger to copy (the old host's `database`).", valueName: "sqlite-file"))
    var from: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "The PostgreSQL ledger, postgresql://USER@HOST[:PORT]/DATABASE[?sslmode=…].", valueName: "url"))
    var to: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "A file holding the database password on one line (`-` reads standard input).", valueName: "file"))
    var passwordFile: String?

    /// The old host's configuration, for how its PGs' bodies are read again when a merge must
    /// build a conflict event; without it every PG with its default settings.
    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let url = try Self.target(to, passwordFile: passwordFile)
        let policy = IntakePolicy(config: try options.load())
        if let pid = Self.daemonRunning(on: from) {
            throw CommandFailure(
                "a pgnoti daemon (pid \(pid)) still runs on \(from): stop it first (systemctl stop pgnoti), and let the consumer drain its queue, then copy"
            )
        }
        let source: Ledger
        do { source = try Ledger.openReadOnly(path: from) } catch {
            throw CommandFailure("cannot read \(from): \(error)")
        }
        let summary: LedgerCopySummary
        do {
            summary = try await PostgresLedgerCopy(
                source: source, session: PostgresSession(url: url),
                conflictEvents: StoredVersionReader(policy: policy).conflictEvents, logger: commandLogger
            ).run()
            try? await source.close()
        } catch {
            try? await source.close()
            throw CommandFailure(
                "copy to \(url.redacted) stopped: \(PostgresFailure.describe(error)). What was committed stays; run the same command again to finish"
            )
        }
        print(summary.rendered(from: from, to: url.redacted))
        let problems = summary.problems
        OperatorLog.record(
            "copy-ledger", outcome: problems.isEmpty ? "ok" : "incomplete",
            details: ["from": from, "to": url.redacted, "conflicts": "\(summary.conflictEventsQueued)"])
        guard problems.isEmpty else {
            throw CommandFailure("the check after the copy failed:\n  " + problems.joined(separator: "\n  "))
        }
        print("checked: the target holds every row of the source")
    }

    /// The pid of a daemon holding `<database>.lock`, or nil. Tested with a shared lock on a
    /// read-only descriptor, let go at once: nothing is written, and a daemon starting meanwhile
    /// is not held up.
    static func daemonRunning(on database: String) -> Int32? {
        let path = database + ".lock"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        while flock(fd, LOCK_SH | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            return errno == EWOULDBLOCK ? (QueueLock.holder(path: path)?.pid ?? 0) : nil
        }
        flock(fd, LOCK_UN)
        return nil
    }

    /// `--to` with its password from exactly one place, as the configuration takes it.
    static func target(_ text: String, passwordFile: String?) throws -> PostgresURL {
        guard PostgresURL.isURL(text) else {
            throw ValidationError("--to: expected a postgresql:// URL")
        }
        var url: PostgresURL
        do { url = try PostgresURL(parsing: text) } catch { throw ValidationError("--to: \(error)") }
        if let passwordFile {
            guard url.password == nil else {
                throw ValidationError(
                    "the --to URL carries a password and \(passwordFile) holds one too; keep it in the file only (a URL shows in ps and in logs)"
                )
            }
            do { url.password = try ConfigLoader().readSecret(passwordFile, key: "--password-file") } catch {
                throw CommandFailure("\(error)")
            }
        }
        return url
    }
}
