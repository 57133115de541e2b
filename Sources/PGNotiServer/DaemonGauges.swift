import Foundation
import Logging
import Metrics
import PGNotiCore
import PGNotiForward
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore

/// What the daemon reports about itself: the status line systemd shows and the gauges
/// Prometheus reads.
extension RunningDaemon {
    /// The short line systemd shows in `systemctl status`.
    func statusLine() async -> String {
        let port = listeningPort.load(ordering: .relaxed)
        let outbox = (try? await ledger.outboxStatus().depth).map(String.init) ?? "?"
        var line: String
        if let relay = local?.relay {
            line = "listening on port \(port); events filed \(relay.currentHealth.filed); outbox depth \(outbox)"
        } else {
            line = "listening on port \(port); PostgreSQL \(config.database); outbox depth \(outbox)"
        }
        // The same checks as /readyz, so an outage shows while it lasts, traffic or not.
        for check in await readiness() where !check.ok {
            let parts = check.detail.components(separatedBy: "; ").map(Readiness.brief)
            line += "; \(check.name): \(parts.joined(separator: "; "))"
        }
        if let error = local?.relay.currentHealth.lastError, !line.contains("filing fails") {
            line += "; filing fails: \(Readiness.brief(error))"
        }
        return line
    }

    /// Values Prometheus reads as gauges, worked out at scrape time.
    func updateGauges() async {
        if let outbox = try? await ledger.outboxStatus() {
            Gauge(label: "pgnoti_outbox_depth").record(outbox.depth)
            Gauge(label: "pgnoti_outbox_oldest_age_seconds").record(outbox.oldest.map { -$0.timeIntervalSinceNow } ?? 0)
        }
        if let queue = local?.queue {
            let lag = queue.pendingNew()
            Gauge(label: "pgnoti_queue_new_files").record(lag.count)
            Gauge(label: "pgnoti_queue_oldest_age_seconds").record(lag.oldest.map { -$0.timeIntervalSinceNow } ?? 0)
        }
        Gauge(label: "pgnoti_connections_open").record(connections.count)
        if let counts = try? await ledger.counts() {
            Gauge(label: "pgnoti_quarantine_rows").record(counts.quarantine)
            Gauge(label: "pgnoti_quarantine_bytes").record(counts.quarantineBytes)
        }
        if let logSink { Gauge(label: "pgnoti_log_lines_dropped").record(logSink.droppedLines) }
        // The forwarder is a process of its own; its directories say how it is doing, or, in a
        // cluster, the database, the same figures on every host. Present at 0 before any
        // forwarder ran, so the shipped alert rules have a series.
        let forward = ForwardLayout(queue: config.queue)
        let status: ForwardStatus?
        if let cluster {
            status = try? await cluster.forwardStatus()
        } else {
            status = FileManager.default.fileExists(atPath: forward.base) ? ForwardStatus.read(forward) : nil
        }
        // Which host delivers: in a cluster, the one whose forwarder holds the lease; on one
        // host, this one while its forwarder holds the queue's lock.
        let held = status.map { $0.running && ($0.holder.map(DatabaseEventSource.isOnThisHost) ?? true) } ?? false
        Gauge(label: "pgnoti_forward_lease_held").record(held ? 1 : 0)
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
        if local != nil {
            let databaseDirectory = (config.database as NSString).deletingLastPathComponent
            for path in Set([databaseDirectory.isEmpty ? "." : databaseDirectory, config.queue]) {
                Gauge(label: "pgnoti_free_bytes", dimensions: [("path", path)]).record(FreeSpace.bytes(at: path) ?? 0)
            }
        }
        Gauge(label: "pgnoti_min_free_bytes").record(config.minFreeBytes)
        Gauge(label: "pgnoti_build_info", dimensions: [("version", PGNotiVersion.current)]).record(1)
    }
}
