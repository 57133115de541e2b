import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Living under systemd: sd_notify, reload, readiness and metrics, against the real binary.
extension EndToEnd {
    @Suite struct OperateEndToEndTests {
        @Test func notifiesReadyStatusWatchdogReloadingAndStopping() async throws {
            let dir = try DaemonProcess.makeDirectory("sdnotify")
            _ = try DaemonProcess.writeConfig(in: dir)
            // A watchdog of 400 ms: pgnoti must ping every 200 ms.
            let daemon = try DaemonProcess(directory: dir, environment: ["WATCHDOG_USEC": "400000"])
            try await daemon.waitUntilReady()
            let pings = try await daemon.notifySocket.receiveAll(for: .milliseconds(1500)).filter {
                $0.contains("WATCHDOG=1")
            }
            #expect(pings.count >= 4, "\(pings.count) pings in 1.5 s")
            #expect(pings.count <= 12)

            kill(daemon.process.processIdentifier, SIGHUP)
            let reload = try await daemon.notifySocket.receive(until: { $0.contains("READY=1") })
            let reloading = try #require(reload.firstIndex { $0.contains("RELOADING=1") })
            #expect(reload[reloading].contains("MONOTONIC_USEC="))
            let ready = try #require(reload.lastIndex { $0.contains("READY=1") })
            #expect(ready > reloading)
            #expect(reload[ready].contains("STATUS=listening on port \(daemon.port)"))

            kill(daemon.process.processIdentifier, SIGTERM)
            let stopping = try await daemon.notifySocket.receive(until: { $0.contains("STOPPING=1") })
            #expect(stopping.last?.contains("STOPPING=1") == true)
            #expect(try await daemon.waitForExit(timeout: .seconds(30)) == 0)
        }

