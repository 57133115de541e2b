import Foundation
import Logging
import PGNotiCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// One JSON object per line: `time`, `level`, `msg`, then the metadata, keys sorted. journald
/// and log shippers read it as is. Lines are written by a `LogSink`, never by the caller.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let label: String
    let sink: LogSink

    public init(label: String, level: Logger.Level = .info, sink: LogSink) {
        self.label = label
        self.logLevel = level
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata {
            for (key, value) in extra { merged[key] = value }
        }
        if let error = event.error { merged["error"] = .string("\(error)") }
        sink.submit(Self.line(level: event.level, message: event.message.description, metadata: merged, at: Date()))
    }

    /// The line's bytes, newline included. Keys that would clash with the fixed ones are kept
    /// under their own name only if they do not.
    public static func line(
        level: Logger.Level, message: String, metadata: Logger.Metadata, at date: Date
    ) -> [UInt8] {
        var json = JSONWriter(capacity: 256 + metadata.count * 32)
        json.beginObject()
        var keys = Array(metadata.keys)
        keys.removeAll { $0 == "time" || $0 == "level" || $0 == "msg" }
        keys.append(contentsOf: ["time", "level", "msg"])
        for key in keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            json.key(key)
            switch key {
            case "time":
                var stamp: [UInt8] = []
                KoreanTime.appendISO8601(date, to: &stamp)
                json.string(String(decoding: stamp, as: UTF8.self))
            case "level": json.string(level.rawValue)
            case "msg": json.string(message)
            default: write(metadata[key]!, to: &json)
            }
        }
        json.endObject()
        var bytes = json.bytes
        bytes.append(0x0A)
        return bytes
    }

    static func write(_ value: Logger.Metadata.Value, to json: inout JSONWriter) {
        switch value {
        case .string(let s): json.string(s)
        case .stringConvertible(let c):
            switch c {
            case let i as Int: json.int(i)
            case let i as Int64: json.int(Int(i))
            case let d as Double: json.double(d)
            case let b as Bool: json.bool(b)
            default: json.string(c.description)
            }
        case .array(let values):
            json.beginArray()
            for v in values { write(v, to: &json) }
            json.endArray()
        case .dictionary(let d):
            json.beginObject()
            for key in d.keys.sorted() {
                json.key(key)
                write(d[key]!, to: &json)
            }
            json.endObject()
        }
    }
}

/// Where log lines go. For stdout, lines wait in a bounded buffer that a thread of their own
/// drains with blocking writes, so a journald that pushes back never stalls a request: when
/// the buffer is full, lines are dropped and counted, and once the pressure ends the sink
/// writes one line saying how many were lost.
public final class LogSink: Sendable {
    struct State {
        var lines: [[UInt8]] = []
        var bytes = 0
        var dropped = 0
        var droppedTotal = 0
        var writing = false
        var closed = false
        /// Lines captured by a memory sink.
        var captured: [UInt8] = []
    }

    private let fd: Int32?
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let maxBytes: Int

    /// - Parameter maxBytes: what may wait in the buffer before lines are dropped.
    init(fd: Int32?, maxBytes: Int = 4 * 1024 * 1024) {
        self.fd = fd
        self.maxBytes = maxBytes
        if fd != nil {
            let thread = Thread { [self] in self.drainForever() }
            thread.name = "pgnoti-log"
            thread.start()
        }
    }

    /// The daemon's sink: stdout, drained by its own thread.
    public static func standardOutput(maxBytes: Int = 4 * 1024 * 1024) -> LogSink {
        LogSink(fd: STDOUT_FILENO, maxBytes: maxBytes)
    }

    /// Standard error, for commands whose stdout is their output.
    public static func standardError() -> LogSink { LogSink(fd: STDERR_FILENO) }

    /// Keeps lines in memory, for tests.
    public static func memory() -> LogSink { LogSink(fd: nil) }

    /// Lines dropped because the buffer was full, since the start.
    public var droppedLines: Int { state.withLock { $0.droppedTotal + $0.dropped } }

    func submit(_ line: [UInt8]) {
        guard fd != nil else {
            state.withLock { $0.captured.append(contentsOf: line) }
            return
        }
        let accepted = state.withLock { state in
            guard state.bytes + line.count <= maxBytes else {
                state.dropped += 1
                return false
            }
            state.lines.append(line)
            state.bytes += line.count
            return true
        }
        if accepted { wake.signal() }
    }

    /// Waits up to `timeout` until every buffered line has been written (for an orderly exit).
    public func flush(timeout: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.lines.isEmpty && !$0.writing }) { return }
            usleep(2_000)
        }
    }

    private func drainForever() {
        while true {
            wake.wait()
            while true {
                let (batch, dropped): ([[UInt8]], Int) = state.withLock { state in
                    let batch = state.lines
                    state.lines.removeAll(keepingCapacity: true)
                    state.bytes = 0
                    state.writing = !batch.isEmpty
                    // Report drops only once the buffer has room again: the pressure is over.
                    var dropped = 0
                    if batch.isEmpty && state.dropped > 0 {
                        dropped = state.dropped
                        state.droppedTotal += dropped
                        state.dropped = 0
                    }
                    return (batch, dropped)
                }
                if batch.isEmpty && dropped == 0 { break }
                for line in batch { writeAll(line) }
                if dropped > 0 {
                    writeAll(
                        JSONLogHandler.line(
                            level: .warning, message: "log lines dropped: stdout could not keep up",
                            metadata: ["dropped": .stringConvertible(dropped)], at: Date()))
                }
                state.withLock { $0.writing = false }
            }
        }
    }

    private func writeAll(_ bytes: [UInt8]) {
        guard let fd else { return }
        bytes.withUnsafeBytes { raw in
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
        state.withLock { String(decoding: $0.captured, as: UTF8.self) }.split(separator: "\n").map(String.init)
    }
}

extension Logger {
    /// A logger that writes JSON lines to `sink`.
    public static func json(level: Logger.Level, sink: LogSink) -> Logger {
        Logger(label: "pgnoti") { JSONLogHandler(label: $0, level: level, sink: sink) }
    }
}
