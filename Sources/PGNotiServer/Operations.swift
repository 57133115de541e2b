import Foundation
import Logging
import Metrics
import PGNotiConfig
import PGNotiCore
import PGNotiForward
import PGNotiIntake
import PGNotiSpool
import PGNotiStore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The running daemon's parts, shared by the services that watch and steer it: readiness,
/// metrics, the status line, reload.
final class RunningDaemon: Sendable {
    let ledger: any LedgerStore
    let queue: QueueDirectory
    let relay: OutboxRelay
    let intake: Intake
    let front: PublicFront
    let connections: ConnectionRegistry
    let logger: Logger
    let logSink: LogSinkCounters?
    private let configBox: Mutex<Config>
    let listeningPort = Atomic<Int>(0)

    init(
        config: Config, ledger: any LedgerStore, queue: QueueDirectory, relay: OutboxRelay, intake: Intake,
        front: PublicFront, connections: ConnectionRegistry, logger: Logger, logSink: LogSinkCounters?
    ) {
        self.configBox = Mutex(config)
        self.ledger = ledger
        self.queue = queue
        self.relay = relay
        self.intake = intake
        self.front = front
        self.connections = connections
        self.logger = logger
        self.logSink = logSink
    }

    var config: Config { configBox.withLock { $0 } }

    // MARK: Readiness

    struct Check: Sendable {
        var name: String
        var ok: Bool
        var detail: String
    }

    /// The database is writable, the queue directory is writable and filing, and both file
    /// systems have `min_free_bytes` free. A storage outage makes the daemon not ready; it never
    /// stops the watchdog, so systemd does not restart-loop through it.
    func readiness() async -> [Check] {
        let config = self.config
        var checks: [Check] = []
        do {
            try await withTimeout(.seconds(3)) { try await self.ledger.probeWritable() }
            if let failure = ledger.lastFailure {
                checks.append(Check(name: "database", ok: false, detail: "last commit failed: \(failure)"))
            } else {
                checks.append(Check(name: "database", ok: true, detail: "writable"))
            }
        } catch {
            checks.append(Check(name: "database", ok: false, detail: "\(error)"))
        }
        do {
            try queue.probeWritable()
            if let error = relay.currentHealth.lastError {
                checks.append(Check(name: "queue", ok: false, detail: "filing fails: \(error)"))
            } else {
                checks.append(Check(name: "queue", ok: true, detail: "writable"))
            }
        } catch {
            let filing = relay.currentHealth.lastError.map { "; filing fails: \(Self.brief($0))" } ?? ""
            checks.append(Check(name: "queue", ok: false, detail: "\(error)\(filing)"))
        }
        var disk = Check(name: "disk", ok: true, detail: "")
        var details: [String] = []
        for path in [(config.database as NSString).deletingLastPathComponent, config.queue] {
            guard let free = FreeSpace.bytes(at: path) else {
                disk.ok = false
                details.append("\(path): cannot stat")
                continue
            }
            if free < config.minFreeBytes {
                disk.ok = false
                details.append("\(path): \(free) bytes free, below min_free_bytes \(config.minFreeBytes)")
            } else {
                details.append("\(path): \(free / 1_048_576) MiB free")
            }
        }
        disk.detail = details.joined(separator: "; ")
        checks.append(disk)
        return checks
    }

    // MARK: Status and metrics

    /// The short line systemd shows in `systemctl status`.
    func statusLine() async -> String {
        let port = listeningPort.load(ordering: .relaxed)
        let outbox = (try? await ledger.outboxStatus().depth).map(String.init) ?? "?"
        let filed = relay.currentHealth.filed
        var line = "listening on port \(port); events filed \(filed); outbox depth \(outbox)"
        // The same checks as /readyz, so an outage shows while it lasts, traffic or not.
        for check in await readiness() where !check.ok {
            let parts = check.detail.components(separatedBy: "; ").map(Self.brief)
            line += "; \(check.name): \(parts.joined(separator: "; "))"
        }
        if let error = relay.currentHealth.lastError, !line.contains("filing fails") {
            line += "; filing fails: \(Self.brief(error))"
        }
        return line
    }

    /// The end of a long message, where its cause is ("rename(/long/path…): Not a directory").
    static func brief(_ text: String) -> String {
        text.count > 100 ? "…" + text.suffix(99) : text
    }

