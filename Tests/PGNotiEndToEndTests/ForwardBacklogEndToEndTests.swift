import Foundation
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Issue 14's fault run: the lock, `forward status`, and a dead app, as an operator meets them.
    @Suite struct ForwardBacklogEndToEndTests {
        static func status(_ dir: URL) async throws -> [String: Any] {
            let run = try await QuarantineEndToEndTests.runSplit(
                ["forward", "status", "--json", "--config", dir.appendingPathComponent("pgnoti.toml").path], in: dir)
            guard run.status == 0 else { throw HarnessError("forward status exited \(run.status): \(run.stderr)") }
            return try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        }

        /// Deleting `.forward.lock` under a running forwarder does not let a second one start:
        /// the lock is on the queue directory; the file only tells the pid.
        @Test func deletingTheLockFileDoesNotLetASecondForwarderIn() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-lock-deleted")
            let receiver = try await WebhookReceiver(in: dir)
            let config = try Consumer.writeConfig(in: dir, url: receiver.url).path
            let first = try await Consumer.start(dir)
            defer { first.stop() }
            let pid = Int(first.process.processIdentifier)

            let running = try await Self.status(dir)
            #expect(running["running"] as? Bool == true && running["pid"] as? Int == pid, "\(running)")
            let text = try await QuarantineEndToEndTests.runSplit(["forward", "status", "--config", config], in: dir)
            #expect(text.stdout.contains("forwarder                   running (pid \(pid))"), "\(text.stdout)")

            let lockFile = Consumer.queue(dir).appendingPathComponent(".forward.lock").path
            #expect(unlink(lockFile) == 0)
            // Started without waiting for READY=1: it must exit on its own (a second consumer
            // that got in would run on, and is killed when the test ends).
            let second = try DaemonProcess(directory: dir, arguments: ["forward", "--config", config])
            #expect(try await second.waitForExit(timeout: .seconds(15)) != 0)
            #expect(second.logText.contains("another consumer already runs"), "\(second.logText)")
            #expect(try await Self.status(dir)["running"] as? Bool == true)

            // And it still delivers, alone.
            let event = Consumer.event(order: "ORD-L", tid: "TL")
            let name = try Consumer.file(event, sequence: 1, in: dir)
            try await waitUntil(timeout: .seconds(20), "delivery") { Consumer.files(dir, "forward/done") == [name] }
            #expect(receiver.acceptedIDs() == [event.id])

            #expect(try await first.terminate() == 0)
            let stopped = try await Self.status(dir)
            #expect(stopped["running"] as? Bool == false && stopped["pid"] is NSNull, "\(stopped)")
            #expect(stopped["in_flight"] as? Int == 0)
        }

        /// An app that refuses connections costs `connect_timeout_seconds` per attempt, not
        /// `timeout_seconds`: with a 30 s timeout, three attempts fail within seconds.
        @Test func aRefusingAppCostsTheConnectTimeoutNotTheWholeTimeout() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-connect-timeout")
            let probe = try await WebhookReceiver(in: dir)
            let port = probe.port
            try await probe.stop()  // a port nothing listens on
            _ = try Consumer.writeConfig(
                in: dir, url: "http://127.0.0.1:\(port)/hook", extraForward: "connect_timeout_seconds = 0.5",
                retryInitial: 0.1, timeout: 30)
            try Consumer.file(Consumer.event(order: "ORD-C", tid: "TC"), sequence: 1, in: dir)
            let started = Date()
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            let starting = try await forwarder.waitForLog { $0["msg"] as? String == "consumer starting" }.first
            #expect("\(starting?["connect_timeout_seconds"] ?? "")" == "0.5")
            try await waitUntil(timeout: .seconds(15), "three refused attempts") {
                forwarder.logObjects.filter {
                    $0["msg"] as? String == "delivery failed; will retry"
                        && ($0["error"] as? String)?.contains("refused") == true
                }.count >= 3
            }
            #expect(Date().timeIntervalSince(started) < 15, "three attempts, each well under timeout_seconds")
        }
    }
}
