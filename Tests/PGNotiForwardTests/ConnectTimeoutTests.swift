import Foundation
import PGNotiCore
import Testing

@testable import PGNotiForward

#if canImport(Glibc)
    import Glibc
#endif

/// `[forward] connect_timeout_seconds`: an app that is down (refused) or unreachable (SYNs
/// unanswered) fails an attempt after the connect timeout, not after the whole `timeout_seconds`.
@Suite struct ConnectTimeoutTests {
    static let secret = try! WebhookSecret("whsec_" + Data(repeating: 7, count: 32).base64EncodedString())

    /// A TCP socket bound to a loopback port (so nothing else takes the port meanwhile), and
    /// that port.
    static func boundSocket() throws -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard fd >= 0, bound == 0, named == 0 else { throw ForwardError("cannot bind a loopback socket") }
        return (fd, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// Starts a non-blocking connect to the loopback `port`.
    static func connectWithoutWaiting(_ port: Int) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return fd
    }

    static func attempt(port: Int, connectTimeout: Duration) async -> (DeliveryOutcome, Duration) {
        let delivery = WebhookDelivery(
            url: "http://127.0.0.1:\(port)/hook", secret: secret, timeout: .seconds(30), connectTimeout: connectTimeout)
        let event = PendingEvent(name: "1-e.json", id: "e", kind: "payment.approved", body: Array(#"{"id":"e"}"#.utf8))
        let clock = ContinuousClock()
        var outcome = DeliveryOutcome.delivered(detail: "")
        let took = await clock.measure { outcome = await delivery.deliver(event) }
        await delivery.shutdown()
        return (outcome, took)
    }

    /// Bound, never listening: every connect is refused.
    @Test func aRefusedConnectionFailsTheAttemptAfterTheConnectTimeout() async throws {
        let (fd, port) = try Self.boundSocket()
        defer { close(fd) }
        let (outcome, took) = await Self.attempt(port: port, connectTimeout: .milliseconds(500))
        #expect(outcome == .failed(detail: "connection refused"), "\(outcome)")
        #expect(took < .seconds(5), "connect_timeout (0.5 s), not timeout_seconds (30 s): took \(took)")
    }

    /// A listener whose accept queue is full drops further SYNs: the connect is never answered.
    @Test func anUnansweredConnectFailsTheAttemptAfterTheConnectTimeout() async throws {
        let (fd, port) = try Self.boundSocket()
        defer { close(fd) }
        #expect(listen(fd, 0) == 0)
        // Fill the accept queue (never accepted); what comes after waits for a SYN-ACK in vain.
        let fillers = (0..<4).map { _ in Self.connectWithoutWaiting(port) }
        defer { for filler in fillers { close(filler) } }
        try await Task.sleep(for: .milliseconds(200))
        let (outcome, took) = await Self.attempt(port: port, connectTimeout: .milliseconds(500))
        #expect(outcome == .failed(detail: "timed out"), "\(outcome)")
        #expect(took >= .milliseconds(400) && took < .seconds(5), "took \(took)")
    }

    /// The connect timeout never exceeds the attempt's own.
    @Test func theConnectTimeoutIsCappedByTheAttemptTimeout() async {
        let delivery = WebhookDelivery(
            url: "http://127.0.0.1:9/hook", secret: Self.secret, timeout: .seconds(2), connectTimeout: .seconds(5))
        #expect(delivery.connectTimeout == .seconds(2) && delivery.timeout == .seconds(2))
        let defaults = WebhookDelivery(url: "http://127.0.0.1:9/hook", secret: Self.secret, timeout: .seconds(10))
        #expect(defaults.connectTimeout == .seconds(5))
        await delivery.shutdown()
        await defaults.shutdown()
    }
}
