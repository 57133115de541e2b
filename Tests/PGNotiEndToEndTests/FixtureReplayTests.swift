import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiStore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Speaks to the real daemon exactly as the PGs do: raw request bytes from fixtures/.
extension EndToEnd {
    @Suite struct FixtureReplayTests {
        @Test func everyFixtureTwiceYieldsOneQueueFileAndTheDocumentedAckEveryTime() async throws {
            let fixtures = try Fixture.all()
            #expect(fixtures.count >= 20)
            let dir = try DaemonProcess.makeDirectory("replay")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)

            for round in 1...2 {
                for fixture in fixtures {
                    let response = try daemon.send(fixture: fixture.request)
                    #expect(
                        response.status == fixture.expectedStatus, "\(fixture) round \(round): \(response.bodyText)")
                    if let ack = fixture.expectedAck {
                        // Byte for byte: PGs compare the whole body.
                        #expect(response.body == Array(ack.utf8), "\(fixture) round \(round)")
                    } else {
                        #expect(
                            !response.bodyText.contains("OK") && !response.bodyText.contains("0000"),
                            "\(fixture): a refusal must not look like an ACK")
                    }
                }
            }
            try await daemon.waitForQueue(count: fixtures.filter(\.filesEvent).count)

            // Each accepted or conflicting fixture became exactly one event, carrying the facts a PG sent.
            let events = try daemon.queueFiles().map { url -> [String: Any] in
                try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            }
            #expect(events.count == fixtures.filter(\.filesEvent).count)
            #expect(Set(events.compactMap { $0["id"] as? String }).count == events.count)
            for fixture in fixtures where fixture.filesEvent {
                let matches = events.filter {
                    $0["provider"] as? String == fixture.provider
                        && $0["tid"] as? String == fixture.expect["tid"] as? String
                        && $0["state"] as? String == fixture.expect["state"] as? String
                        && ($0["kind"] as? String == "notification.conflict") == fixture.isConflict
                }
                #expect(matches.count == 1, "\(fixture): \(matches.count) events")
                guard let event = matches.first else { continue }
                if let other = fixture.expect["conflicts_with_case"] as? String {
                    let original = try #require(fixtures.first { $0.provider == fixture.provider && $0.name == other })
                    let originalEvent = events.first {
                        $0["tid"] as? String == original.expect["tid"] as? String
                            && $0["state"] as? String == original.expect["state"] as? String
                            && $0["kind"] as? String != "notification.conflict"
                    }
                    #expect(event["conflicts_with"] as? String == originalEvent?["id"] as? String, "\(fixture)")
                }
                for key in [
                    "merchant_id", "kind", "amount", "original_tid", "order_id", "pay_method", "result_code",
                    "requested_amount",
                ] {
                    if let expected = fixture.expect[key] {
                        #expect(
                            String(describing: event[key] ?? NSNull()) == String(describing: expected),
                            "\(fixture) \(key)")
                    }
                }
                // What every event carries beside the facts, compared as JSON (objects, lists,
                // booleans and null alike); every event-filing fixture states all of them.
                for key in ["test", "charset", "lossy_fields", "cash_receipt", "conflict"] {
                    guard let expected = fixture.expect[key] else {
                        Issue.record("\(fixture): expect.json has no \(key)")
                        continue
                    }
                    #expect(
                        try canonicalJSON(event[key] ?? NSNull()) == canonicalJSON(expected),
                        "\(fixture) \(key)")
                }
                if let name = fixture.expect["buyer_name"] as? String {
                    #expect((event["buyer"] as? [String: Any])?["name"] as? String == name, "\(fixture) buyer name")
                }
                if let goods = fixture.expect["goods_name"] as? String {
                    #expect(event["goods_name"] as? String == goods, "\(fixture) goods name")
                }
                #expect(event["schema"] as? String == "pgnoti.event.v1")
                #expect((event["received_at"] as? String)?.hasSuffix("+09:00") == true)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.queueTmp.path).isEmpty)
            try ReadmeExamples.check(try ReadmeExamples.render(fixtures: fixtures, events: events))

            // One log line per request; the merchant key never appears.
            let requestLines = try await daemon.notificationLines(count: fixtures.count * 2)
            #expect(requestLines.count == fixtures.count * 2)
            #expect(!daemon.logText.contains(Config.smartroTestKey))
            #expect(!daemon.logText.contains("0/4GFsSd7ERVRGX9WHOzJ96"))
            let outcomes = Dictionary(grouping: requestLines, by: { $0["outcome"] as? String ?? "?" }).mapValues(
                \.count)
            #expect(outcomes["accepted"] == fixtures.filter(\.isAccepted).count)
            #expect(outcomes["conflict"] ?? 0 == fixtures.filter(\.isConflict).count)
            #expect(outcomes["duplicate"] == fixtures.filter(\.filesEvent).count, "the second round is all retries")
            #expect(try await daemon.terminate() == 0)

            // Rejected requests were kept for inspection with their exact bytes.
            let ledger = try Ledger(path: dir.appendingPathComponent("state/pgnoti.sqlite").path)
            let rejected = try await ledger.quarantined(limit: 1000)
            #expect(rejected.count == fixtures.filter { !$0.filesEvent }.count * 2)
            for fixture in fixtures where !fixture.filesEvent {
                #expect(
                    rejected.contains {
                        $0.rawBody == Data(fixture.request.body) && $0.reason == fixture.expect["reason"] as? String
                    }, "\(fixture) kept")
            }
            try await ledger.close()
        }

        /// Fixtures meant for a production configuration (one that refuses the PGs' test merchants).
        @Test func productionProfileFixturesAreRefusedAsExpected() async throws {
            let fixtures = try Fixture.every().filter { $0.profile == "production" }
            #expect(!fixtures.isEmpty)
            let dir = try DaemonProcess.makeDirectory("production")
            _ = try DaemonProcess.writeConfig(
                in: dir,
                providers: """
                    [smartro]
                    merchant_keys_file = "\(dir.path)/smartro-keys"
                    [tomatopay]
                    allow_sources = ["127.0.0.0/8"]
                    [innopay]
                    allow_sources = ["127.0.0.0/8"]
                    """)
            let daemon = try await DaemonProcess.start(dir)
            for fixture in fixtures {
                let response = try daemon.send(fixture: fixture.request)
                #expect(response.status == fixture.expectedStatus, "\(fixture): \(response.bodyText)")
                #expect(response.bodyText == "rejected: \(fixture.expect["reason"] as? String ?? "?")\n", "\(fixture)")
            }
            #expect(try await daemon.terminate() == 0)
            #expect(try daemon.queueFiles().isEmpty)
        }

        @Test func dedupSurvivesARestart() async throws {
            let fixtures = try Fixture.all().filter(\.filesEvent)
            let dir = try DaemonProcess.makeDirectory("restart")
            _ = try DaemonProcess.writeConfig(in: dir)
            var daemon = try await DaemonProcess.start(dir)
            for fixture in fixtures { _ = try daemon.send(fixture: fixture.request) }
            try await daemon.waitForQueue(count: fixtures.count)
            #expect(try await daemon.terminate() == 0)

            daemon = try await DaemonProcess.start(dir)
            for fixture in fixtures {
                let response = try daemon.send(fixture: fixture.request)
                #expect(response.status == 200)
                #expect(response.body == Array((fixture.expectedAck ?? "?").utf8))
            }
            let outcomes = try await daemon.notificationLines(count: fixtures.count).compactMap {
                $0["outcome"] as? String
            }
            #expect(outcomes.count == fixtures.count)
            #expect(outcomes.allSatisfy { $0 == "duplicate" }, "\(outcomes)")
            #expect(try daemon.queueFiles().count == fixtures.count)
            #expect(try await daemon.terminate() == 0)
        }

        @Test func wrongSignatureGetsNoAckAndNoEvent() async throws {
            let fixture = try #require(
                try Fixture.all().first { $0.provider == "smartro" && $0.name == "reject-bad-signature" })
            let dir = try DaemonProcess.makeDirectory("badsig")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let response = try daemon.send(fixture: fixture.request)
            #expect(response.status == 403)
            #expect(response.bodyText != "OK")
            #expect(!response.bodyText.contains("OK"))
            let line = try await #require(daemon.notificationLines(count: 1).first)
            #expect(line["outcome"] as? String == "rejected")
            #expect(line["reason"] as? String == "signature_mismatch")
            // The relay files everything committed before the daemon exits, so the queue is final now.
            #expect(try await daemon.terminate() == 0)
            #expect(try daemon.queueFiles().isEmpty)
        }

        @Test func endpointAnswersUnknownProviderWrongMethodAndOversizedBodies() async throws {
            let dir = try DaemonProcess.makeDirectory("http")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let unknown = try daemon.send(
                Array(
                    "POST /notify/nicepay HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b".utf8
                ))
            #expect(unknown.status == 404)
            let get = try daemon.send(
                Array("GET /notify/smartro HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            #expect(get.status == 405)
            #expect(get.headers.contains { $0.name.lowercased() == "allow" && $0.value == "POST" })

            let big = Array(repeating: UInt8(ascii: "a"), count: 64 * 1024 + 1)
            let oversized = try daemon.send(
                Array(
                    "POST /notify/innopay HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: \(big.count)\r\nConnection: close\r\n\r\n"
                        .utf8) + big)
            #expect(oversized.status == 413)
            #expect(oversized.bodyText != "0000")
            // Chunked, with no Content-Length to refuse up front: counted while reading.
            var chunked = Array(
                "POST /notify/innopay HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    .utf8)
            for _ in 0..<5 {
                chunked +=
                    Array("4000\r\n".utf8) + Array(repeating: UInt8(ascii: "b"), count: 0x4000) + Array("\r\n".utf8)
            }
            chunked += Array("0\r\n\r\n".utf8)
            let streamed = try daemon.send(chunked)
            #expect(streamed.status == 413)
            let exactLimit = try daemon.send(
                Array(
                    "POST /notify/innopay HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\nConnection: close\r\n\r\n"
                        .utf8)
                    + Array(repeating: UInt8(ascii: "c"), count: 65536))
            #expect(exactLimit.status == 400, "at the limit the body is read and judged on its content")
            #expect(try await daemon.terminate() == 0)

            let ledger = try Ledger(path: dir.appendingPathComponent("state/pgnoti.sqlite").path)
            let rejected = try await ledger.quarantined(limit: 10)
            #expect(rejected.filter { $0.reason == "body_too_large" }.count == 2)
            try await ledger.close()
        }

        @Test func readyArrivesOnlyOnceThePortAcceptsAndStoppingOnSigterm() async throws {
            let dir = try DaemonProcess.makeDirectory("ready")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try DaemonProcess(directory: dir)
            try await daemon.waitUntilReady()
            #expect(daemon.port > 0)
            // The very first thing after READY=1: a connection, which must be accepted.
            let fd = try connectLoopback(port: daemon.port)
            close(fd)
            kill(daemon.process.processIdentifier, SIGTERM)
            // Throws if no STOPPING=1 arrives within the timeout.
            _ = try await daemon.notifySocket.receive(until: { $0.contains("STOPPING=1") }, timeout: .seconds(20))
            #expect(try await daemon.waitForExit(timeout: .seconds(30)) == 0)
            #expect(daemon.logObjects.contains { $0["msg"] as? String == "stopped" })
        }
    }
}

/// `value` as JSON with sorted keys, so two decoded documents compare by content, whatever the
/// order their dictionaries keep.
private func canonicalJSON(_ value: Any) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: [value], options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}
