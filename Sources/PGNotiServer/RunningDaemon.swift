import Foundation
import Logging
import PGNotiConfig
import PGNotiIntake
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore
import Synchronization

/// The running daemon's parts, shared by the services that watch and steer it: readiness,
/// metrics, the status line, reload.
final class RunningDaemon: Sendable {
    let ledger: any LedgerStore
    /// The queue directory and its relay; nil with a PostgreSQL database, where events are
    /// delivered from the database.
    let local: LocalDelivery?
    /// The database the hosts share, with a PostgreSQL database: where delivery stands.
    let cluster: PostgresLedger?
    let intake: Intake
    let front: PublicFront
    let connections: ConnectionRegistry
    let logger: Logger
    let logSink: LogSinkCounters?
    private let configBox: Mutex<Config>
    let listeningPort = Atomic<Int>(0)

    init(
        config: Config, ledger: any LedgerStore, local: LocalDelivery?, intake: Intake,
        front: PublicFront, connections: ConnectionRegistry, logger: Logger, logSink: LogSinkCounters?
    ) {
        self.configBox = Mutex(config)
        self.ledger = ledger
        self.local = local
        cluster = ledger as? PostgresLedger
        self.intake = intake
        self.front = front
        self.connections = connections
        self.logger = logger
        self.logSink = logSink
    }

    var config: Config { configBox.withLock { $0 } }

    /// The checks behind `/readyz`, `pgnoti_ready` and the status line, on this daemon's parts.
    var readinessChecks: Readiness {
        let relay = local?.relay
        let ledger = self.ledger
        return Readiness(
            config: config, probeDatabase: { try await ledger.probeWritable() },
            lastDatabaseFailure: { ledger.lastFailure }, queue: local?.queue,
            filingError: { relay?.currentHealth.lastError })
    }

    func readiness() async -> [Readiness.Check] {
        await readinessChecks.run()
    }

    // MARK: Reload

    /// Applies a configuration read again on SIGHUP (what `ReloadPlan` says may change live) to
    /// the intake, the front, the connection cap and the quarantine. Returns the keys that only
    /// take effect after a restart.
    func apply(_ new: Config) -> [String] {
        let plan = ReloadPlan(old: config, new: new)
        intake.replacePolicy(IntakePolicy(config: plan.live))
        front.replaceSettings(FrontSettings(config: plan.live))
        connections.setMaximum(plan.live.limits.maxConnections)
        ledger.setQuarantinePolicy(QuarantinePolicy(config: plan.live))
        configBox.withLock { $0 = plan.live }
        return plan.restartKeys
    }
}

/// What the log sink counts, for the metrics.
protocol LogSinkCounters: Sendable {
    var droppedLines: Int { get }
}
