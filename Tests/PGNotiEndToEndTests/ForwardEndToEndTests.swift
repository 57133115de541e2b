import Foundation
import PGNotiCore
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// `pgnoti forward` and `pgnoti consume`, as processes, against a receiver that verifies
    /// every request with the reference Standard Webhooks library.
    @Suite struct ForwardEndToEndTests {
        /// The issue's "done when": every fixture posted to the daemon reaches the app once,
        /// although the app answers 500 to each first attempt and is down for a while.
        @Test func everyFixtureArrivesOnceThroughFailuresAndAnOutage() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-all")
            var receiver = try await WebhookReceiver(in: dir, ["--fail-first", "1"])
            let port = receiver.port
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)
            let daemon = try await DaemonProcess.start(dir)
            defer { daemon.stop() }
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }

            let fixtures = try Fixture.all()
            let half = fixtures.count / 2
            for fixture in fixtures[..<half] { _ = try daemon.send(fixture: fixture.request) }
            let firstHalf = try await daemon.filedEventIDs(count: fixtures[..<half].filter(\.filesEvent).count)
            try await waitUntil(timeout: .seconds(30), "the first half delivered") {
                Set(Consumer.files(dir, "forward/done").compactMap(Self.eventID)) == firstHalf
            }
            try await receiver.stop()  // the app goes down, with nothing in flight
            for fixture in fixtures[half...] { _ = try daemon.send(fixture: fixture.request) }
            try await waitUntil(timeout: .seconds(20), "failed attempts while the app is down") {
                forwarder.logObjects.contains {
                    ($0["msg"] as? String) == "delivery failed; will retry"
                        && ($0["error"] as? String)?.contains("refused") == true
                }
            }
            receiver = try await WebhookReceiver(in: dir, port: port, ["--fail-first", "1"])

            let expected = try await daemon.filedEventIDs(count: fixtures.filter(\.filesEvent).count)
            try await waitUntil(timeout: .seconds(90), "every event delivered") {
                Set(Consumer.files(dir, "forward/done").compactMap(Self.eventID)) == expected
            }
            let records = receiver.records()
            #expect(records.allSatisfy { $0["verified"] as? Bool == true }, "every request verified")
            // Both receivers appended to one log: each event accepted once across the outage.
            let accepted = receiver.acceptedIDs()
            #expect(Set(accepted) == expected)
            #expect(accepted.count == expected.count, "no event accepted twice")
            #expect(Consumer.files(dir, "new").isEmpty && Consumer.files(dir, "forward/cur").isEmpty)
            #expect(Consumer.files(dir, "forward/failed").isEmpty)
            #expect(records.allSatisfy { ($0["user_agent"] as? String)?.hasPrefix("pgnoti/") == true })
            #expect(records.allSatisfy { $0["content_type"] as? String == "application/json; charset=utf-8" })
        }

        static func eventID(_ name: String) -> String? {
            guard let dash = name.firstIndex(of: "-") else { return nil }
            return String(name[name.index(after: dash)...].dropLast(5))
        }

        @Test func fiveHundredTwiceThenDeliveredOnceWithTheSameID() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-500")
            let receiver = try await WebhookReceiver(in: dir, ["--fail-first", "2"])
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)
            let event = Consumer.event(order: "ORD-500", tid: "T500")
            let name = try Consumer.file(event, sequence: 1, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(20), "delivery") { Consumer.files(dir, "forward/done") == [name] }
            let records = receiver.records()
            #expect(records.map { $0["status"] as? Int } == [500, 500, 204])
            #expect(records.allSatisfy { $0["id"] as? String == event.id && $0["verified"] as? Bool == true })
            let body = try Data(contentsOf: Consumer.queue(dir).appendingPathComponent("forward/done/\(name)"))
            #expect(records.allSatisfy { $0["body_sha256"] as? String == Digest.hex(Digest.sha256(Array(body))) })
        }

        @Test func aTimeoutIsRetried() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-timeout")
            let receiver = try await WebhookReceiver(in: dir, ["--delay-first", "4"])
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)  // timeout_seconds = 2
            let event = Consumer.event(order: "ORD-slow", tid: "TSLOW")
            let name = try Consumer.file(event, sequence: 1, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(30), "delivery") { Consumer.files(dir, "forward/done") == [name] }
            let failures = forwarder.logObjects.filter { ($0["msg"] as? String) == "delivery failed; will retry" }
            #expect(failures.count == 1 && (failures.first?["error"] as? String) == "timed out")
            #expect(receiver.records().allSatisfy { $0["id"] as? String == event.id })
        }

        @Test func aRefusedConnectionIsRetriedUntilTheAppIsBack() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-refused")
            let probe = try await WebhookReceiver(in: dir)
            let port = probe.port
            try await probe.stop()  // a port nothing listens on
            _ = try Consumer.writeConfig(in: dir, url: "http://127.0.0.1:\(port)/hook")
            let name = try Consumer.file(Consumer.event(order: "ORD-down", tid: "TDOWN"), sequence: 1, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(20), "two refused attempts") {
                forwarder.logObjects.filter { ($0["error"] as? String)?.contains("refused") == true }.count >= 2
            }
            let status = try await QuarantineEndToEndTests.runSplit(
                ["forward", "status", "--config", dir.appendingPathComponent("pgnoti.toml").path], in: dir)
            #expect(status.stdout.contains("retrying                    1") && status.stdout.contains("refused"))
            let receiver = try await WebhookReceiver(in: dir, port: port)
            try await waitUntil(timeout: .seconds(30), "delivery once the app is back") {
                Consumer.files(dir, "forward/done") == [name]
            }
            #expect(receiver.acceptedIDs().count == 1)
        }

        @Test func goneSendsTheEventStraightToFailed() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-410")
            let gone = Consumer.event(order: "ORD-gone", tid: "TGONE")
            let receiver = try await WebhookReceiver(in: dir, ["--gone", gone.id])
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)
            let name = try Consumer.file(gone, sequence: 1, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(20), "failed/") { Consumer.files(dir, "forward/failed") == [name] }
            _ = try await forwarder.waitForLog("the give-up line") {
                ($0["msg"] as? String)?.hasPrefix("delivery given up") == true && $0["event_id"] as? String == gone.id
            }
            // A later event delivered shows the forwarder went on past the 410; by then a retry
            // would have been decided and logged ("will retry"), and it was not.
            let later = Consumer.event(order: "ORD-later", tid: "TLATER")
            try Consumer.file(later, sequence: 2, in: dir)
            _ = try await forwarder.waitForLog("the later event delivered") {
                $0["msg"] as? String == "delivered" && $0["event_id"] as? String == later.id
            }
            #expect(
                !forwarder.logObjects.contains {
                    $0["msg"] as? String == "delivery failed; will retry" && $0["event_id"] as? String == gone.id
                })
            #expect(receiver.records().filter { $0["id"] as? String == gone.id }.count == 1, "410 is not retried")
            let status = try await QuarantineEndToEndTests.runSplit(
                ["forward", "status", "--json", "--config", dir.appendingPathComponent("pgnoti.toml").path], in: dir)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
            let failed = try #require(object["failed"] as? [[String: Any]])
            #expect(failed.first?["event_id"] as? String == gone.id)
            #expect((failed.first?["last_error"] as? String)?.hasPrefix("HTTP 410") == true)
        }

        /// A cancel never overtakes its approval, while another order goes ahead.
        @Test func eventsOfOneOrderKeepTheirOrder() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-order")
            let approval = Consumer.event(order: "ORD-A", tid: "TA")
            let cancel = Consumer.event(order: "ORD-A", tid: "TA", kind: .paymentCanceled, state: "1")
            let other = Consumer.event(order: "ORD-B", tid: "TB")
            // Every event's first three attempts fail.
            let receiver = try await WebhookReceiver(in: dir, ["--fail-first", "3"])
            _ = try Consumer.writeConfig(in: dir, url: receiver.url, retryInitial: 0.3)
            try Consumer.file(approval, sequence: 1, in: dir)
            try Consumer.file(cancel, sequence: 2, in: dir)
            try Consumer.file(other, sequence: 3, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(40), "all three delivered") {
                Consumer.files(dir, "forward/done").count == 3
            }
            let records = receiver.records()
            let approvalDone = try #require(
                records.first { $0["id"] as? String == approval.id && $0["status"] as? Int == 204 }?["at"] as? Double)
            let cancelFirst = try #require(records.first { $0["id"] as? String == cancel.id }?["at"] as? Double)
            #expect(cancelFirst > approvalDone, "the cancel waited for its approval")
            let otherFirst = try #require(records.first { $0["id"] as? String == other.id }?["at"] as? Double)
            #expect(otherFirst < approvalDone, "another order did not wait")
        }

        /// SIGKILL while requests are in flight: nothing lost, and what is sent again keeps its id.
        @Test func aKilledForwarderLosesNothing() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-kill")
            var receiver = try await WebhookReceiver(in: dir, ["--delay-all", "1.5"])
            let port = receiver.port
            _ = try Consumer.writeConfig(in: dir, url: receiver.url, extraForward: "concurrency = 8")
            let events = (1...6).map { Consumer.event(order: "ORD-K\($0)", tid: "TK\($0)") }
            for (i, event) in events.enumerated() { try Consumer.file(event, sequence: i, in: dir) }
            let first = try await Consumer.start(dir)
            try await waitUntil(timeout: .seconds(20), "requests in flight") {
                Consumer.files(dir, "forward/cur").count == events.count && Consumer.files(dir, "new").isEmpty
            }
            // The forwarder's own record of what it is sending: every event, so the kill lands
            // while all six requests are in flight (the receiver holds each for 1.5 s).
            let inFlight = Consumer.queue(dir).appendingPathComponent("forward/in-flight.json")
            try await waitUntil(timeout: .seconds(20), "all six in in-flight.json") {
                guard let data = try? Data(contentsOf: inFlight),
                    let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let files = object["files"] as? [Any]
                else { return false }
                return files.count == events.count
            }
            try await first.killHard()
            try await receiver.stop()
            receiver = try await WebhookReceiver(in: dir, port: port)
            let second = try await Consumer.start(dir)
            defer { second.stop() }
            try await waitUntil(timeout: .seconds(30), "every event delivered after the restart") {
                Consumer.files(dir, "forward/done").count == events.count
            }
            let ids = Set(events.map(\.id))
            let records = receiver.records()
            #expect(Set(records.compactMap { $0["id"] as? String }) == ids, "resent with the same webhook-id")
            #expect(records.allSatisfy { $0["verified"] as? Bool == true })
            #expect(Consumer.files(dir, "forward/cur").isEmpty && Consumer.files(dir, "forward/failed").isEmpty)
        }

        @Test func giveUpGoesToFailedAndRetryBringsItBack() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-giveup")
            var receiver = try await WebhookReceiver(in: dir, ["--fail-all"])
            let port = receiver.port
            // Give up after ~1.5 s.
            let config = try Consumer.writeConfig(
                in: dir, url: receiver.url, extraForward: "give_up_after_hours = 0.0004", retryInitial: 0.2
            ).path
            let event = Consumer.event(order: "ORD-G", tid: "TG")
            let name = try Consumer.file(event, sequence: 1, in: dir)
            let forwarder = try await Consumer.start(dir)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(20), "given up") { Consumer.files(dir, "forward/failed") == [name] }
            #expect(receiver.records().count >= 2)
            try await receiver.stop()
            receiver = try await WebhookReceiver(in: dir, port: port)
            let retry = try await QuarantineEndToEndTests.runSplit(
                ["forward", "retry", event.id, "--config", config], in: dir)
            #expect(retry.status == 0 && retry.stdout.contains(event.id))
            try await waitUntil(timeout: .seconds(20), "delivered after retry") {
                Consumer.files(dir, "forward/done") == [name]
            }
            #expect(receiver.acceptedIDs() == [event.id])
            let again = try await QuarantineEndToEndTests.runSplit(
                ["forward", "retry", "--all-failed", "--config", config], in: dir)
            #expect(again.stdout.contains("nothing failed"))
        }

        @Test func consumeExecRunsTheCommandAndRetriesAFailure() async throws {
            let dir = try DaemonProcess.makeDirectory("consume")
            _ = try DaemonProcess.writeConfig(in: dir, extra: "[forward]\nretry_initial_seconds = 0.2\n")
            let out = dir.appendingPathComponent("out")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let script = """
                if [ ! -e "\(out.path)/seen-$PGNOTI_EVENT_ID" ]; then touch "\(out.path)/seen-$PGNOTI_EVENT_ID"; exit 3; fi
                cat > "\(out.path)/$PGNOTI_EVENT_ID.json"; echo "$PGNOTI_EVENT_KIND" > "\(out.path)/$PGNOTI_EVENT_ID.kind"
                """
            let event = Consumer.event(order: "ORD-X", tid: "TX", kind: .paymentCanceled, state: "1")
            let name = try Consumer.file(event, sequence: 1, in: dir)
            let consumer = try await Consumer.start(dir, ["consume", "--exec", script])
            defer { consumer.stop() }
            try await waitUntil(timeout: .seconds(20), "done after one failure") {
                Consumer.files(dir, "forward/done") == [name]
            }
            let written = try Data(contentsOf: out.appendingPathComponent("\(event.id).json"))
            #expect(Array(written) == event.jsonBytes(), "the event JSON on stdin")
            let kind = try String(contentsOf: out.appendingPathComponent("\(event.id).kind"), encoding: .utf8)
            #expect(kind == "payment.canceled\n")
            let failures = consumer.logObjects.filter { ($0["msg"] as? String) == "delivery failed; will retry" }
            #expect(failures.count == 1 && failures.first?["error"] as? String == "exit status 3")
        }

        @Test func oneConsumerPerQueue() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-lock")
            let receiver = try await WebhookReceiver(in: dir)
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)
            let first = try await Consumer.start(dir)
            defer { first.stop() }
            let second = try await QuarantineEndToEndTests.runSplit(
                ["forward", "--config", dir.appendingPathComponent("pgnoti.toml").path], in: dir)
            #expect(second.status != 0 && second.stderr.contains(".forward.lock"))
        }
    }
}

extension DaemonProcess {
    /// Ids of the events the daemon filed (accepted, or a conflict it filed), from its log,
    /// once there are `count` of them.
    func filedEventIDs(count: Int) async throws -> Set<String> {
        let lines = try await waitForLog(count: count) { line in
            guard line["msg"] as? String == "notification" else { return false }
            let outcome = line["outcome"] as? String
            let conflictFiled = "\(line["conflict_filed"] ?? "")" == "true" || line["conflict_filed"] as? Bool == true
            return outcome == "accepted" || (outcome == "conflict" && conflictFiled)
        }
        let ids = Set(lines.compactMap { $0["event_id"] as? String })
        guard ids.count == count else {
            throw HarnessError("expected \(count) filed events, the log shows \(ids.count)")
        }
        return ids
    }
}
