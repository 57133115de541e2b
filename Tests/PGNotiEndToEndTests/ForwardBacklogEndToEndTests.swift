import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Issue 14's fault run: a dead app, as an operator meets it.
    @Suite struct ForwardBacklogEndToEndTests {
        /// An app that refuses connections costs `connect_timeout_seconds` per attempt, not
        /// `timeout_seconds`: with a 30 s timeout, three attempts fail within seconds.
        @Test func aRefusingAppCostsTheConnectTimeoutNotTheWholeTimeout() throws {
            let dir = try DaemonProcess.makeDirectory("forward-connect-timeout")
            let probe = try WebhookReceiver(in: dir)
            let port = probe.port
            probe.stop()  // a port nothing listens on
            _ = try Consumer.writeConfig(
                in: dir, url: "http://127.0.0.1:\(port)/hook", extraForward: "connect_timeout_seconds = 0.5",
                retryInitial: 0.1, timeout: 30)
            try Consumer.file(Consumer.event(order: "ORD-C", tid: "TC"), sequence: 1, in: dir)
            let started = Date()
            let forwarder = try Consumer.start(dir)
            defer { _ = try? forwarder.terminate() }
            let starting = forwarder.waitForLog { $0["msg"] as? String == "consumer starting" }.first
            #expect("\(starting?["connect_timeout_seconds"] ?? "")" == "0.5")
            try waitFor("three refused attempts", timeout: 15) {
                forwarder.logObjects.filter {
                    $0["msg"] as? String == "delivery failed; will retry"
                        && ($0["error"] as? String)?.contains("refused") == true
                }.count >= 3
            }
            #expect(Date().timeIntervalSince(started) < 15, "three attempts, each well under timeout_seconds")
        }
    }
}
