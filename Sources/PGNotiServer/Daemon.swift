import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiLogging
import PGNotiPostgres
import PGNotiSpool
import PGNotiStore
import Prometheus
import ServiceLifecycle

/// Wires ledger, queue, relay, the public and admin listeners and the systemd services together
/// and runs them until SIGTERM/SIGINT.
public struct Daemon: Sendable {
    public let config: Config
    public let configPath: String?
    public let logger: Logger
    let logSink: LogSink?
    let notifier: SystemdNotifier

    public init(
        config: Config, configPath: String? = nil, logger: Logger, logSink: LogSink? = nil,
        notifier: SystemdNotifier = SystemdNotifier()
    ) {
        self.config = config
        self.configPath = configPath
        self.logger = logger
        self.logSink = logSink
        self.notifier = notifier
    }

    public func run() async throws {
        let enabled = config.providers.map(\.id.rawValue)
        if config.sandbox {
            logger.warning(
                "SANDBOX MODE: no --config given; using embedded defaults with Smartro's published test merchant \(Config.smartroTestMID). Not for production.",
                metadata: [
                    "database": "\(config.database)", "queue": "\(config.queue)",
                ])
        }
        logger.info(
            "starting",
            metadata: [
                "version": "\(PGNotiVersion.current)", "listen": "\(config.listen)", "database": "\(config.database)",
                "queue": "\(config.postgres == nil ? config.queue : "none: delivered from the database")",
                "providers": .array(enabled.map { .string($0) }),
                "sandbox": .stringConvertible(config.sandbox),
                "smartro_merchants": .array(config.smartro.merchantKeys.keys.sorted().map { .string($0) }),
                "pid": .stringConvertible(Int(getpid())),
            ])
        for note in config.notes { logger.notice("\(note)") }
        for warning in config.warnings { logger.warning("\(warning)") }
        // Many daemons share a PostgreSQL database by design; a SQLite file has one owner.
        let instance = config.postgres == nil ? try StartupChecks.instanceLock(database: config.database) : nil
        defer { withExtendedLifetime(instance) {} }
        try StartupChecks.portsAreFree(config)
        let registry = MetricsRegistry.bootstrapOnce()
        IntakeMetrics.register()
        Ledger.registerMetrics()
        OutboxRelay.registerMetrics()

        let ledger: any LedgerStore
        let local: LocalDelivery?
        if let postgres = config.postgres {
            // Returns at once: the daemon starts not ready, and connects and migrates once the
            // database is reachable; until then every notification is answered 500.
            ledger = PostgresLedger.starting(
                PostgresSession(settings: postgres), quarantinePolicy: QuarantinePolicy(config: config), logger: logger)
            local = nil
        } else {
            let sqlite = try Ledger.open(config)
            ledger = sqlite
            local = await LocalDelivery.start(config, outbox: sqlite, logger: logger)
        }

        let relay = local?.relay
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: logger) { relay?.wake() }
        let front = PublicFront(intake: intake, settings: FrontSettings(config: config), logger: logger)
        let connections = ConnectionRegistry(maximum: config.limits.maxConnections, logger: logger)
        let running = RunningDaemon(
            config: config, ledger: ledger, local: local, intake: intake, front: front,
            connections: connections, logger: logger, logSink: logSink)
        var quietLogger = logger
        quietLogger.logLevel = .warning
        let notifier = self.notifier
        let logger = self.logger
        let limits = config.limits
        let maxBodyBytes = config.maxBodyBytes
        let eventLoops = MultiThreadedEventLoopGroup.singleton

        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let sources = try SourceServices(config: config, intake: intake, ledger: ledger, logger: logger)
        services += sources.services
        if sources.payup != nil && config.adminListen == nil {
            logger.warning("[payup] is configured but admin_listen is off: the Payup client has no listener")
        }
        if let admin = config.adminListen {
            let adminApp = Application(
                router: AdminListener(daemon: running, registry: registry, payup: sources.payup).router(),
                configuration: .init(address: .hostname(admin.host, port: admin.port), serverName: "pgnoti-admin"),
                onServerRunning: { channel in
                    logger.info(
                        "admin listening",
                        metadata: [
                            "address": "\(channel.localAddress?.ipAddress ?? "?")",
                            "port": .stringConvertible(channel.localAddress?.port ?? -1),
                        ])
                },
                eventLoopGroupProvider: .shared(eventLoops),
                logger: quietLogger)
            services.append(.init(service: adminApp))
        } else {
            // Say so, or an operator looking for /healthz and /metrics cannot tell it is off.
            logger.info("admin listener off")
        }
        let app = Application(
            responder: front.responder,
            server: HTTPServerBuilder { responder in
                GuardedHTTPChannel(
                    responder: responder, connections: connections,
                    readTimeout: .seconds(Int64(limits.readTimeoutSeconds)), maxBodyBytes: maxBodyBytes,
                    maxHeaderBytes: limits.maxHeaderBytes)
            },
            configuration: .init(
                address: .hostname(config.listen.host, port: config.listen.port), serverName: "pgnoti",
                backlog: 1024),
            services: relay.map { [RelayService(relay: $0)] } ?? [],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? -1
                running.listeningPort.store(port, ordering: .relaxed)
                logger.info(
                    "listening",
                    metadata: [
                        "address": "\(channel.localAddress?.ipAddress ?? "?")", "port": .stringConvertible(port),
                    ])
                // Only now: the socket accepts connections, the database is open and the relay runs.
                notifier.notify("READY=1\nSTATUS=\(await running.statusLine())")
            },
            eventLoopGroupProvider: .shared(eventLoops),
            logger: quietLogger)
        services.append(.init(service: app))
        if let interval = WatchdogService.interval() {
            var probes: [(name: String, probe: @Sendable () async throws -> Void)] = [
                ("event loops", WatchdogService.eventLoops(eventLoops)),
                ("ledger writer", { await ledger.probeWriter() }),
            ]
            if let relay { probes.append(("outbox relay", { await relay.probeIO() })) }
            services.append(
                .init(
                    service: WatchdogService(
                        interval: interval, notifier: notifier,
                        probes: probes, logger: logger)))
        }
        services.append(.init(service: StatusService(daemon: running, notifier: notifier, every: .seconds(5))))
        if let retention = config.retentionSeconds {
            services.append(
                .init(
                    service: RetentionService(
                        ledger: ledger, retention: retention, minFreeBytes: config.minFreeBytes, logger: logger)))
        }
        services.append(
            .init(service: ReloadService(daemon: running, configPath: configPath, notifier: notifier, logger: logger)))
        services.append(
            .init(
                service: ShutdownAnnouncer(
                    notifier: notifier, logger: logger, connections: connections,
                    grace: .seconds(limits.shutdownGraceSeconds)),
                successTerminationBehavior: .ignore))

        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [],
                logger: quietLogger))
        do {
            try await group.run()
            await sources.payup?.shutdown()
        } catch {
            await sources.payup?.shutdown()
            logger.error("stopped on error", metadata: ["error": "\(error)"])
            _ = try? await relay?.drain()
            try? await ledger.close()
            throw error
        }
        // The relay drained on its way out; this catches anything committed after that.
        let late = (try? await relay?.drain()) ?? 0
        try await ledger.close()
        logger.info("stopped", metadata: ["filed_at_exit": .stringConvertible(late)])
    }
}

/// Runs the outbox relay for the life of the server; on shutdown it files what is committed.
struct RelayService: Service {
    let relay: OutboxRelay
    func run() async throws {
        await cancelWhenGracefulShutdown { await relay.run() }
    }
}

/// Listed last so it hears the shutdown first: tells systemd we are stopping before the server
/// starts draining connections, and bounds how long that draining may take. Requests still
/// being read are cut at once by the request guard; ones waiting for a commit get `grace`, then
/// every connection left is closed, so the daemon exits before systemd's TimeoutStopSec.
struct ShutdownAnnouncer: Service {
    let notifier: SystemdNotifier
    let logger: Logger
    let connections: ConnectionRegistry
    let grace: Duration

    func run() async throws {
        try? await gracefulShutdown()
        logger.info("shutting down: no new connections; finishing in-flight requests and filing committed events")
        notifier.notify("STOPPING=1")
        let connections = self.connections
        let logger = self.logger
        let grace = self.grace
        Task.detached {
            try await Task.sleep(for: grace)
            let closed = connections.closeAll()
            if closed > 0 {
                logger.warning(
                    "shutdown grace period over: closed connections still open",
                    metadata: ["count": .stringConvertible(closed)])
            }
        }
    }
}
