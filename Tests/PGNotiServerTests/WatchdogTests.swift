import Foundation
import Logging
@_spi(Testing) import PGNotiSpool
@_spi(Testing) import PGNotiStore
import Testing

@testable import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

/// The watchdog pings only while the parts it watches take their turns. A wedged relay (its I/O
/// thread stuck, as in a hung fsync) or writer gets no WATCHDOG=1, so systemd restarts the daemon.
@Suite(.serialized) struct WatchdogTests {
    final class Socket: @unchecked Sendable {
        let path: String
        let fd: Int32

        init() throws {
            path =
                FileManager.default.temporaryDirectory.appendingPathComponent("wd-\(UUID().uuidString.prefix(6)).sock")
                .path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0 else { throw CancellationError() }
        }

        /// WATCHDOG=1 datagrams received within `seconds`.
        func pings(within seconds: Double) async throws -> Int {
            var count = 0
            let deadline = Date().addingTimeInterval(seconds)
            var buffer = [UInt8](repeating: 0, count: 256)
            while Date() < deadline {
                let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n > 0, String(decoding: buffer[..<n], as: UTF8.self).contains("WATCHDOG=1") {
                    count += 1
                } else {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            return count
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    @Test func noPingWhileTheRelayOrTheWriterIsWedged() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-wd-\(UUID().uuidString)")
        let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
        let queue = try QueueDirectory(root: dir.appendingPathComponent("queue"))
        let relay = OutboxRelay(outbox: ledger, queue: queue, logger: Logger(label: "t"))
        let socket = try Socket()
        let watchdog = WatchdogService(
            interval: .milliseconds(100), notifier: SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path]),
            probes: [("ledger writer", { await ledger.probeWriter() }), ("outbox relay", { await relay.probeIO() })],
            logger: Logger(label: "t"))
        // One tick at a time, so the test does not depend on how busy the machine is.
        #expect(await watchdog.tick() == [])
        #expect(try await socket.pings(within: 0.1) == 1, "all well: a ping")

        let releaseRelay = relay.holdIO()
        #expect(await watchdog.tick() == ["outbox relay"])
        #expect(try await socket.pings(within: 0.1) == 0, "no ping while the relay is wedged")
        releaseRelay()
        #expect(await watchdog.tick() == [])
        #expect(try await socket.pings(within: 0.1) == 1, "a ping again once it answers")

        let releaseWriter = ledger.holdWriter()
        #expect(await watchdog.tick() == ["ledger writer"])
        #expect(try await socket.pings(within: 0.1) == 0, "no ping while the writer is wedged")
        releaseWriter()
        #expect(await watchdog.tick() == [])
        #expect(try await socket.pings(within: 0.1) == 1)
    }

    @Test func theIntervalIsHalfOfWhatSystemdAsksFor() {
        #expect(WatchdogService.interval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(15))
        #expect(WatchdogService.interval(environment: [:]) == nil)
        #expect(WatchdogService.interval(environment: ["WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"]) == nil)
    }
}
