import Foundation
import Logging
import PGNotiCore

#if canImport(Glibc)
    import Glibc
#endif

/// One JSON object per line, written with a single write(2) so lines from concurrent requests
/// never interleave. journald and log shippers read it as is.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let sink: LogSink

    public init(label: String, level: Logger.Level = .info, sink: LogSink = .standardOutput) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = [
            "time": KoreanTime.iso8601(Date()),
            "level": event.level.rawValue,
            "msg": event.message.description,
        ]
        for (key, value) in self.metadata { object[key] = Self.json(value) }
        for (key, value) in event.metadata ?? [:] { object[key] = Self.json(value) }
        if let error = event.error { object["error"] = "\(error)" }
        guard
            var data = try? JSONSerialization.data(
                withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else {
            return
        }
        data.append(0x0A)
        sink.write(data)
    }

    static func json(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let s): return s
        case .stringConvertible(let c):
            switch c {
            case let i as Int: return i
            case let i as Int64: return i
            case let d as Double: return d
            case let b as Bool: return b
            default: return c.description
            }
        case .array(let a): return a.map(json)
        case .dictionary(let d): return d.mapValues(json)
        }
    }
}

/// Where log lines go: stdout for the daemon, a buffer for tests.
public final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private let fd: Int32?
    private var buffer = Data()

    init(fd: Int32?) { self.fd = fd }

    public static let standardOutput = LogSink(fd: STDOUT_FILENO)
    public static func memory() -> LogSink { LogSink(fd: nil) }

    func write(_ data: Data) {
        lock.lock()
        defer { lock.unlock() }
        guard let fd else {
            buffer.append(data)
            return
        }
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += n
            }
        }
    }

    /// Captured lines (memory sinks only).
    public var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
