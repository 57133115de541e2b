import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// More of living under systemd, against the real binary: the watchdog through a storage
/// outage, a reload beyond merchant keys under a kept-alive connection, the metrics an operator
/// graphs, and the operator CLI's filters.
extension EndToEnd {
    @Suite struct OperateMoreEndToEndTests {
        /// The value of one series in Prometheus text (`name{labels} value`), nil when absent.
        static func metric(_ text: String, _ series: String) -> Double? {
            for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
                return Double(line.dropFirst(series.count + 1).split(separator: " ").first ?? "")
            }
            return nil
        }

        static func metrics(_ daemon: DaemonProcess) async throws -> String {
            let response = try await daemon.admin("/metrics")
            try #require(response.status == 200)
            return response.bodyText
        }

        /// Replaces `new/` with a plain file, as a broken queue directory looks; returns where the
        /// directory went.
        static func breakQueue(_ daemon: DaemonProcess) throws -> URL {
            let moved = daemon.directory.appendingPathComponent("state/queue/new.away")
            try FileManager.default.moveItem(at: daemon.queueNew, to: moved)
            try Data("x".utf8).write(to: daemon.queueNew)
            return moved
        }

        static func repairQueue(_ daemon: DaemonProcess, from moved: URL) throws {
            try FileManager.default.removeItem(at: daemon.queueNew)
            try FileManager.default.moveItem(at: moved, to: daemon.queueNew)
        }

        /// A fixture's request with `Connection: close` taken out, for a kept-alive connection.
        static func keepAlive(_ request: RawHTTPRequest, port: Int) -> [UInt8] {
            var request = request
            request.headers.removeAll { $0.name.lowercased() == "connection" }
            return request.serialized(host: "127.0.0.1:\(port)", target: request.target)
        }

        /// A storage outage is a readiness problem, not a hang: while `new/` is unusable the
        /// watchdog keeps pinging, `/readyz` answers 503, STATUS= says filing fails and the relay
        /// errors are counted; once the directory is back the event is filed and all is well.
        @Test func watchdogKeepsPingingThroughAStorageOutage() async throws {
            let dir = try DaemonProcess.makeDirectory("wdoutage")
            _ = try DaemonProcess.writeConfig(in: dir)
            // A watchdog of 2 s: a ping every second while every part answers.
            let daemon = try await DaemonProcess.start(dir, environment: ["WATCHDOG_USEC": "2000000"])
            #expect(try await daemon.admin("/readyz").status == 200)
            let errorsBefore = Self.metric(try await Self.metrics(daemon), "pgnoti_relay_errors_total") ?? 0

            let moved = try Self.breakQueue(daemon)
            // STATUS= names the outage before any traffic shows it, with the cause kept.
            let quiet = try await daemon.notifySocket.receive(
                until: { $0.contains("STATUS=") && $0.contains("queue: ") }, timeout: .seconds(30))
            #expect(quiet.last { $0.contains("queue: ") }?.contains("not a directory") == true, "\(quiet)")
            // An event arrives meanwhile: ACKed and committed, it waits in the outbox.
            let approve = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            #expect(try daemon.send(fixture: approve).status == 200)
            let posted = Date()
            let down = try await daemon.admin("/readyz")
            #expect(down.status == 503, "\(down.bodyText)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(down.body)) as? [String: Any])
            let checks = try #require(body["checks"] as? [String: [String: Any]])
            #expect(checks["queue"]?["ok"] as? Bool == false)
            #expect((checks["queue"]?["detail"] as? String)?.contains("not a directory") == true, "\(checks)")

            // STATUS= (sent every 5 s when it changes) names what fails; the pings go on meanwhile.
            let untilStatus = try await daemon.notifySocket.receive(
                until: { $0.contains("STATUS=") && $0.contains("filing fails") }, timeout: .seconds(60))
            let status = try #require(untilStatus.last { $0.contains("filing fails") }, "\(untilStatus)")
            #expect(status.contains("outbox depth 1"), "\(status)")
            #expect(try await daemon.admin("/readyz").status == 503)
            let window = try await daemon.notifySocket.receiveAll(for: .seconds(4))
            #expect(try await daemon.admin("/readyz").status == 503, "still down at the end of the window")
            let pings = window.filter { $0.contains("WATCHDOG=1") }.count
            #expect(pings >= 2, "\(pings) pings in 4 s of outage (one a second expected)")
            let allPings = (untilStatus + window).filter { $0.contains("WATCHDOG=1") }.count
            let outage = Date().timeIntervalSince(posted)
            #expect(Double(allPings) >= outage / 3, "\(allPings) pings in \(outage) s of outage")
            #expect(
                !daemon.logObjects.contains { ($0["msg"] as? String)?.hasPrefix("watchdog: not answering") == true })

