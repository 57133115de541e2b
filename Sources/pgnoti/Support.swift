import ArgumentParser
import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiLogging
import PGNotiSpool
import PGNotiStore

#if canImport(Glibc)
    import Glibc
#endif

/// `--config`, shared by every command: with it the named file, without it the sandbox state
/// under `./var`, as `serve` uses.
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "Path to pgnoti.toml. Without it: sandbox mode, state under ./var (as `pgnoti serve` without --config).")
    var config: String?

    /// Operator commands read the ledger and need no secret, so by default a secret file they
    /// cannot read does not stop them; `serve` and commands that verify pass `requiringSecrets`.
    func load(requiringSecrets: Bool = false) throws -> Config {
        guard let config else { return Config.sandbox() }
        do {
            var loader = ConfigLoader()
            loader.secretsRequired = requiringSecrets
            return try loader.load(path: config)
        } catch {
            printError("invalid configuration: \(error)")
            throw ExitCode(78)  // EX_CONFIG: systemd will not restart-loop on it
        }
    }
}

/// A command that ran and failed: its message alone and exit status 1. (A ValidationError
/// would print the usage text and exit 64, as if the command line were wrong.)
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The database a command about existing state works on, or a failure naming where it looked,
/// rather than a fresh empty ledger created at a mistyped path.
func requireDatabase(_ config: Config) throws {
    guard FileManager.default.fileExists(atPath: config.database) else {
        let whence =
            config.sandbox ? "sandbox state; pass --config for an installed pgnoti" : "database in the configuration"
        throw CommandFailure("no database at \(config.database) (\(whence))")
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("pgnoti: \(message)\n".utf8))
}

/// The ledger, intake and relay a command needs to create events the way the daemon does.
struct CommandContext {
    let config: Config
    let ledger: any LedgerStore
    /// nil with a PostgreSQL database: events wait in its outbox for delivery from there.
    let queue: QueueDirectory?
    let intake: Intake
    let logger: Logger

    /// Opens the state `config` names. Run as root, the command first becomes the owner of the
    /// state directory, so the database's sidecar files and queue files it creates stay readable
    /// by the daemon and its consumers.
    static func open(_ config: Config, creatingState: Bool = false) async throws -> CommandContext {
        let logger = Logger.json(level: config.logLevel, sink: .standardError())
        if config.postgres != nil {
            let ledger = try await openLedger(config)
            let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: logger)
            return CommandContext(config: config, ledger: ledger, queue: nil, intake: intake, logger: logger)
        }
        if !creatingState { try requireDatabase(config) }
        try StateOwner.adopt(directoryOf: config.database)
        let ledger = try Ledger.open(config)
        let queue = try QueueDirectory(root: URL(fileURLWithPath: config.queue))
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: logger)
        return CommandContext(config: config, ledger: ledger, queue: queue, intake: intake, logger: logger)
    }

    /// Files what the command committed, if nobody else holds the outbox lock; otherwise the
    /// holder (the daemon) files it within a second. Returns how many files this command wrote,
    /// or nil when it left them to the holder.
    func fileCommittedEvents() async throws -> Int? {
        guard let queue else { return nil }
        let relay = OutboxRelay(outbox: ledger, queue: queue, logger: logger, role: .command)
        if try await !relay.takeLock() {
            // The daemon keeps the lock while it runs and files within a second. Another command
            // holds it only while it files; wait for that one.
            if OutboxLock.holder(queue: queue.root.path) == .daemon { return nil }
            guard try await relay.takeLock(waitingUpTo: .seconds(5)) else { return nil }
        }
        let filed = try await relay.drain()
        await relay.releaseLock()
        return filed
    }

    func close() async {
        try? await ledger.close()
    }
}

/// Dropping root for commands that write state.
enum StateOwner {
    /// If running as root and the directory holding `path` belongs to another user, become that
    /// user (and its group) for the rest of the process.
    static func adopt(directoryOf path: String) throws {
        guard geteuid() == 0 else { return }
        let directory = (path as NSString).deletingLastPathComponent
        var info = stat()
        guard stat(directory.isEmpty ? "." : directory, &info) == 0, info.st_uid != 0 else { return }
        guard setgroups(0, nil) == 0, setgid(info.st_gid) == 0, setuid(info.st_uid) == 0 else {
            throw CommandFailure(
                "running as root, cannot become the owner (uid \(info.st_uid)) of \(directory): \(String(cString: strerror(errno)))"
            )
        }
    }
}

/// `--since` values: ISO 8601 or a span back from now.
func parseTime(_ text: String, option: String) throws -> Date {
    do {
        return try TimeSpec.parse(text, now: Date())
    } catch {
        throw ValidationError("\(option): \(error)")
    }
}

/// Fixed-width columns for terminal output.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
        }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
}
