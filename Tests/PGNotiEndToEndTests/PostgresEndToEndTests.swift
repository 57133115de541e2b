import Foundation
import PGNotiConfig
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Two or more real daemons on one PostgreSQL, spoken to in raw HTTP as the PGs (and a load
    /// balancer that retries on the other host) would.
    @Suite(
        .enabled(
            if: ProcessInfo.processInfo.environment["PGNOTI_TEST_DATABASE_URL"] != nil,
            "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL end-to-end tests are skipped"))
    struct PostgresEndToEndTests {
        static var serverURL: String { ProcessInfo.processInfo.environment["PGNOTI_TEST_DATABASE_URL"]! }

        /// `psql -tA` on `url`: the rows as text.
        @discardableResult
        static func psql(_ url: String, _ sql: String) async throws -> String {
            let run = try await runProcess(
                URL(fileURLWithPath: "/usr/bin/psql"), [url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
            guard run.status == 0 else { throw HarnessError("psql: \(run.stderr)") }
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// A database of its own on the test server.
        static func scratchDatabase() async throws -> String {
            let name = "pgnoti_e2e_" + UUID().uuidString.prefix(8).lowercased()
            try await psql(serverURL, "CREATE DATABASE \(name)")
            var parts = serverURL.split(separator: "/", omittingEmptySubsequences: false)
            parts[parts.count - 1] = Substring(name)
            return parts.joined(separator: "/")
        }

        static func daemon(_ name: String, database: String) async throws -> DaemonProcess {
            let dir = try DaemonProcess.makeDirectory(name)
            try DaemonProcess.writeConfig(in: dir, postgres: database)
            let daemon = try await DaemonProcess.start(dir)
            // READY=1 comes with the listener (the daemon starts whether or not the database is
            // up); /readyz says when the database is there too. Until then it answers 500.
            try await waitUntil(timeout: .seconds(10), "the database connected") {
                try await daemon.admin("/readyz").status == 200
            }
            return daemon
        }

        static func post(_ tid: String, to daemon: DaemonProcess, cancel: Bool = false) async throws -> Int {
            let bytes = DeployEndToEndTests.smartroPost(
                tid: tid, key: Config.smartroTestKey, port: daemon.port, cancel: cancel)
            return try await onOwnThread { try daemon.send(bytes).status }
        }

        @Test func aDaemonStartedBeforeItsDatabaseIsNotReadyThenMigratesAndACKs() async throws {
            try await PostgresServer.with { server in
                try await server.stopServer()
                let dir = try DaemonProcess.makeDirectory("pg-late")
                try DaemonProcess.writeConfig(in: dir, postgres: server.url)
                // The daemon starts (READY=1 with the listener) although the database is down.
                let daemon = try await DaemonProcess.start(dir)
                defer { daemon.stop() }
                #expect(try await daemon.admin("/readyz").status == 503)
                #expect(try await Self.post("SMTPAY001m01012411270000000001", to: daemon) == 500, "no ACK")
                try await server.startServer()
                try await waitUntil(timeout: .seconds(10), "ready once the database is up") {
                    try await daemon.admin("/readyz").status == 200
                }
                #expect(try await Self.post("SMTPAY001m01012411270000000001", to: daemon) == 200)
                #expect(
                    try await Self.psql(server.url, "SELECT max(version) FROM pgnoti_schema") == "2",
                    "migrated when reachable")
            }
        }

        @Test func thePasswordAppearsInNoLogLineErrorOrOutput() async throws {
            let secret = "Sup3r-S3cret-pw"
            // Trust authentication on the test server ignores the password: it only has to be
            // carried, and never shown.
            let database = try await Self.scratchDatabase().replacingOccurrences(
                of: "postgresql://postgres@", with: "postgresql://postgres:\(secret)@")
            let dir = try DaemonProcess.makeDirectory("pg-secret")
            try DaemonProcess.writeConfig(in: dir, postgres: database)
            let daemon = try await DaemonProcess.start(dir)
            try await waitUntil(timeout: .seconds(10), "the database connected") {
                try await daemon.admin("/readyz").status == 200
            }
            #expect(try await Self.post("SMTPAY001m01012411280000000001", to: daemon) == 200)
            let config = dir.appendingPathComponent("pgnoti.toml").path
            var outputs = [daemon.logText]
            for arguments in [["check-config"], ["events", "list"], ["stats"], ["backup", "x.sqlite"], ["forward"]] {
                let run = try await runProcess(DaemonProcess.binary, arguments + ["--config", config], in: dir)
                outputs.append(run.stdout + run.stderr)
            }
            // And where a connection fails: a database that does not exist.
            let wrong = database.replacingOccurrences(of: "/pgnoti_e2e_", with: "/missing_")
            try DaemonProcess.writeConfig(in: dir, postgres: wrong)
            let failed = try await runProcess(DaemonProcess.binary, ["events", "list", "--config", config], in: dir)
            #expect(failed.status != 0)
            outputs.append(failed.stdout + failed.stderr)
            let checked = try await runProcess(DaemonProcess.binary, ["check-config", "--config", config], in: dir)
            outputs.append(checked.stdout + checked.stderr)
            daemon.stop()
            for output in outputs {
                #expect(!output.contains(secret), "\(output.prefix(2000))")
            }
            #expect(outputs[1].contains("postgres:***@"), "the URL is shown with *** for its password")
        }

        @Test func eachNotificationPostedToBothHostsIsOneEvent() async throws {
            let database = try await Self.scratchDatabase()
            let hostA = try await Self.daemon("pg-a", database: database)
            let hostB = try await Self.daemon("pg-b", database: database)
            // Every notification to both hosts at once: a PG retry through the load balancer.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for n in 0..<30 {
                    let tid = "SMTPAY001m0101241123\(String(format: "%010d", n))"
                    group.addTask { try await Self.post(tid, to: hostA) }
                    group.addTask { try await Self.post(tid, to: hostB) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.count == 60 && statuses.allSatisfy { $0 == 200 }, "both hosts ACK every post")
            #expect(try await Self.psql(database, "SELECT count(*) FROM notifications") == "30")
            #expect(try await Self.psql(database, "SELECT count(*) FROM outbox") == "30", "one event each")
            #expect(try await Self.psql(database, "SELECT sum(retries) FROM notifications") == "30")
            // Delivery figures come from the shared database: the same on every host.
            for host in [hostA, hostB] {
                let metrics = String(decoding: try await host.admin("/metrics").body, as: UTF8.self)
                #expect(metrics.contains("pgnoti_forward_pending 30") && metrics.contains("pgnoti_outbox_depth 30"))
                #expect(metrics.contains("pgnoti_forward_lease_held 0") && metrics.contains("pgnoti_forward_running 0"))
            }
            hostA.stop()
            hostB.stop()
        }

        @Test func aDaemonKilledInABurstLosesNothingItsPeerPicksUp() async throws {
            let database = try await Self.scratchDatabase()
            let hostA = try await Self.daemon("pg-kill-a", database: database)
            let hostB = try await Self.daemon("pg-kill-b", database: database)
            let tids = (0..<60).map { "SMTPAY001m0101241124\(String(format: "%010d", $0))" }
            let acked = try await withThrowingTaskGroup(of: String?.self) { group in
                for (n, tid) in tids.enumerated() {
                    group.addTask {
                        if n == 20 { try await hostA.killHard() }
                        // To A first; what A did not ACK (killed, refused) goes to B, as the load
                        // balancer's proxy_next_upstream would send it.
                        if let status = try? await Self.post(tid, to: hostA), status == 200 { return tid }
                        return try await Self.post(tid, to: hostB) == 200 ? tid : nil
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }.compactMap { $0 }
            }
            #expect(acked.count == 60, "every notification was ACKed by one host or the other")
            let stored = try await Self.psql(database, "SELECT tid FROM notifications ORDER BY tid")
            #expect(stored.split(separator: "\n").map(String.init) == tids.sorted(), "exactly one row each")
            #expect(try await Self.psql(database, "SELECT count(*) FROM outbox") == "60")
            hostB.stop()
        }

        @Test func noACKWhileTheDatabaseIsDownAndACKsResumeWithoutARestart() async throws {
            // A server of its own, to stop and start under the daemon.
            try await PostgresServer.with { server in
                let daemon = try await Self.daemon("pg-outage", database: server.url)
                defer { daemon.stop() }
                #expect(try await Self.post("SMTPAY001m01012411250000000001", to: daemon) == 200, "\(daemon.logText)")

                try await server.stopServer()
                let before = ContinuousClock.now
                let down = try await Self.post("SMTPAY001m01012411250000000002", to: daemon)
                #expect(down == 500, "no ACK while the database is down")
                #expect(ContinuousClock.now - before < .seconds(5), "answered within 5 s")
                let ready = try await daemon.admin("/readyz")
                #expect(ready.status == 503 && String(decoding: ready.body, as: UTF8.self).contains("PostgreSQL"))

                try await server.startServer()
                let back = ContinuousClock.now
                do {
                    try await waitUntil(timeout: .seconds(10), "ACKs again without a restart") {
                        try await Self.post("SMTPAY001m01012411250000000002", to: daemon) == 200
                    }
                } catch {
                    Issue.record("\(error)\n\(daemon.logText.suffix(3000))")
                }
                #expect(ContinuousClock.now - back < .seconds(10))
                #expect(try await Self.psql(server.url, "SELECT count(*) FROM notifications") == "2")
            }
        }

        @Test func operatorCommandsWorkOnTheSharedDatabase() async throws {
            let database = try await Self.scratchDatabase()
            let daemon = try await Self.daemon("pg-cli", database: database)
            let tid = "SMTPAY001m01012411260000000001"
            #expect(try await Self.post(tid, to: daemon) == 200)
            let forged = DeployEndToEndTests.smartroPost(
                tid: "SMTPAY001m01012411260000000002", key: "d3Jvbmc=", port: daemon.port)
            #expect(try await onOwnThread { try daemon.send(forged).status } != 200)
            let config = daemon.directory.appendingPathComponent("pgnoti.toml").path
            func pgnoti(_ arguments: String...) async throws -> ProcessResult {
                try await runProcess(DaemonProcess.binary, arguments + ["--config", config], in: daemon.directory)
            }

            let list = try await pgnoti("events", "list")
            #expect(list.status == 0 && list.stdout.contains(tid), "\(list.stderr)")
            let show = try await pgnoti("events", "show", tid)
            #expect(show.status == 0 && show.stdout.contains("in the database's outbox"), "\(show.stdout)")
            let stats = try await pgnoti("stats")
            #expect(stats.status == 0 && stats.stdout.contains("outbox: 1 waiting") && !stats.stdout.contains("new/"))
            let quarantine = try await pgnoti("quarantine", "list")
            #expect(quarantine.status == 0 && quarantine.stdout.contains("signature"), "\(quarantine.stdout)")
            let redeliver = try await pgnoti("redeliver", "--since", "1h")
            #expect(redeliver.status == 0 && redeliver.stdout.contains("database's outbox"))
            let migrate = try await pgnoti("migrate")
            #expect(migrate.status == 0 && migrate.stdout.contains("schema 2"))

            let backup = try await pgnoti("backup", daemon.directory.appendingPathComponent("copy.sqlite").path)
            #expect(backup.status != 0 && (backup.stderr + backup.stdout).contains("pg_dump"))
            // What pgnoti-backup.timer runs: off in this mode, and said so, not a failed unit.
            let timer = try await pgnoti("backup", "--dated", daemon.directory.appendingPathComponent("backups").path)
            #expect(timer.status == 0 && timer.stdout.contains("backup: off with a PostgreSQL database"))
            // Delivery state is the cluster's: the event and its redelivery wait, no forwarder yet.
            let forward = try await pgnoti("forward", "status")
            #expect(forward.status == 0, "\(forward.stderr)")
            #expect(forward.stdout.contains("not running") && forward.stdout.contains("pending                     2"))
            let retry = try await pgnoti("forward", "retry", "--all-failed")
            #expect(retry.status == 0 && retry.stdout.contains("nothing failed"))
            // No state of its own on the host: no SQLite file, no queue directory.
            #expect(!FileManager.default.fileExists(atPath: daemon.directory.appendingPathComponent("state").path))
            daemon.stop()
        }

        /// A forwarder on another host of the cluster, delivering to `url` with a 3 s lease.
        static func forwarder(_ name: String, database: String, url: String) async throws -> DaemonProcess {
            let home = try DaemonProcess.makeDirectory(name)
            let secret = home.appendingPathComponent("forward-secret")
            try (WebhookReceiver.secret + "\n").write(to: secret, atomically: true, encoding: .utf8)
            _ = try DaemonProcess.writeConfig(
                in: home,
                extra: """
                    [forward]
                    url = "\(url)"
                    secret_file = "\(secret.path)"
                    retry_initial_seconds = 0.2
                    timeout_seconds = 2
                    lease_seconds = 3
                    """, postgres: database)
            return try await Consumer.start(home)
        }

        static func holdsLease(_ forwarder: DaemonProcess) -> Bool {
            forwarder.logObjects.contains { ($0["msg"] as? String)?.hasPrefix("took the forward lease") == true }
        }

        /// Two forwarders on one database; the active one is SIGKILLed in a burst. The other takes
        /// over once the lease has run out, every event reaches the app, and each order's
        /// approval still arrives before its cancellation.
        @Test func twoForwardersAndTheActiveOneKilledDeliveryResumesInOrder() async throws {
            let database = try await Self.scratchDatabase()
            let daemon = try await Self.daemon("pg-fwd", database: database)
            defer { daemon.stop() }
            let receiver = try await WebhookReceiver(
                in: try DaemonProcess.makeDirectory("pg-fwd-app"), ["--delay-all", "0.02"])
            let a = try await Self.forwarder("pg-fwd-a", database: database, url: receiver.url)
            try await waitUntil(timeout: .seconds(10), "A takes the lease") { Self.holdsLease(a) }
            let b = try await Self.forwarder("pg-fwd-b", database: database, url: receiver.url)
            defer { b.stop() }

            let tids = (0..<16).map { "SMTPAY001m0101241201\(String(format: "%010d", $0))" }
            func postOrders(_ tids: ArraySlice<String>) async throws {
                for tid in tids {
                    #expect(try await Self.post(tid, to: daemon) == 200)
                    #expect(try await Self.post(tid, to: daemon, cancel: true) == 200)
                }
            }
            try await postOrders(tids[..<8])
            try await waitUntil(timeout: .seconds(10), "A delivers some") { receiver.acceptedIDs().count >= 4 }
            try await a.killHard()
            let killed = ContinuousClock.now
            try await postOrders(tids[8...])
            try await waitUntil(timeout: .seconds(15), "B takes over") { Self.holdsLease(b) }
            #expect(ContinuousClock.now - killed <= .seconds(3 + 4), "within the lease and a few seconds")
            try await waitUntil(timeout: .seconds(20), "every event delivered") {
                Set(receiver.acceptedIDs()).count == 2 * tids.count
            }
            let accepted = receiver.records().filter { ($0["status"] as? Int) == 204 }
            #expect(accepted.allSatisfy { $0["verified"] as? Bool == true })
            // At most what A had in flight when it died is sent twice; nothing is lost.
            #expect(accepted.count - 2 * tids.count <= 4)
            for tid in tids {
                let kinds = accepted.filter { $0["tid"] as? String == tid }.compactMap { $0["kind"] as? String }
                #expect(kinds.first == "payment.approved" && kinds.last != "payment.approved", "\(tid): \(kinds)")
            }
            #expect(try await Self.psql(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == "0")
            let status = try await runProcess(
                DaemonProcess.binary,
                [
                    "forward", "status", "--json", "--config",
                    daemon.directory.appendingPathComponent("pgnoti.toml").path,
                ],
                in: daemon.directory)
            #expect(status.stdout.contains(#""running":true"#) && status.stdout.contains(#""pending":0"#))
            let metrics = try await daemon.admin("/metrics")
            #expect(String(decoding: metrics.body, as: UTF8.self).contains("pgnoti_forward_lease_held 1"))
        }

        /// `consume --exec` claims from the database too, and, like the forwarder, keeps nothing
        /// on its host: no queue directory, no local database.
        @Test func consumeRunsTheCommandPerEventFromTheDatabase() async throws {
            let database = try await Self.scratchDatabase()
            let daemon = try await Self.daemon("pg-consume", database: database)
            defer { daemon.stop() }
            let home = try DaemonProcess.makeDirectory("pg-consume-host")
            let config = try DaemonProcess.writeConfig(in: home, postgres: database)
            let out = try DaemonProcess.makeDirectory("pg-consume-out")
            let consumer = try await DaemonProcess.start(
                home,
                arguments: [
                    "consume", "--config", config.path, "--exec", "cat > \(out.path)/$PGNOTI_EVENT_ID.json",
                ])
            defer { consumer.stop() }
            let tids = (0..<3).map { "SMTPAY001m0101241202\(String(format: "%010d", $0))" }
            for tid in tids { #expect(try await Self.post(tid, to: daemon) == 200) }
            // Recorded once the command has exited: its file is complete by then.
            try await waitUntil(timeout: .seconds(15), "recorded as delivered") {
                try await Self.psql(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL") == "3"
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).count == 3, "a file per event")
            for name in try FileManager.default.contentsOfDirectory(atPath: out.path) {
                let event =
                    try JSONSerialization.jsonObject(
                        with: Data(contentsOf: out.appendingPathComponent(name))) as? [String: Any]
                #expect(event?["id"] as? String == String(name.dropLast(5)), "the event's exact JSON on stdin")
                #expect(tids.contains(event?["tid"] as? String ?? ""))
            }
            let kept = try FileManager.default.contentsOfDirectory(atPath: home.path).filter { $0 != "pgnoti.toml" }
            #expect(!kept.contains("state"), "no state of its own on the host: \(kept)")
        }

        /// PostgreSQL restarted in a burst, with a forwarder delivering: nothing is ACKed while it
        /// is down, what the PG then retries is ACKed once it is back, and every ACKed
        /// notification reaches the app, once per webhook-id.
        @Test func aDatabaseRestartInABurstACKsNothingWhileDownAndLosesNothing() async throws {
            try await PostgresServer.with { server in
                let daemon = try await Self.daemon("pg-restart", database: server.url)
                defer { daemon.stop() }
                let receiver = try await WebhookReceiver(in: try DaemonProcess.makeDirectory("pg-restart-app"))
                let forwarder = try await Self.forwarder("pg-restart-fwd", database: server.url, url: receiver.url)
                defer { forwarder.stop() }
                let tids = (0..<24).map { "SMTPAY001m0101241203\(String(format: "%010d", $0))" }
                var refused: [String] = []
                for (n, tid) in tids.enumerated() {
                    if n == 8 { try await server.stopServer() }
                    if n == 16 { try await server.startServer() }
                    let status = try await Self.post(tid, to: daemon)
                    if (8..<16).contains(n) {
                        #expect(status == 500, "no ACK while the database is down")
                        refused.append(tid)
                    } else if status != 200 {
                        refused.append(tid)  // just back: the PG retries it below
                    }
                }
                // The PG's retries of what was refused.
                for tid in refused {
                    try await waitUntil(timeout: .seconds(15), "\(tid) ACKed on a retry") {
                        try await Self.post(tid, to: daemon) == 200
                    }
                }
                try await waitUntil(timeout: .seconds(30), "every notification delivered") {
                    Set(receiver.records().filter { ($0["status"] as? Int) == 204 }.compactMap { $0["tid"] as? String })
                        == Set(tids)
                }
                let ids = receiver.acceptedIDs()
                #expect(Set(ids).count == tids.count, "one event per notification, counted by webhook-id")
                #expect(try await Self.psql(server.url, "SELECT count(*) FROM notifications") == "\(tids.count)")
            }
        }
    }
}
