import Logging
import Synchronization

/// Keeps log messages so tests can check that failures are reported.
public struct CapturingLogHandler: LogHandler {
    public final class Box: Sendable {
        private let entries = Mutex<[(Logger.Level, String)]>([])

        public init() {}

        public func append(_ entry: (Logger.Level, String)) { entries.withLock { $0.append(entry) } }
        public var all: [(Logger.Level, String)] { entries.withLock { $0 } }
    }

    public let box: Box
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace

    public init(box: Box) { self.box = box }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let details = (event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " ")
        box.append((event.level, "\(event.message) \(details)"))
    }
}

/// A logger whose messages land in the returned box.
public func capturingLogger() -> (Logger, CapturingLogHandler.Box) {
    let box = CapturingLogHandler.Box()
    return (Logger(label: "test", factory: { _ in CapturingLogHandler(box: box) }), box)
}