    /// Values Prometheus reads as gauges, worked out at scrape time.
    func updateGauges() async {
        if let outbox = try? await ledger.outboxStatus() {
            Gauge(label: "pgnoti_outbox_depth").record(outbox.depth)
            Gauge(label: "pgnoti_outbox_oldest_age_seconds").record(outbox.oldest.map { -$0.timeIntervalSinceNow } ?? 0)
        }
        let lag = queue.pendingNew()
        Gauge(label: "pgnoti_queue_new_files").record(lag.count)
        Gauge(label: "pgnoti_queue_oldest_age_seconds").record(lag.oldest.map { -$0.timeIntervalSinceNow } ?? 0)
        Gauge(label: "pgnoti_connections_open").record(connections.count)
        if let counts = try? await ledger.counts() {
            Gauge(label: "pgnoti_quarantine_rows").record(counts.quarantine)
            Gauge(label: "pgnoti_quarantine_bytes").record(counts.quarantineBytes)
        }
        if let logSink { Gauge(label: "pgnoti_log_lines_dropped").record(logSink.droppedLines) }
        // The forwarder is a process of its own; its directories say how it is doing.
        // Present at 0 before any forwarder ran, so the shipped alert rules have a series.
        let forward = ForwardLayout(queue: config.queue)
        let status = FileManager.default.fileExists(atPath: forward.base) ? ForwardStatus.read(forward) : nil
        Gauge(label: "pgnoti_forward_pending").record(status?.pending ?? 0)
        // Only what a running forwarder is sending right now (its forward/in-flight.json).
        Gauge(label: "pgnoti_forward_in_flight").record(status?.inFlight ?? 0)
        Gauge(label: "pgnoti_forward_running").record(status?.running == true ? 1 : 0)
        Gauge(label: "pgnoti_forward_retrying").record(status?.retrying.count ?? 0)
        Gauge(label: "pgnoti_forward_failed").record(status?.failed.count ?? 0)
        Gauge(label: "pgnoti_forward_delivered_last_hour").record(status?.deliveredLastHour ?? 0)
        // What /readyz says, one series per check, and the space the disk check compares.
        for check in await readiness() {
            Gauge(label: "pgnoti_ready", dimensions: [("check", check.name)]).record(check.ok ? 1 : 0)
        }
        let databaseDirectory = (config.database as NSString).deletingLastPathComponent
        for path in Set([databaseDirectory.isEmpty ? "." : databaseDirectory, config.queue]) {
            Gauge(label: "pgnoti_free_bytes", dimensions: [("path", path)]).record(FreeSpace.bytes(at: path) ?? 0)
        }
        Gauge(label: "pgnoti_min_free_bytes").record(config.minFreeBytes)
        Gauge(label: "pgnoti_build_info", dimensions: [("version", PGNotiVersion.current)]).record(1)
    }

    // MARK: Reload

    /// Applies a configuration read again on SIGHUP: keys, ACK bodies, the PGs' authentication
    /// and the limits that can change under a running listener. Returns the keys that only take
    /// effect after a restart.
    func apply(_ new: Config) -> [String] {
        let old = config
        var live = new
        // The connection guard, built with the listener, drops a declared oversized body by the
        // limit it started with; the front must refuse by the same limit.
        live.maxBodyBytes = old.maxBodyBytes
        intake.replacePolicy(IntakePolicy(config: live))
        front.replaceSettings(FrontSettings(config: live))
        connections.setMaximum(new.limits.maxConnections)
        ledger.setQuarantinePolicy(QuarantinePolicy(config: new))
        var restart: [String] = []
        if old.listen != new.listen { restart.append("listen") }
        if old.adminListen != new.adminListen { restart.append("admin_listen") }
        if old.database != new.database { restart.append("database") }
        if old.queue != new.queue { restart.append("queue") }
        if old.logLevel != new.logLevel { restart.append("log_level") }
        if old.limits.readTimeoutSeconds != new.limits.readTimeoutSeconds {
            restart.append("limits.read_timeout_seconds")
        }
        if old.limits.maxHeaderBytes != new.limits.maxHeaderBytes { restart.append("limits.max_header_bytes") }
        if old.maxBodyBytes != new.maxBodyBytes { restart.append("max_body_bytes") }
        if old.limits.shutdownGraceSeconds != new.limits.shutdownGraceSeconds {
            restart.append("limits.shutdown_grace_seconds")
        }
        var kept = live
        // What cannot change live stays as it was, so the status and readiness stay true.
        kept.listen = old.listen
        kept.adminListen = old.adminListen
        kept.database = old.database
        kept.queue = old.queue
        configBox.withLock { $0 = kept }
        return restart
    }
}

/// What the log sink counts, for the metrics.
protocol LogSinkCounters: Sendable {
    var droppedLines: Int { get }
}

/// Runs `work`, failing with `TimedOut` if it takes longer than `limit`. The work is not
/// cancelled (a hung fsync cannot be), only no longer waited for.
func withTimeout<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
    let slot = OneShot<T>()
    return try await withCheckedThrowingContinuation { continuation in
        slot.set(continuation)
        Task {
            do { slot.finish(.success(try await work())) } catch { slot.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            slot.finish(.failure(TimedOut(limit: limit)))
        }
    }
}

/// A continuation resumed by whichever finishes first.
private final class OneShot<T: Sendable>: Sendable {
    private let pending = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<T, any Error>) {
        pending.withLock { $0 = continuation }
    }

    func finish(_ result: Result<T, any Error>) {
        let continuation = pending.withLock { value in
            defer { value = nil }
            return value
        }
        continuation?.resume(with: result)
    }
}

struct TimedOut: Error, CustomStringConvertible {
    let limit: Duration
    var description: String { "no answer within \(limit)" }
}
