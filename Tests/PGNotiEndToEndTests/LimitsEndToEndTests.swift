import Foundation
import PGNotiRawHTTP
import PGNotiStore
import PGNotiTestSupport
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
        @Test func slowClientsAreCutAndAGenuineRequestIsAnsweredMeanwhile() async throws {
            Self.raiseFileLimit(to: 4096)
            let dir = try DaemonProcess.makeDirectory("slow")
            _ = try DaemonProcess.writeConfig(
                in: dir, top: "[limits]\nread_timeout_seconds = 3\nmax_connections = 2000")
            let daemon = try await DaemonProcess.start(dir)
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
            try await waitUntil(timeout: .seconds(30), "every trickling client to be cut") {
                slow.allSatisfy(Self.isClosedByServer)
            }
            let logged1 = try await daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("read timeout") == true }
            #expect(!logged1.isEmpty)
            // Logged once per burst, not once per connection.
            let started = daemon.logObjects.filter {
                ($0["msg"] as? String)?.hasPrefix("read timeout") == true && $0["burst"] as? String == "started"
            }
            #expect(started.count == 1)
            #expect(try await daemon.terminate() == 0)
        }

        @Test func connectionsOverTheCapAreClosedAtAccept() async throws {
            let dir = try DaemonProcess.makeDirectory("cap")
            _ = try DaemonProcess.writeConfig(in: dir, top: "[limits]\nmax_connections = 5")
            let daemon = try await DaemonProcess.start(dir)
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            for _ in 0..<5 { held.append(try connectLoopback(port: daemon.port)) }
            try await waitUntil(timeout: .seconds(20), "the daemon to hold five connections") {
                daemon.socketCount() >= 5
            }
            let extra = try connectLoopback(port: daemon.port)
            defer { close(extra) }
            try await waitUntil(timeout: .seconds(20), "the sixth to be closed") { Self.isClosedByServer(extra) }
            #expect(held.allSatisfy { !Self.isClosedByServer($0) })
            let logged2 = try await daemon.waitForLog {
                ($0["msg"] as? String)?.hasPrefix("connection limit reached") == true
            }
            #expect(!logged2.isEmpty)
            // Room again: a genuine request gets through.
            for fd in held { close(fd) }
            held.removeAll()
            try await waitUntil(timeout: .seconds(20), "room again") {
                (try? daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request))?.status
                    == 200
            }
            #expect(try await daemon.terminate() == 0)
        }

        /// A body declared over the limit is refused and the connection closed without reading it.
        @Test func aDeclaredOversizedBodyIsRefusedWithoutBeingRead() async throws {
            let dir = try DaemonProcess.makeDirectory("huge")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
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
            #expect(try await daemon.terminate() == 0)
            let ledger = try Ledger(path: dir.appendingPathComponent("state/pgnoti.sqlite").path)
            #expect(try await ledger.quarantined(reason: "body_too_large").count == 1)
        }

        @Test func expectContinueIsAnswered() async throws {
            let dir = try DaemonProcess.makeDirectory("continue")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
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
            #expect(try await daemon.terminate() == 0)
        }

        /// Sends `bytes` on a new connection and reads until the server closes it (or `timeout`
        /// passes): everything the server answered, and whether it closed the connection.
        static func exchangeUntilClosed(port: Int, bytes: [UInt8], timeout: TimeInterval = 20) throws -> (
            text: String, closed: Bool
        ) {
            let fd = try connectLoopback(port: port)
            defer { close(fd) }
            setReceiveTimeout(fd, milliseconds: 200)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                // The server may close before it has read everything (the rest is never read).
                guard n > 0 else { break }
                offset += n
            }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0 {
                    received += buffer[..<n]
                } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    return (String(decoding: received, as: UTF8.self), true)
                }
            }
            return (String(decoding: received, as: UTF8.self), false)
        }

        /// A request head over `[limits] max_header_bytes` never reaches the intake: the HTTP
        /// decoder refuses it (400, `Connection: close`, empty body) and the connection closes.
        /// No ACK, no event; the next request, on a new connection, is ACKed as usual.
        @Test func aHeadOverMaxHeaderBytesIsRefusedWithoutAnAckAndTheNextRequestIsAnswered() async throws {
            let dir = try DaemonProcess.makeDirectory("header")
            _ = try DaemonProcess.writeConfig(in: dir, top: "[limits]\nmax_header_bytes = 2048")
            let daemon = try await DaemonProcess.start(dir)
            let fixture = try TrustEndToEndTests.fixture("tomatopay", "approve")
            // The fixture as it is, plus one 4 KiB header: a valid notification, but for its head.
            let padded = TrustEndToEndTests.bytes(
                fixture, port: daemon.port, headers: ["X-Padding: " + String(repeating: "a", count: 4096)])
            let refused = try Self.exchangeUntilClosed(port: daemon.port, bytes: padded)
            #expect(refused.closed, "the connection is closed")
            #expect(!refused.text.contains("\r\n\r\nOK"), "no ACK: \(refused.text)")
            // What the server answers: Hummingbird turns the decoder's header overflow into an
            // empty 400 (not 431) and closes; the request is neither logged nor quarantined.
            #expect(refused.text.hasPrefix("HTTP/1.1 400"), "\(refused.text)")
            #expect(refused.text.lowercased().contains("connection: close"))

            // A normal request, on a new connection, is ACKed.
            let genuine = try daemon.send(fixture: fixture.request)
            #expect(genuine.status == 200 && genuine.bodyText == "OK")
            try await daemon.waitForQueue(count: 1)
            // Only the genuine request made an event, and only it reached the intake. The refused
            // request was answered and closed before the genuine one was sent, so once the genuine
            // one's line is logged, a line for the refused one would be there too.
            let lines = try await daemon.notificationLines(count: 1)
            #expect(lines.count == 1 && lines.first?["outcome"] as? String == "accepted")
            #expect(try daemon.queueFiles().count == 1)
            #expect(try await daemon.terminate() == 0)
        }

        /// `read_timeout_seconds` covers the body too: a client that sends a complete head and then
        /// its body one byte a second is cut, with no ACK and no event.
        @Test func aBodyTrickledAByteASecondIsCutAtTheReadTimeout() async throws {
            let dir = try DaemonProcess.makeDirectory("slowbody")
            _ = try DaemonProcess.writeConfig(in: dir, top: "[limits]\nread_timeout_seconds = 2")
            let daemon = try await DaemonProcess.start(dir)
            let request = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            // The whole fixture: were it ever read to its end, it would be ACKed and filed.
            let bytes = request.serialized(host: "127.0.0.1:\(daemon.port)", target: request.target)
            let bodyStart = bytes.count - request.body.count
            let fd = try connectLoopback(port: daemon.port)
            defer { close(fd) }
            let started = Date()
            _ = bytes[..<bodyStart].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            var cut = false
            var next = bodyStart
            // Generous: the cut is due after 2 s; a body of 411 bytes at 1 byte/s would take minutes.
            while Date().timeIntervalSince(started) < 10 && next < bytes.count {
                let n = bytes[next...next].withUnsafeBytes {
                    send(fd, $0.baseAddress, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n == 1 { next += 1 }
                // Wait a second for the next byte, watching for the server's close meanwhile.
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 1000) > 0 {
                    let r = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                    if r > 0 { received += buffer[..<r] }
                    if r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                        cut = true
                        break
                    }
                }
                if n < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                    cut = true
                    break
                }
            }
            let elapsed = Date().timeIntervalSince(started)
            #expect(cut, "still open after \(elapsed) s and \(next - bodyStart) body bytes")
            #expect(elapsed < 10)
            #expect(next < bytes.count, "the body was never completed")
            let text = String(decoding: received, as: UTF8.self)
            #expect(!text.contains("\r\n\r\nOK"), "no ACK: \(text)")
            let logged = try await daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("read timeout") == true }
            #expect(!logged.isEmpty)
            // No event: the request never reached the intake; a genuine one still does.
            #expect(try daemon.queueFiles().isEmpty)
            #expect(try daemon.send(fixture: request).status == 200)
            try await daemon.waitForQueue(count: 1)
            #expect(try await daemon.terminate() == 0)
        }

        /// Twelve conflicting versions of one notification (same TID and state, another amount
        /// each) are all ACKed, since the original is stored; at most ten are filed as
        /// `notification.conflict` events, and the limit is logged once, not once per version.
        @Test func conflictingVersionsAreAllAckedButFiledTenAtMostAndTheLimitLoggedOnce() async throws {
            let dir = try DaemonProcess.makeDirectory("conflicts")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let original = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            let first = try daemon.send(fixture: original)
            #expect(first.status == 200 && first.bodyText == "OK")
            let body = String(decoding: original.body, as: UTF8.self)
            try #require(body.contains("&Amt=12000&"))
            for version in 1...12 {
                var request = original
                request.body = Array(
                    body.replacingOccurrences(of: "&Amt=12000&", with: "&Amt=\(12000 + version)&").utf8)
                request.headers = request.headers.map {
                    $0.name.lowercased() == "content-length" ? ($0.name, "\(request.body.count)") : $0
                }
                let response = try daemon.send(fixture: request)
                #expect(response.status == 200 && response.bodyText == "OK", "version \(version): \(response.status)")
            }
            // The original and ten conflicts.
            try await daemon.waitForQueue(count: 11)
            // A later notification of another payment: the relay files in commit order, so once
            // its event is in new/, anything the versions above committed is filed too.
            let marker = try TrustEndToEndTests.fixture("innopay", "approve-card")
            #expect(try daemon.send(fixture: marker.request).status == 200)
            try await daemon.waitForQueue(count: 12)
            let events = try daemon.queueFiles().compactMap { file in
                try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as? [String: Any]
            }
            let markerEvents = events.filter { $0["provider"] as? String == "innopay" }
            #expect(markerEvents.count == 1)
            let kinds = events.filter { $0["provider"] as? String != "innopay" }.map { $0["kind"] as? String ?? "?" }
            #expect(kinds.count == 11)
            #expect(kinds.filter { $0 == "notification.conflict" }.count == 10)
            #expect(kinds.filter { $0 == "payment.approved" }.count == 1)
            let lines = try await daemon.notificationLines(count: 13)
            #expect(lines.filter { $0["outcome"] as? String == "conflict" }.count == 12)
            let limit = try await daemon.waitForLog {
                ($0["msg"] as? String)?.hasPrefix("conflict limit reached") == true
            }
            #expect(limit.count == 1)
            #expect(limit.first?["tid"] as? String == "tomato001m01012411231000121001")
            #expect(try await daemon.terminate() == 0)
            let warnings = daemon.logObjects.filter {
                ($0["msg"] as? String)?.hasPrefix("conflict limit reached") == true
            }
            #expect(warnings.count == 1, "logged once, not once per version over the limit")
        }

        @Test func aClientOverItsRateIsRefusedAndLoggedOncePerBurst() async throws {
            let dir = try DaemonProcess.makeDirectory("rate")
            _ = try DaemonProcess.writeConfig(
                in: dir, top: "[limits]\nrequests_per_second_per_source = 1\nburst_per_source = 3")
            let daemon = try await DaemonProcess.start(dir)
            let request = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            let statuses = try (0..<10).map { _ in try daemon.send(fixture: request).status }
            #expect(statuses.filter { $0 == 200 }.count >= 3)
            #expect(statuses.contains(429))
            let limited = try await daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("rate limit") == true }
            #expect(limited.count == 1)
            #expect(try await daemon.terminate() == 0)
        }
    }
}