        @Test func theStatusLineSaysWhatWasFiled() async throws {
            let dir = try DaemonProcess.makeDirectory("status")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request)
            let status = try await daemon.notifySocket.receive(
                until: { $0.contains("events filed 1") }, timeout: .seconds(15))
            #expect(
                status.last?.contains("STATUS=listening on port \(daemon.port); events filed 1; outbox depth 0") == true
            )
            #expect(try await daemon.terminate() == 0)
        }

        /// SIGHUP with a fixed merchant key takes effect without a restart; a broken file is refused
        /// naming the key, and the running configuration stays.
        @Test func sighupReloadsKeysAndRefusesABrokenConfiguration() async throws {
            let dir = try DaemonProcess.makeDirectory("reload")
            try QuarantineEndToEndTests.writeKeys(QuarantineEndToEndTests.wrongKey, in: dir)
            let config = try DaemonProcess.writeConfig(in: dir, providers: QuarantineEndToEndTests.smartroOnly(dir))
            let daemon = try await DaemonProcess.start(dir)
            let approve = try TrustEndToEndTests.fixture("smartro", "approve-card").request
            #expect(try daemon.send(fixture: approve).status == 403)

            try QuarantineEndToEndTests.writeKeys(Config.smartroTestKey, in: dir)
            // The body limit lives in the connection guard too: it waits for a restart.
            let started = try String(contentsOf: config, encoding: .utf8)
            try ("max_body_bytes = 1024\n" + started).write(to: config, atomically: true, encoding: .utf8)
            kill(daemon.process.processIdentifier, SIGHUP)
            let reloaded = try await daemon.waitForLog { $0["msg"] as? String == "reloaded configuration" }
            #expect(reloaded.count == 1)
            #expect((reloaded.first?["needs_restart"] as? [String])?.contains("max_body_bytes") == true)
            #expect(try daemon.send(fixture: approve).status == 200)

            let good = try String(contentsOf: config, encoding: .utf8)
            try (good + "\n[smartro.sign_algorithm]\n").write(to: config, atomically: true, encoding: .utf8)
            try "SMTPAY001m=\(QuarantineEndToEndTests.wrongKey)\n".write(
                to: dir.appendingPathComponent("keys"), atomically: true, encoding: .utf8)
            kill(daemon.process.processIdentifier, SIGHUP)
            let refused = try await daemon.waitForLog { ($0["msg"] as? String)?.hasPrefix("reload refused") == true }
            #expect(
                refused.first?["key"] as? String == "config"
                    || refused.first?["key"] as? String == "smartro.sign_algorithm"
            )
            // The old configuration (the right key) is still in force.
            let vbank = try TrustEndToEndTests.fixture("smartro", "vbank-issued").request
            #expect(try daemon.send(fixture: vbank).status == 200)
            #expect(!daemon.logText.contains(Config.smartroTestKey))
            #expect(try await daemon.terminate() == 0)
        }

        @Test func readyzTurns503WhileTheQueueIsUnusableAndRecovers() async throws {
            let dir = try DaemonProcess.makeDirectory("readyz")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            #expect(try await daemon.admin("/healthz").bodyText == "ok\n")
            #expect(try await daemon.admin("/readyz").status == 200)

            let moved = dir.appendingPathComponent("state/queue/new.away")
            try FileManager.default.moveItem(at: daemon.queueNew, to: moved)
            try Data("x".utf8).write(to: daemon.queueNew)
            let down = try await daemon.admin("/readyz")
            #expect(down.status == 503)
            let body = try JSONSerialization.jsonObject(with: Data(down.body)) as! [String: Any]
            let checks = try #require(body["checks"] as? [String: [String: Any]])
            #expect(checks["queue"]?["ok"] as? Bool == false)
            #expect((checks["queue"]?["detail"] as? String)?.contains("new") == true)
            #expect(checks["database"]?["ok"] as? Bool == true)
            // The ACKs go on meanwhile.
            #expect(
                try daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request).status == 200)

            try FileManager.default.removeItem(at: daemon.queueNew)
            try FileManager.default.moveItem(at: moved, to: daemon.queueNew)
            try await waitUntil(timeout: .seconds(60), "readiness to come back") {
                await (try? daemon.admin("/readyz").status) == 200
            }
            try await daemon.waitForQueue(count: 1, timeout: .seconds(60))
            #expect(try await daemon.terminate() == 0)
        }

        /// `/readyz` checks free disk against `min_free_bytes`: with 1 PiB required no file system
        /// here qualifies, so the daemon answers 503 naming the disk check, while the database and
        /// the queue are fine and the ACKs go on.
        @Test func readyzIs503NamingTheDiskWhenFreeSpaceIsBelowMinFreeBytes() async throws {
            let dir = try DaemonProcess.makeDirectory("minfree")
            _ = try DaemonProcess.writeConfig(in: dir, top: "min_free_bytes = 1125899906842624")
            let daemon = try await DaemonProcess.start(dir)
            #expect(try await daemon.admin("/healthz").status == 200)
            let down = try await daemon.admin("/readyz")
            #expect(down.status == 503, "\(down.bodyText)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(down.body)) as? [String: Any])
            #expect(body["ready"] as? Bool == false)
            let checks = try #require(body["checks"] as? [String: [String: Any]])
            #expect(checks["disk"]?["ok"] as? Bool == false)
            let detail = checks["disk"]?["detail"] as? String ?? ""
            #expect(detail.contains("below min_free_bytes 1125899906842624"), "\(detail)")
            #expect(detail.contains(dir.appendingPathComponent("state").path), "\(detail)")
            #expect(checks["database"]?["ok"] as? Bool == true)
            #expect(checks["queue"]?["ok"] as? Bool == true)
            // Readiness only: the daemon still stores and ACKs.
            #expect(
                try daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request).status == 200)
            #expect(try await daemon.terminate() == 0)
        }

        /// `serve --admin-listen off` overrides the config's `admin_listen`: no admin listener is
        /// started (nothing logs "admin listening", and the daemon listens on its public port only).
        /// The daemon says so once, at start: "admin listener off".
        @Test func serveAdminListenOffStartsNoAdminListener() async throws {
            let dir = try DaemonProcess.makeDirectory("adminoff")
            let config = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--config", config.path, "--admin-listen", "off"])
            #expect(
                try daemon.send(fixture: try TrustEndToEndTests.fixture("tomatopay", "approve").request).status == 200)
            try await daemon.waitForQueue(count: 1)
            // The daemon decides about the admin listener once, at start, and says "admin listener
            // off": after that line, no admin listener can still appear.
            let off = try await daemon.waitForLog(message: "admin listener off")
            #expect(daemon.listeningPorts() == [daemon.port])
            #expect(!daemon.logObjects.contains { $0["msg"] as? String == "admin listening" })
            #expect(off.count == 1, "\(daemon.logText)")
            #expect(off.first?["level"] as? String == "info")
            #expect(try await daemon.terminate() == 0)

            // The same config without the override: two listeners, the admin one logged.
            let withAdmin = try await DaemonProcess.start(dir)
            let adminPort = try await withAdmin.adminPort()
            try await waitUntil(timeout: .seconds(20), "both listeners") {
                withAdmin.listeningPorts() == [withAdmin.port, adminPort]
            }
            #expect(!withAdmin.logObjects.contains { $0["msg"] as? String == "admin listener off" })
            #expect(try await withAdmin.admin("/healthz").status == 200)
            #expect(try await withAdmin.terminate() == 0)
        }

        @Test func metricsCountAPostedFixture() async throws {
            let dir = try DaemonProcess.makeDirectory("metrics")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "reject-bad-signature").request)
            try await daemon.waitForQueue(count: 1)
            let metrics = try await daemon.admin("/metrics")
            #expect(metrics.status == 200)
            let text = metrics.bodyText
            for line in [
                #"pgnoti_requests_total{provider="smartro",outcome="accepted"} 1"#,
                #"pgnoti_requests_total{provider="smartro",outcome="duplicate"} 1"#,
                #"pgnoti_requests_total{provider="smartro",outcome="rejected"} 1"#,
                #"pgnoti_quarantined_total{reason="signature_mismatch"} 1"#,
                "pgnoti_events_filed_total 1", "pgnoti_ack_latency_seconds_count 3", "pgnoti_outbox_depth 0",
                "pgnoti_queue_new_files 1", #"pgnoti_build_info{version="#,
            ] {
                #expect(text.contains(line), "\(line)")
            }
            #expect(text.contains("pgnoti_group_commit_batch_size_bucket"))
            #expect(try await daemon.terminate() == 0)
        }
    }
}