            // The metrics say the same: the relay fails, the event waits and ages in the outbox.
            let during = try await Self.metrics(daemon)
            let errorsDuring = try #require(Self.metric(during, "pgnoti_relay_errors_total"), "\(during)")
            #expect(errorsDuring > errorsBefore, "relay errors \(errorsBefore) → \(errorsDuring)")
            #expect(Self.metric(during, "pgnoti_outbox_depth") == 1)
            let waited = Date().timeIntervalSince(posted)
            let outboxAge = try #require(Self.metric(during, "pgnoti_outbox_oldest_age_seconds"))
            #expect(outboxAge >= 3 && outboxAge <= waited + 5, "outbox oldest \(outboxAge) s after \(waited) s")

            try Self.repairQueue(daemon, from: moved)
            // The relay backs off at most 30 s between tries.
            try await waitUntil(timeout: .seconds(90), "readiness to come back") {
                await (try? daemon.admin("/readyz").status) == 200
            }
            try await daemon.waitForQueue(count: 1, timeout: .seconds(60))
            let recovered = try await daemon.notifySocket.receive(
                until: { $0.contains("STATUS=") && $0.contains("events filed 1") && !$0.contains("filing fails") },
                timeout: .seconds(30))
            #expect(recovered.last?.contains("outbox depth 0") == true, "\(recovered)")
            let after = try await Self.metrics(daemon)
            #expect(Self.metric(after, "pgnoti_outbox_depth") == 0)
            #expect(Self.metric(after, "pgnoti_outbox_oldest_age_seconds") == 0)
            #expect(Self.metric(after, "pgnoti_queue_new_files") == 1)
            #expect(try await daemon.notifySocket.receiveAll(for: .seconds(3)).contains { $0.contains("WATCHDOG=1") })
            #expect(try await daemon.terminate() == 0)
        }

        /// SIGHUP changes TomatoPay's ACK body and then its `allow_sources`; both take effect on
        /// the next request, carried by the same kept-alive connection that was open before either
        /// reload. Innopay's settings, unchanged, go on as they were.
        @Test func reloadChangesAckBodyAndAllowSourcesUnderAKeptAliveConnection() async throws {
            let dir = try DaemonProcess.makeDirectory("reloadmore")
            // An idle kept-alive connection is cut after read_timeout_seconds: keep it well away.
            let top = "[limits]\nread_timeout_seconds = 300"
            func providers(ack: String, tomatoSources: String) -> String {
                """
                [tomatopay]
                allow_sources = \(tomatoSources)
                ack_body = "\(ack)"

                [innopay]
                allow_sources = ["127.0.0.0/8", "::1"]
                accept_test_merchants = true
                """
            }
            let loopback = #"["127.0.0.0/8", "::1"]"#
            _ = try DaemonProcess.writeConfig(
                in: dir, top: top, providers: providers(ack: "OK", tomatoSources: loopback))
            let daemon = try await DaemonProcess.start(dir)
            let connection = try RawHTTPConnection(host: "127.0.0.1", port: daemon.port, timeoutSeconds: 30)
            let approve = Self.keepAlive(
                try TrustEndToEndTests.fixture("tomatopay", "approve").request, port: daemon.port)
            let cancel = Self.keepAlive(
                try TrustEndToEndTests.fixture("tomatopay", "cancel-before-capture").request, port: daemon.port)
            let afterCapture = Self.keepAlive(
                try TrustEndToEndTests.fixture("tomatopay", "cancel-after-capture").request, port: daemon.port)
            let innopay = Self.keepAlive(
                try TrustEndToEndTests.fixture("innopay", "approve-card").request, port: daemon.port)

            let first = try connection.exchange(approve)
            #expect(first.status == 200 && first.bodyText == "OK")
            #expect(connection.isReusable)

            _ = try DaemonProcess.writeConfig(
                in: dir, top: top, providers: providers(ack: "RESULT=OK", tomatoSources: loopback))
            kill(daemon.process.processIdentifier, SIGHUP)
            let reloaded = try await daemon.waitForLog(count: 1, timeout: .seconds(30)) {
                $0["msg"] as? String == "reloaded configuration"
            }
            try #require(reloaded.count == 1, "\(daemon.logText)")
            #expect((reloaded.first?["needs_restart"] as? [String]) == [])
            let second = try connection.exchange(cancel)
            #expect(second.status == 200 && second.bodyText == "RESULT=OK", "\(second.status) \(second.bodyText)")
            // A retry of the first is ACKed with the body in force now.
            let retry = try connection.exchange(approve)
            #expect(retry.status == 200 && retry.bodyText == "RESULT=OK")

            _ = try DaemonProcess.writeConfig(
                in: dir, top: top, providers: providers(ack: "RESULT=OK", tomatoSources: #"["10.0.0.0/8"]"#))
            kill(daemon.process.processIdentifier, SIGHUP)
            let again = try await daemon.waitForLog(count: 2, timeout: .seconds(30)) {
                $0["msg"] as? String == "reloaded configuration"
            }
            try #require(again.count == 2, "\(daemon.logText)")
            let refused = try connection.exchange(afterCapture)
            #expect(refused.status == 403, "\(refused.status) \(refused.bodyText)")
            #expect(refused.bodyText.contains("source_not_allowed"), "\(refused.bodyText)")
            // Innopay's allowlist did not change, and the connection carries on after a refusal.
            #expect(connection.isReusable)
            let other = try connection.exchange(innopay)
            #expect(other.status == 200 && other.bodyText == "0000", "\(other.status) \(other.bodyText)")
            #expect(connection.isReusable)

            let lines = try await daemon.notificationLines(count: 5)
            #expect(lines.last { $0["provider"] as? String == "tomatopay" }?["outcome"] as? String == "rejected")
            let metrics = try await Self.metrics(daemon)
            #expect(Self.metric(metrics, #"pgnoti_quarantined_total{reason="source_not_allowed"}"#) == 1)
            // Three events: the approval, the cancel, Innopay's approval; the refusal files none.
            try await daemon.waitForQueue(count: 3)
            #expect(try await daemon.terminate() == 0)
        }

        /// A second version of a TomatoPay notification (same TID and state, another amount) is a
        /// conflict the metrics count; the consumer-lag gauge ages with the file in `new/`.
        @Test func metricsCountAConflictAndAgeTheQueue() async throws {
            let dir = try DaemonProcess.makeDirectory("metricsmore")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let original = try TrustEndToEndTests.fixture("tomatopay", "approve").request
            #expect(try daemon.send(fixture: original).status == 200)
            var conflicting = original
            let body = String(decoding: original.body, as: UTF8.self)
            try #require(body.contains("&Amt=12000&"))
            conflicting.body = Array(body.replacingOccurrences(of: "&Amt=12000&", with: "&Amt=12500&").utf8)
            conflicting.headers = conflicting.headers.map {
                $0.name.lowercased() == "content-length" ? ($0.name, "\(conflicting.body.count)") : $0
            }
            let response = try daemon.send(fixture: conflicting)
            #expect(response.status == 200 && response.bodyText == "OK")
            try await daemon.waitForQueue(count: 2)
            let filed = Date()
            // Time must pass: the consumer-lag gauge is checked to have aged with the files.
            try await Task.sleep(for: .seconds(2))

            let text = try await Self.metrics(daemon)
            #expect(Self.metric(text, #"pgnoti_conflicts_total{provider="tomatopay"}"#) == 1, "\(text)")
            #expect(Self.metric(text, #"pgnoti_requests_total{provider="tomatopay",outcome="conflict"}"#) == 1)
            #expect(Self.metric(text, #"pgnoti_requests_total{provider="tomatopay",outcome="accepted"}"#) == 1)
            #expect(Self.metric(text, "pgnoti_events_filed_total") == 2)
            #expect(Self.metric(text, "pgnoti_queue_new_files") == 2)
            let queueAge = try #require(Self.metric(text, "pgnoti_queue_oldest_age_seconds"), "\(text)")
            let waited = Date().timeIntervalSince(filed)
            #expect(queueAge >= 1.5 && queueAge <= waited + 10, "queue oldest \(queueAge) s, waited \(waited) s")
            // Everything is filed: nothing waits in the outbox, and the gauge says so.
            #expect(Self.metric(text, "pgnoti_outbox_depth") == 0)
            #expect(Self.metric(text, "pgnoti_outbox_oldest_age_seconds") == 0)
            #expect(try await daemon.terminate() == 0)
        }

        /// `events list` filters (TID, order, kind, limit, until/since, together), `events show
        /// --raw` warning on stderr only, and `stats --json` as one object with the counts.
        @Test func operatorCLIFiltersOnASeededDatabase() async throws {
            let dir = try DaemonProcess.makeDirectory("clifilters")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            func post(_ provider: String, _ name: String) throws {
                let response = try daemon.send(fixture: try TrustEndToEndTests.fixture(provider, name).request)
                #expect(response.status == 200 || name.hasPrefix("reject"), "\(provider)/\(name): \(response.status)")
            }
            for (provider, name) in [
                ("smartro", "approve-card"), ("smartro", "cancel-after-capture"), ("innopay", "approve-card"),
            ] {
                try post(provider, name)
            }
            // Received times are stored in microseconds: a clear second either side of the cut.
            // Time must pass here (there is nothing to wait for).
            try await Task.sleep(for: .milliseconds(1200))
            let cut = ISO8601DateFormatter.string(
                from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                formatOptions: [.withInternetDateTime, .withFractionalSeconds])
            try await Task.sleep(for: .milliseconds(1200))
            for (provider, name) in [
                ("smartro", "bank-transfer"), ("innopay", "cancel-full"), ("tomatopay", "approve"),
                ("smartro", "approve-card"), ("smartro", "conflict-amount"), ("smartro", "reject-bad-signature"),
            ] {
                try post(provider, name)
            }
            // Six notifications and one conflict filed; the retry and the refusal file nothing.
            try await daemon.waitForQueue(count: 7)

            func list(_ filters: [String]) async throws -> [[String: Any]] {
                let result = try await OperatorCLIEndToEndTests.run(
                    ["events", "list", "--config", config, "--json"] + filters, in: dir)
                try #require(result.status == 0, "\(filters): \(result.stderr)")
                return result.stdout.split(separator: "\n").map {
                    (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) ?? [:]
                }
            }
            let all = try await list([])
            #expect(all.count == 6)
            let innopayTID = "testpay01m01012411231530120101"
            let byTID = try await list(["--tid", innopayTID])
            #expect(byTID.count == 2 && byTID.allSatisfy { $0["tid"] as? String == innopayTID })
            #expect(byTID.map { $0["kind"] as? String } == ["payment.canceled", "payment.approved"], "newest first")
            let byOrder = try await list(["--order", "ORD-20241123-0002"])
            #expect(byOrder.count == 1)
            #expect(byOrder.first?["tid"] as? String == "SMTPAY001m01012411231612451235")
            let canceled = try await list(["--kind", "payment.canceled"])
            #expect(Set(canceled.compactMap { $0["provider"] as? String }) == ["smartro", "innopay"])
            #expect(canceled.count == 2 && canceled.allSatisfy { $0["kind"] as? String == "payment.canceled" })
            let limited = try await list(["--limit", "2"])
            #expect(limited.count == 2)
            #expect(
                limited.map { $0["event_id"] as? String } == all.prefix(2).map { $0["event_id"] as? String },
                "the newest two")
            #expect(limited.first?["provider"] as? String == "tomatopay")
            let before = try await list(["--until", cut])
            #expect(before.count == 3, "\(cut): \(before)")
            #expect(
                Set(before.compactMap { $0["order_id"] as? String })
                    == ["ORD-20241123-0001", "ORD-20241123-0002", "INNO-20241123-0001"])
            let afterCut = try await list(["--since", cut])
            #expect(afterCut.count == 3)
            #expect(Set(afterCut.compactMap { $0["provider"] as? String }) == ["smartro", "innopay", "tomatopay"])
            let combined = try await list(["--provider", "smartro", "--kind", "payment.approved", "--until", cut])
            #expect(combined.count == 1 && combined.first?["retries"] as? Int == 1, "\(combined)")
            #expect(try await list(["--tid", "no-such-tid"]).isEmpty)

            let table = try await OperatorCLIEndToEndTests.run(
                ["events", "list", "--config", config, "--kind", "payment.canceled"], in: dir)
            let rows = table.stdout.split(separator: "\n")
            #expect(rows.count == 3, "a header and two rows: \(table.stdout)")
            #expect(rows.first?.hasPrefix("RECEIVED (KST)") == true)
            #expect(table.stdout.contains(innopayTID), "the whole TID")
            let badUntil = try await OperatorCLIEndToEndTests.run(
                ["events", "list", "--config", config, "--until", "yesterday"], in: dir)
            #expect(badUntil.status != 0 && badUntil.stderr.contains("--until"), "\(badUntil.stderr)")

            let raw = try await OperatorCLIEndToEndTests.run(
                ["events", "show", "ORD-20241123-0002", "--raw", "--config", config], in: dir)
            #expect(raw.status == 0, "\(raw.stderr)")
            #expect(raw.stderr.contains("warning: --raw prints requests exactly as received"), "\(raw.stderr)")
            #expect(!raw.stdout.contains("warning"), "the warning goes to stderr only")
            #expect(raw.stdout.contains("raw:") && raw.stdout.contains("SMTPAY001m01012411231612451235"))
            let plain = try await OperatorCLIEndToEndTests.run(
                ["events", "show", "ORD-20241123-0002", "--config", config], in: dir)
            #expect(plain.stderr.isEmpty && !plain.stdout.contains("raw:"), "\(plain.stderr)")

            let stats = try await OperatorCLIEndToEndTests.run(["stats", "--json", "--config", config], in: dir)
            #expect(stats.status == 0, "\(stats.stderr)")
            let statLines = stats.stdout.split(separator: "\n")
            #expect(statLines.count == 1, "one JSON object: \(stats.stdout)")
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data((statLines.first ?? "").utf8)) as? [String: Any])
            let events = try #require(object["events"] as? [[String: Any]])
            /// "events/retries" for one provider and kind.
            func row(_ provider: String, _ kind: String) -> String {
                let found = events.first { $0["provider"] as? String == provider && $0["kind"] as? String == kind }
                return "\(found?["events"] as? Int ?? -1)/\(found?["retries"] as? Int ?? -1)"
            }
            #expect(row("smartro", "payment.approved") == "2/1")
            #expect(row("smartro", "payment.canceled") == "1/0")
            #expect(row("innopay", "payment.approved") == "1/0")
            #expect(row("innopay", "payment.canceled") == "1/0")
            #expect(row("tomatopay", "payment.approved") == "1/0")
            #expect(events.count == 5, "\(events)")
            #expect(object["conflicts"] as? Int == 1)
            #expect(object["conflicts_ignored"] as? Int == 0)
            #expect((object["quarantine"] as? [String: Any])?["signature_mismatch"] as? Int == 1)
            #expect(object["outbox_depth"] as? Int == 0)
            #expect(object["queue_new_files"] as? Int == 7)
            #expect((object["oldest_in_queue"] as? String)?.hasSuffix("+09:00") == true, "KST")
            let since = try await OperatorCLIEndToEndTests.run(
                ["stats", "--json", "--since", cut, "--config", config], in: dir)
            let recent = try #require(
                try JSONSerialization.jsonObject(with: Data(since.stdout.utf8)) as? [String: Any])
            let recentEvents = try #require(recent["events"] as? [[String: Any]])
            #expect(recentEvents.reduce(0) { $0 + ($1["events"] as? Int ?? 0) } == 3, "\(recentEvents)")
            #expect(recent["conflicts"] as? Int == 1)
            #expect(try await daemon.terminate() == 0)
        }
    }
}
