import Foundation
import PGNotiRawHTTP
import PGNotiStore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// What a hostile client can no longer do.
extension EndToEnd {
    @Suite struct LimitsEndToEndTests {
        /// Makes sure this process may open `count` more sockets.
        static func raiseFileLimit(to count: Int) {
            var limit = rlimit()
            getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
            guard limit.rlim_cur < rlim_t(count) else { return }
            limit.rlim_cur = max(limit.rlim_cur, min(rlim_t(count), limit.rlim_max))
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }

        static func setReceiveTimeout(_ fd: Int32, milliseconds: Int) {
            var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        /// True once the server has closed `fd` (EOF or reset), false if it still waits.
        static func isClosedByServer(_ fd: Int32) -> Bool {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        }

        /// 1,000 clients trickle a header one byte at a time. A genuine notification is still
        /// answered while they are connected, and every one of them is cut once its read deadline
        /// passes. (How much they delay the genuine request is a bench/ figure, not asserted here.)
        @Test func slowClientsAreCutAndAGenuineRequestIsAnsweredMeanwhile() throws {
            Self.raiseFileLimit(to: 4096)
            let dir = try DaemonProcess.makeDirectory("slow")
            _ = try DaemonProcess.writeConfig(
                in: dir, top: "[limits]\nread_timeout_seconds = 3\nmax_connections = 2000")
            let daemon = try DaemonProcess.start(dir)
            let head = Array(
                "POST /notify/tomatopay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                    .utf8)
            var slow: [Int32] = []
            defer { for fd in slow { close(fd) } }
            for _ in 0..<1000 { slow.append(try connectLoopback(port: daemon.port)) }
            // One byte each, a couple of times, as the slowloris does.
            for round in 0..<2 {
                for fd in slow {
                    _ = head[round...round].withUnsafeBytes { send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL)) }
                }
            }
            let genuine = try daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request)
            #expect(genuine.status == 200 && genuine.bodyText == "OK")
            try waitFor("every trickling client to be cut", timeout: 30) { slow.allSatisfy(Self.isClosedByServer) }
            let logged1 = daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("read timeout") == true }
            #expect(!logged1.isEmpty)
            // Logged once per burst, not once per connection.
            let started = daemon.logObjects.filter {
                ($0["msg"] as? String)?.hasPrefix("read timeout") == true && $0["burst"] as? String == "started"
            }
            #expect(started.count == 1)
            #expect(try daemon.terminate() == 0)
        }

        @Test func connectionsOverTheCapAreClosedAtAccept() throws {
            let dir = try DaemonProcess.makeDirectory("cap")
            _ = try DaemonProcess.writeConfig(in: dir, top: "[limits]\nmax_connections = 5")
            let daemon = try DaemonProcess.start(dir)
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            for _ in 0..<5 { held.append(try connectLoopback(port: daemon.port)) }
            try waitFor("the daemon to hold five connections") { daemon.socketCount() >= 5 }
            let extra = try connectLoopback(port: daemon.port)
            defer { close(extra) }
            try waitFor("the sixth to be closed") { Self.isClosedByServer(extra) }
            #expect(held.allSatisfy { !Self.isClosedByServer($0) })
            let logged2 = daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("connection limit reached") == true }
            #expect(!logged2.isEmpty)
            // Room again: a genuine request gets through.
            for fd in held { close(fd) }
            held.removeAll()
            try waitFor("room again") {
                (try? daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request))?.status
                    == 200
            }
            #expect(try daemon.terminate() == 0)
        }

        /// A body declared over the limit is refused and the connection closed without reading it.
        @Test func aDeclaredOversizedBodyIsRefusedWithoutBeingRead() async throws {
            let dir = try DaemonProcess.makeDirectory("huge")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try DaemonProcess.start(dir)
            let readBefore = daemon.bytesRead()
            let fd = try connectLoopback(port: daemon.port)
            defer { close(fd) }
            Self.setReceiveTimeout(fd, milliseconds: 200)
            let head =
                "POST /notify/innopay HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000000\r\n\r\n"
            _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // Keep pushing body bytes until the daemon answers or the socket stops taking them.
            let chunk = [UInt8](repeating: 0x61, count: 64 * 1024)
            var sent = 0
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                if n > 0 { sent += n }
                let r = recv(fd, &buffer, buffer.count, 0)
                if r > 0 { received += buffer[..<r] }
                if r == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { break }
                if String(decoding: received, as: UTF8.self).contains("\r\n\r\n") && r <= 0 { break }
            }
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 413"), "\(text)")
            #expect(text.lowercased().contains("connection: close"))
            #expect(sent < 100_000_000)
            #expect(daemon.bytesRead() - readBefore < 16 * 1024 * 1024, "the body was not read")
            #expect(try daemon.terminate() == 0)
            let ledger = try Ledger(path: dir.appendingPathComponent("state/pgnoti.sqlite").path)
            #expect(try await ledger.quarantined(reason: "body_too_large").count == 1)
        }

        @Test func expectContinueIsAnswered() throws {
            let dir = try DaemonProcess.makeDirectory("continue")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try DaemonProcess.start(dir)
            let request = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            let fd = try connectLoopback(port: daemon.port)
            defer { close(fd) }
            Self.setReceiveTimeout(fd, milliseconds: 10_000)
            var head = "POST /notify/tomatopay HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
            head += "Content-Type: \(request.header("Content-Type")!)\r\nContent-Length: \(request.body.count)\r\n\r\n"
            _ = Array(head.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            #expect(n > 0 && String(decoding: buffer[..<max(n, 0)], as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue"))
            _ = request.body.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var received: [UInt8] = []
            while true {
                let r = recv(fd, &buffer, buffer.count, 0)
                if r <= 0 { break }
                received += buffer[..<r]
            }
            let text = String(decoding: received, as: UTF8.self)
            #expect(text.contains("HTTP/1.1 200") && text.hasSuffix("\r\n\r\nOK"), "\(text)")
            #expect(try daemon.terminate() == 0)
        }

        @Test func aClientOverItsRateIsRefusedAndLoggedOncePerBurst() throws {
            let dir = try DaemonProcess.makeDirectory("rate")
            _ = try DaemonProcess.writeConfig(
                in: dir, top: "[limits]\nrequests_per_second_per_source = 1\nburst_per_source = 3")
            let daemon = try DaemonProcess.start(dir)
            let request = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            let statuses = try (0..<10).map { _ in try daemon.send(fixture: request).status }
            #expect(statuses.filter { $0 == 200 }.count >= 3)
            #expect(statuses.contains(429))
            let limited = daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("rate limit") == true }
            #expect(limited.count == 1)
            #expect(try daemon.terminate() == 0)
        }
    }
}
