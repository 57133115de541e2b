import Logging
import PGNotiForward
import ServiceLifecycle

/// Runs the queue's consumer (`pgnoti forward`, `pgnoti consume`) the way systemd expects a
/// Type=notify service to behave: READY=1 once the lock is held and the directories exist,
/// WATCHDOG=1 while its loop turns, STOPPING=1 on SIGTERM, then deliveries in flight finish.
public enum ConsumerRunner {
    public static func run(
        _ forwarder: Forwarder, logger: Logger, notifier: SystemdNotifier = SystemdNotifier()
    ) async throws {
        var quiet = logger
        quiet.logLevel = .warning
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: forwarder)]
        if let interval = WatchdogService.interval() {
            services.append(
                .init(
                    service: WatchdogService(
                        interval: interval, notifier: notifier,
                        probes: [("consumer loop", { try await forwarder.probe() })], logger: logger)))
        }
        services.append(.init(service: ReadyAnnouncer(notifier: notifier), successTerminationBehavior: .ignore))
        let group = ServiceGroup(
            configuration: .init(
                services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
                logger: quiet))
        try await group.run()
    }
}

/// READY=1 when the group starts, STOPPING=1 when it is asked to stop.
private struct ReadyAnnouncer: Service {
    let notifier: SystemdNotifier

    func run() async throws {
        notifier.notify("READY=1")
        try? await gracefulShutdown()
        notifier.notify("STOPPING=1")
    }
}
