import Foundation
import Logging
import PGNotiConfig
import PGNotiSpool
import PGNotiStore

/// One host's way out for events: the queue directory and the relay that files the outbox into
/// it. Only with a SQLite database; with PostgreSQL the events are delivered from the database,
/// since no directory is shared between the hosts.
struct LocalDelivery: Sendable {
    let queue: QueueDirectory
    let relay: OutboxRelay

    /// Prepares the queue and files what a crash left in the outbox. The queue is prepared by
    /// the relay, not required here: a read-only, missing or full queue must not keep the daemon
    /// from starting, since the outbox holds every event until it can file them and the PG's
    /// notifications still need their ACKs.
    static func start(_ config: Config, outbox: any OutboxSource, logger: Logger) async -> LocalDelivery {
        let queue = QueueDirectory(unpreparedAt: URL(fileURLWithPath: config.queue))
        let relay = OutboxRelay(outbox: outbox, queue: queue, logger: logger)
        do {
            try queue.prepare()
            // The daemon files the outbox for as long as it runs. A command that holds the lock
            // right now (a release filing its events) lets go within moments.
            if try await relay.takeLock(waitingUpTo: .seconds(10)) {
                try queue.cleanStaleTemporaries()
                // What a crash left between commit and file goes out before new traffic arrives.
                let replayed = try await relay.drain()
                if replayed > 0 {
                    logger.notice(
                        "filed events left in the outbox by the previous run",
                        metadata: ["count": .stringConvertible(replayed)])
                }
            } else {
                logger.warning(
                    "another process holds the outbox lock; events will be filed once it lets go",
                    metadata: ["lock": "\(config.queue)/\(OutboxLock.fileName)"])
            }
        } catch {
            logger.error(
                "the queue cannot be filed into; starting anyway: events wait in the outbox and the relay retries",
                metadata: ["queue": "\(config.queue)", "error": "\(error)"])
        }
        return LocalDelivery(queue: queue, relay: relay)
    }
}
