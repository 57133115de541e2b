import Foundation
import PGNotiConfig
import PGNotiSpool
import PGNotiStore

/// Whether the daemon can take notifications now: the database is writable, the queue directory
/// is writable and filing, and both file systems have `min_free_bytes` free. A storage outage
/// makes the daemon not ready; it never stops the watchdog, so systemd does not restart-loop
/// through it. With a PostgreSQL database there is no queue directory and no local file to fill:
/// the database is the one check.
///
/// Its inputs are given, not looked up, so each check is tested on its own.
struct Readiness: Sendable {
    struct Check: Sendable, Equatable {
        var name: String
        var ok: Bool
        var detail: String
    }

    var config: Config
    /// Commits an empty transaction; throws when the database cannot be written.
    var probeDatabase: @Sendable () async throws -> Void
    /// Why the last real commit failed, if it did.
    var lastDatabaseFailure: @Sendable () -> String?
    /// nil with a PostgreSQL database.
    var queue: QueueDirectory?
    /// Why the relay's last filing failed, if it did.
    var filingError: @Sendable () -> String?
    /// How long the database probe may take: a hung fsync is a failed check, not a hung `/readyz`.
    var databaseTimeout: Duration = .seconds(3)
    var freeBytes: @Sendable (String) -> Int? = { FreeSpace.bytes(at: $0) }

    func run() async -> [Check] {
        guard queue != nil else { return [await database()] }
        return [await database(), queueCheck(), disk()]
    }

    func database() async -> Check {
        do {
            try await withTimeout(databaseTimeout) { try await probeDatabase() }
            if let failure = lastDatabaseFailure() {
                return Check(name: "database", ok: false, detail: "last commit failed: \(failure)")
            }
            return Check(name: "database", ok: true, detail: "writable")
        } catch {
            return Check(name: "database", ok: false, detail: "\(error)")
        }
    }

    func queueCheck() -> Check {
        guard let queue else { return Check(name: "queue", ok: true, detail: "none: delivered from the database") }
        do {
            try queue.probeWritable()
            if let error = filingError() {
                return Check(name: "queue", ok: false, detail: "filing fails: \(error)")
            }
            return Check(name: "queue", ok: true, detail: "writable")
        } catch {
            let filing = filingError().map { "; filing fails: \(Self.brief($0))" } ?? ""
            return Check(name: "queue", ok: false, detail: "\(error)\(filing)")
        }
    }

    func disk() -> Check {
        var check = Check(name: "disk", ok: true, detail: "")
        var details: [String] = []
        for path in [(config.database as NSString).deletingLastPathComponent, config.queue] {
            guard let free = freeBytes(path) else {
                check.ok = false
                details.append("\(path): cannot stat")
                continue
            }
            if free < config.minFreeBytes {
                check.ok = false
                details.append("\(path): \(free) bytes free, below min_free_bytes \(config.minFreeBytes)")
            } else {
                details.append("\(path): \(free / 1_048_576) MiB free")
            }
        }
        check.detail = details.joined(separator: "; ")
        return check
    }

    /// The end of a long message, where its cause is ("rename(/long/path…): Not a directory").
    static func brief(_ text: String) -> String {
        text.count > 100 ? "…" + text.suffix(99) : text
    }
}
