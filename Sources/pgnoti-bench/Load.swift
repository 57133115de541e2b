import ArgumentParser
import Foundation
import Histogram
import PGNotiRawHTTP
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An open-loop load: request `i` is due at `start + i / rate`, whether or not earlier ones
/// have been answered, and its latency runs from that due time, not from when a connection
/// got round to sending it. A stalled server therefore shows up in the percentiles instead
/// of quietly lowering the offered rate (the "coordinated omission" a closed-loop tool hides).
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Post bodies at a fixed rate over keep-alive connections; print latency percentiles.")

    @Option(help: "Server host.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port: Int
    @Option(help: "Request path.") var path = "/notify/smartro"
    @Option(help: "File of bodies, one a line (see `bodies`).") var bodies: String
    @Option(help: "Requests per second offered.") var rate: Double
    @Option(help: "Seconds of load.") var duration: Double
    @Option(help: "Connections (one thread each); enough that none is busy when its next request is due.")
    var connections = 32
    @Option(help: "Skip this many bodies of the file first, so runs that share a file send new ones.")
    var skip = 0

    func validate() throws {
        guard rate > 0, duration > 0, connections > 0 else {
            throw ValidationError("--rate, --duration and --connections must be positive")
        }
    }

    func run() throws {
        let lines = try String(contentsOfFile: bodies, encoding: .utf8).split(separator: "\n").dropFirst(skip)
        let total = Int(rate * duration)
        guard lines.count >= total else {
            throw ValidationError("\(bodies) has \(lines.count) bodies after --skip; \(total) are needed")
        }
        let requests: [[UInt8]] = lines.prefix(total).map { body in
            Array(
                ("POST \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
                    + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n\r\n"
                    + body).utf8)
        }
        let interval = 1e9 / rate
        let next = Atomic<Int>(0)
        let startNanos = Self.monotonicNanos() + 50_000_000
        let results = Mutex<[WorkerResult]>([])
        let done = DispatchGroup()
        for _ in 0..<connections {
            done.enter()
            let thread = Thread { [host, port] in
                var mine = WorkerResult()
                var connection: RawHTTPConnection?
                while true {
                    let i = next.add(1, ordering: .relaxed).oldValue
                    guard i < total else { break }
                    let due = startNanos + UInt64(Double(i) * interval)
                    Self.sleep(until: due)
                    do {
                        if connection == nil || !(connection!.isReusable) {
                            connection = try RawHTTPConnection(host: host, port: port)
                        }
                        let response = try connection!.exchange(requests[i])
                        let micros = (Self.monotonicNanos() - due) / 1000
                        if (200..<300).contains(response.status) {
                            mine.ok += 1
                            _ = mine.latency.record(micros)
                        } else {
                            mine.refused += 1
                        }
                    } catch {
                        mine.errors += 1
                        connection = nil
                    }
                }
                mine.finishedNanos = Self.monotonicNanos()
                results.withLock { $0.append(mine) }
                done.leave()
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        done.wait()
        let all = results.withLock { $0 }
        var latency = WorkerResult.emptyHistogram()
        for worker in all { latency.add(worker.latency) }
        let ok = all.reduce(0) { $0 + $1.ok }
        let refused = all.reduce(0) { $0 + $1.refused }
        let errors = all.reduce(0) { $0 + $1.errors }
        let seconds = Double((all.map(\.finishedNanos).max() ?? startNanos) - startNanos) / 1e9
        func ms(_ p: Double) -> String { String(format: "%.2f", Double(latency.valueAtPercentile(p)) / 1000) }
        print(
            "offered_rps=\(Int(rate)) sent=\(total) ok_2xx=\(ok) non_2xx=\(refused) errors=\(errors) "
                + String(format: "achieved_2xx_rps=%.0f ", Double(ok) / seconds)
                + "p50_ms=\(ms(50)) p90_ms=\(ms(90)) p99_ms=\(ms(99)) p999_ms=\(ms(99.9)) "
                + String(format: "max_ms=%.2f", Double(latency.max) / 1000))
    }

    struct WorkerResult {
        var ok = 0
        var refused = 0
        var errors = 0
        var finishedNanos: UInt64 = 0
        /// Only 2xx answers: a refused request is not throughput, and its latency is not an ACK's.
        var latency = emptyHistogram()

        static func emptyHistogram() -> Histogram<UInt64> {
            // Microseconds, up to a minute, three significant digits.
            Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        }
    }

    static func monotonicNanos() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func sleep(until nanos: UInt64) {
        var due = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nil) == EINTR {}
    }
}
