import Logging
import Metrics
import NIOCore
import Synchronization

/// The public listener's open connections: how many there are (for `max_connections`), and
/// which, so a shutdown that runs out of time can close the rest.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let maximum: Mutex<Int>
    private let overCap: BurstLog
    private let timedOut: BurstLog
    private let refusedCounter = Counter(label: "pgnoti_connections_refused_total")
    private let timeoutCounter = Counter(label: "pgnoti_read_timeouts_total")

    init(maximum: Int, logger: Logger) {
        self.maximum = Mutex(maximum)
        overCap = BurstLog(logger: logger, message: "connection limit reached: new connections are closed at accept")
        timedOut = BurstLog(
            logger: logger, message: "read timeout: closed connections that did not send a whole request in time")
    }

    var count: Int { channels.withLock { $0.count } }

    func setMaximum(_ value: Int) { maximum.withLock { $0 = value } }

    /// Registers a connection; false when the cap is reached (the caller closes it).
    func open(_ channel: any Channel) -> Bool {
        let limit = maximum.withLock { $0 }
        let admitted = channels.withLock { open in
            guard open.count < limit else { return false }
            open[ObjectIdentifier(channel)] = channel
            return true
        }
        if !admitted {
            refusedCounter.increment()
            overCap.note(["limit": .stringConvertible(limit)])
        }
        return admitted
    }

    func closed(_ channel: any Channel) {
        _ = channels.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func readTimedOut() {
        timeoutCounter.increment()
        timedOut.note([:])
    }

    /// Closes every connection still open: the end of a shutdown that ran out of time.
    func closeAll() -> Int {
        let open = channels.withLock { Array($0.values) }
        for channel in open { channel.close(promise: nil) }
        return open.count
    }
}
