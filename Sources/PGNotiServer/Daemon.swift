import Foundation
import Hummingbird
import Logging
import NIOCore
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import ServiceLifecycle

/// Wires ledger, queue, relay and HTTP front together and runs them until SIGTERM/SIGINT.
public struct Daemon: Sendable {
    public let config: Config
    public let logger: Logger
    let notifier: SystemdNotifier

    public init(config: Config, logger: Logger, notifier: SystemdNotifier = SystemdNotifier()) {
        self.config = config
        self.logger = logger
        self.notifier = notifier
    }

    public static func logger(level: Logger.Level, sink: LogSink = .standardOutput) -> Logger {
        Logger(label: "pgnoti") { JSONLogHandler(label: $0, level: level, sink: sink) }
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
                "listen": "\(config.listen)", "database": "\(config.database)", "queue": "\(config.queue)",
                "providers": .array(enabled.map { .string($0) }), "sandbox": .stringConvertible(config.sandbox),
                "smartro_merchants": .array(config.smartro.merchantKeys.keys.sorted().map { .string($0) }),
                "pid": .stringConvertible(Int(getpid())),
            ])

        let ledger = try Ledger(path: config.database)
        let queue = try QueueDirectory(root: URL(fileURLWithPath: config.queue))
        try queue.cleanStaleTemporaries()
        let relay = OutboxRelay(ledger: ledger, queue: queue, logger: logger)
        // What a crash left between commit and file goes out before new traffic arrives.
        let replayed = try await relay.drain()
        if replayed > 0 {
            logger.notice(
                "filed events left in the outbox by the previous run", metadata: ["count": .stringConvertible(replayed)]
            )
        }

        let intake = Intake(
            providers: config.providers, ledger: ledger, relay: relay, logger: logger,
            rejectedKeep: config.rejectedKeep)
        let front = HTTPFront(intake: intake, logger: logger, maxBodyBytes: config.maxBodyBytes)
        var quietLogger = logger
        quietLogger.logLevel = .warning
        let notifier = self.notifier
        let logger = self.logger
        let app = Application(
            responder: front.responder,
            configuration: .init(
                address: .hostname(config.listen.host, port: config.listen.port), serverName: "pgnoti"),
            services: [RelayService(relay: relay)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? -1
                logger.info(
                    "listening",
                    metadata: [
                        "address": "\(channel.localAddress?.ipAddress ?? "?")", "port": .stringConvertible(port),
                    ])
                // Only now: the socket accepts connections and the database is open.
                notifier.notify("READY=1\nSTATUS=listening on port \(port)")
            },
            logger: quietLogger)

        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: app),
                    .init(
                        service: ShutdownAnnouncer(notifier: notifier, logger: logger),
                        successTerminationBehavior: .ignore),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                cancellationSignals: [],
                logger: quietLogger))
        do {
            try await group.run()
        } catch {
            logger.error("stopped on error", metadata: ["error": "\(error)"])
            _ = try? await relay.drain()
            try? await ledger.close()
            throw error
        }
        // The relay drained on its way out; this catches anything committed after that.
        let late = try await relay.drain()
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
/// starts draining connections.
struct ShutdownAnnouncer: Service {
    let notifier: SystemdNotifier
    let logger: Logger
    func run() async throws {
        try? await gracefulShutdown()
        logger.info("shutting down: no new connections; finishing in-flight requests and filing committed events")
        notifier.notify("STOPPING=1")
    }
}
