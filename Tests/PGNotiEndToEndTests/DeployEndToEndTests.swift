import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiRawHTTP
import PGNotiStore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The install as a new operator runs it: secrets in files the daemon reads itself, rotation by
/// reload, a sandbox behind a proxy, and operator commands that must not lose what the
/// configured limits keep.
extension EndToEnd {
    @Suite struct DeployEndToEndTests {
        static func run(_ arguments: [String], in dir: URL) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await QuarantineEndToEndTests.runSplit(arguments, in: dir)
        }

        /// A Smartro approval for the published test MID, signed with `key`.
        /// A signed Smartro approval (or, with `cancel`, its cancellation) of order `O-<tid>`.
        static func smartroPost(
            tid: String, key: String, port: Int, path: String = "/notify/smartro", cancel: Bool = false
        ) -> [UInt8] {
            let (result, state) = cancel ? ("2001", "1") : ("3001", "0")
            let sign = SmartroSignature.make(tid: tid, resultCode: result, merchantKey: key, algorithm: .md5)
            let escaped = sign.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sign
            let body =
                "MID=SMTPAY001m&TID=\(tid)&ResultCode=\(result)&StateCd=\(state)&Amt=1000&PayMethod=CARD&OID=O-\(tid)&SignValue=\(escaped)"
            return Array(
                ("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
                    + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n\(body)").utf8)
        }

        /// A rotated key reaches the daemon through `merchant_keys_file` on SIGHUP, without a
        /// restart, even when a stale credential copy of the old key is still there.
        @Test func aKeyRotatedInItsFileIsUsedAfterAReload() async throws {
            let dir = try DaemonProcess.makeDirectory("rotate")
            _ = try DaemonProcess.writeConfig(in: dir)
            // What systemd copied when the unit started: the old key, never refreshed.
            let credentials = dir.appendingPathComponent("credentials")
            try FileManager.default.createDirectory(at: credentials, withIntermediateDirectories: true)
            try "SMTPAY001m=\(Config.smartroTestKey)\n".write(
                to: credentials.appendingPathComponent("smartro-merchant-keys"), atomically: true, encoding: .utf8)
            let daemon = try await DaemonProcess.start(dir, environment: ["CREDENTIALS_DIRECTORY": credentials.path])
            let note = try await daemon.waitForLog { ($0["msg"] as? String)?.contains("credential is ignored") == true }
            #expect(note.count == 1, "one line says the credential is not used")

            let newKey = "cm90YXRlZC10ZXN0LWtleS1ub3QtYS1yZWFsLW9uZQ=="
            let before = try daemon.send(
                Self.smartroPost(tid: "SMTPAY001m01012412010000000001", key: newKey, port: daemon.port))
            #expect(before.status == 403, "the new key is not known yet")

            try "SMTPAY001m=\(newKey)\n".write(
                to: dir.appendingPathComponent("smartro-keys"), atomically: true, encoding: .utf8)
            kill(daemon.process.processIdentifier, SIGHUP)
            let reloaded = try await daemon.waitForLog { $0["msg"] as? String == "reloaded configuration" }
            #expect(reloaded.count == 1)
            let after = try daemon.send(
                Self.smartroPost(tid: "SMTPAY001m01012412010000000002", key: newKey, port: daemon.port))
            #expect(after.status == 200 && after.bodyText == "OK", "\(after.bodyText)")
            let old = try daemon.send(
                Self.smartroPost(tid: "SMTPAY001m01012412010000000003", key: Config.smartroTestKey, port: daemon.port))
            #expect(old.status == 403, "the old key is gone from the file, so it is gone")
            #expect(!daemon.logText.contains(newKey) && !daemon.logText.contains(Config.smartroTestKey))
            #expect(try await daemon.terminate() == 0)
        }

        /// The forged post of the deploy report: through a proxy to a sandbox, for a real MID.
        @Test func aSandboxBehindAProxyRefusesAForgedPaymentAndTakesATestOne() async throws {
            let dir = try DaemonProcess.makeDirectory("sandbox-forge")
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
            func innopay(_ mid: String, _ tid: String) -> [UInt8] {
                let body =
                    "pgMid=\(mid)&pgTid=\(tid)&status=25&approvalAmt=990000&pgResultCode=3001&moid=M-\(tid)&payMethod=CARD"
                return Array(
                    ("POST /notify/innopay HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 198.51.100.66\r\n"
                        + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
                        + "Connection: close\r\n\r\n\(body)").utf8)
            }
            let forged = try daemon.send(innopay("REALMID01m", "FORGED0001"))
            #expect(forged.status == 403)
            #expect(forged.bodyText == "rejected: test_merchant_only\n")
            #expect(forged.bodyText != "0000")
            let test = try daemon.send(innopay("nictest14m", "TEST000001"))
            #expect(test.status == 200 && test.bodyText == "0000")
            try await waitUntil(timeout: .seconds(20), "the test event") {
                (try? daemon.queueFilesSandbox().count) == 1
            }
            let event =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: try daemon.queueFilesSandbox()[0])) as! [String: Any]
            #expect(event["merchant_id"] as? String == "nictest14m")
            #expect(event["sandbox"] as? Bool == true && event["test"] as? Bool == true)
            #expect(try await daemon.terminate() == 0)
            let list = try await Self.run(["quarantine", "list", "--json"], in: dir)
            #expect(list.stdout.contains("test_merchant_only") && list.stdout.contains("REALMID01m"))
        }

        /// `[limits] quarantine_keep_days = 90`, four refusals 40 days old and one new: dropping
        /// the new one keeps the other four (the default policy would have swept them).
        @Test func operatorCommandsKeepWhatTheConfiguredLimitsKeep() async throws {
            let dir = try DaemonProcess.makeDirectory("keep")
            let config = try DaemonProcess.writeConfig(in: dir, top: "[limits]\nquarantine_keep_days = 90").path
            let database = dir.appendingPathComponent("state/pgnoti.sqlite").path
            let ledger = try Ledger(path: database, quarantinePolicy: QuarantinePolicy(keepDays: 90))
            let old = Date().addingTimeInterval(-40 * 86_400)
            for (index, when) in [old, old, old, old, Date()].enumerated() {
                _ = try await ledger.quarantine(
                    QuarantineEntry(
                        provider: "smartro", reason: "signature_mismatch", detail: "test",
                        rawBody: Array("MID=x&TID=\(index)".utf8),
                        contentType: nil, peer: "127.0.0.1", client: "127.0.0.1", parsed: true, merchantID: "x",
                        tid: "T\(index)", receivedAt: when))
            }
            try await ledger.close()
            let dropped = try await Self.run(["quarantine", "drop", "5", "--config", config], in: dir)
            #expect(dropped.status == 0 && dropped.stdout == "dropped 1 of 1\n", "\(dropped)")
            for command in [["quarantine", "release", "1"], ["redeliver", "--since", "1d"]] {
                _ = try await Self.run(command + ["--config", config], in: dir)
            }
            let list = try await Self.run(["quarantine", "list", "--json", "--config", config], in: dir)
            #expect(list.stdout.split(separator: "\n").count == 4, "\(list)")
        }

        /// Wrong input is an error with its own status: 64 for a malformed request, 1 for a
        /// well-formed one that names nothing.
        @Test func wrongInputExitsNonZero() async throws {
            let dir = try DaemonProcess.makeDirectory("wrong-input")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            for name in ["approve-card", "conflict-amount"] {
                _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", name).request)
            }
            #expect(try await daemon.terminate() == 0)
            let cases: [([String], Int32, String)] = [
                (["quarantine", "release", "999"], 1, "not_found"),
                (["quarantine", "drop", "999"], 1, "no quarantined request with ID 999"),
                (["redeliver", "nothex"], 64, "not an event id"),
                (["redeliver", String(repeating: "a", count: 32)], 1, "no event with id"),
                (["events", "list", "--provider", "smartr"], 64, "unknown provider"),
                (["events", "list", "--kind", "payment.aproved"], 64, "unknown kind"),
                (["events", "show", "nothing-like-this"], 1, "nothing stored"),
                (["purge", "--older-than", "1m"], 64, "ambiguous"),
                (["purge", "--older-than", "2h"], 64, "less than a day"),
                (["purge", "--older-than", "30d"], 64, "--yes"),
            ]
            for (arguments, status, message) in cases {
                let result = try await Self.run(arguments + ["--config", config], in: dir)
                #expect(result.status == status, "\(arguments): \(result)")
                #expect((result.stdout + result.stderr).contains(message), "\(arguments): \(result)")
            }
            // The conflict is listed and shown as itself.
            let conflicts = try await Self.run(
                ["events", "list", "--kind", "notification.conflict", "--json", "--config", config], in: dir)
            let rows = conflicts.stdout.split(separator: "\n")
            #expect(rows.count == 1, "\(conflicts)")
            let row = try JSONSerialization.jsonObject(with: Data(rows[0].utf8)) as! [String: Any]
            #expect(row["kind"] as? String == "notification.conflict")
            let id = try #require(row["event_id"] as? String)
            let shown = try await Self.run(["events", "show", id, "--config", config], in: dir)
            #expect(
                shown.stdout.hasPrefix("event:         \(id) (notification.conflict)"), "\(shown.stdout.prefix(200))")
            // A purge looks first, and a dry run changes nothing.
            let dry = try await Self.run(
                ["purge", "--older-than", "0s", "--force", "--dry-run", "--config", config], in: dir)
            #expect(dry.status == 0 && dry.stdout.contains("would purge") && dry.stdout.contains("1 notification(s)"))
            let never = try await Self.run(["forward", "status", "--json", "--config", config], in: dir)
            #expect(never.status == 0 && never.stdout.contains("\"never_forwarded\":true"), "\(never)")
        }

        /// The files that hold personal data are not world-readable, whatever the umask.
        @Test func backupsAndTheDatabaseAreNotWorldReadable() async throws {
            let dir = try DaemonProcess.makeDirectory("modes")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let previous = umask(0o022)
            defer { umask(previous) }
            let daemon = try await DaemonProcess.start(dir)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request)
            #expect(try await daemon.terminate() == 0)
            func mode(_ path: String) throws -> Int {
                (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
            }
            #expect(try mode(dir.appendingPathComponent("state/pgnoti.sqlite").path) == 0o640)
            let backup = dir.appendingPathComponent("copy.sqlite").path
            let made = try await Self.run(["backup", backup, "--config", config], in: dir)
            #expect(made.status == 0, "\(made)")
            #expect(try mode(backup) == 0o600)
            // Two older dated copies are there already; a new one with --keep 2 prunes the oldest.
            let dated = dir.appendingPathComponent("backups")
            try FileManager.default.createDirectory(at: dated, withIntermediateDirectories: true)
            for old in ["pgnoti-20200101-000000.sqlite", "pgnoti-20200102-000000.sqlite"] {
                FileManager.default.createFile(atPath: dated.appendingPathComponent(old).path, contents: Data("x".utf8))
            }
            let result = try await Self.run(
                ["backup", "--dated", dated.path, "--keep", "2", "--config", config], in: dir)
            #expect(result.status == 0, "\(result)")
            let kept = try FileManager.default.contentsOfDirectory(atPath: dated.path).sorted()
            #expect(kept.count == 2 && kept.first == "pgnoti-20200102-000000.sqlite", "\(kept)")
            #expect(kept.allSatisfy { $0.hasPrefix("pgnoti-") && $0.hasSuffix(".sqlite") })
            #expect(try mode(dated.appendingPathComponent(kept[1]).path) == 0o600)
        }

        /// A second daemon on the same state fails at once, naming the lock and the holder; a
        /// port in use is named with its key, address and port.
        @Test func aSecondInstanceAndABusyPortSayWhatIsInTheWay() async throws {
            let dir = try DaemonProcess.makeDirectory("second")
            _ = try DaemonProcess.writeConfig(in: dir)
            let first = try await DaemonProcess.start(dir)
            let started = Date()
            let second = try DaemonProcess(directory: dir)
            #expect(try await second.waitForExit(timeout: .seconds(5)) == 1)
            #expect(Date().timeIntervalSince(started) < 4, "at once, not after the outbox lock's wait")
            #expect(second.logText.contains("pgnoti.sqlite.lock is locked by pid \(first.process.processIdentifier)"))

            let other = try DaemonProcess.makeDirectory("busy-port")
            _ = try DaemonProcess.writeConfig(in: other, top: "")
            let busy = try DaemonProcess(
                directory: other,
                arguments: [
                    "serve", "--config", other.appendingPathComponent("pgnoti.toml").path, "--listen",
                    "127.0.0.1:\(first.port)",
                ])
            #expect(try await busy.waitForExit(timeout: .seconds(10)) == 1)
            #expect(busy.logText.contains("listen: cannot listen on 127.0.0.1:\(first.port): address already in use"))
            #expect(try await first.terminate() == 0)
        }

        /// Run as root, check-config judges the files the service user will open, and the
        /// forwarder on the shipped config stops with 78 naming the one key left to set.
        @Test func checkConfigAsRootAsksForTheServiceUserAndTheForwarderNamesItsURL() async throws {
            guard geteuid() == 0, getpwnam("nobody") != nil else { return }
            let dir = try DaemonProcess.makeDirectory("check-access")
            chmod(dir.path, 0o755)
            let config = try DaemonProcess.writeConfig(in: dir).path
            let keys = dir.appendingPathComponent("smartro-keys").path
            chmod(keys, 0o600)
            let refused = try await Self.run(["check-config", "--config", config, "--service-user", "nobody"], in: dir)
            #expect(refused.status == 78)
            #expect(refused.stderr.contains("smartro.merchant_keys_file") && refused.stderr.contains("cannot read"))
            #expect(refused.stderr.contains("0600") && !refused.stderr.contains(Config.smartroTestKey))
            chmod(keys, 0o644)
            let fine = try await Self.run(["check-config", "--config", config, "--service-user", "nobody"], in: dir)
            #expect(fine.status == 0, "\(fine)")
            let forward = try await Self.run(["forward", "--config", config], in: dir)
            #expect(forward.status == 78 && forward.stderr.contains("forward.url"), "\(forward)")
        }

        /// Counters and gauges the shipped alert rules name exist at 0 before anything happened.
        @Test func everyAlertedMetricIsThereFromTheStart() async throws {
            let dir = try DaemonProcess.makeDirectory("metrics-zero")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let metrics = try await daemon.admin("/metrics").bodyText
            for series in [
                "pgnoti_relay_errors_total 0", "pgnoti_quarantine_evicted_total 0", "pgnoti_events_filed_total 0",
                "pgnoti_forward_failed 0", "pgnoti_forward_pending 0", "pgnoti_ready{check=\"database\"} 1",
                "pgnoti_ready{check=\"queue\"} 1", "pgnoti_ready{check=\"disk\"} 1", "pgnoti_min_free_bytes ",
                "pgnoti_free_bytes{path=", "pgnoti_requests_total{provider=\"smartro\",outcome=\"accepted\"} 0",
                "pgnoti_quarantined_total{reason=\"signature_mismatch\"} 0",
            ] {
                #expect(metrics.contains(series), "\(series) missing")
            }
            let rules = try String(
                contentsOf: DaemonProcess.packageRoot.appendingPathComponent("systemd/pgnoti-alerts.yml"),
                encoding: .utf8)
            let named = Set(
                rules.matches(of: /pgnoti_[a-z_]+/).map { String($0.output) }.filter { !$0.hasPrefix("pgnoti_alert") })
            #expect(!named.isEmpty)
            for name in named {
                #expect(
                    metrics.contains("\n\(name)") || metrics.contains("\n\(name){") || metrics.hasPrefix(name),
                    "the alert rules name \(name), which /metrics lacks")
            }
            #expect(try await daemon.terminate() == 0)
        }

        /// Operator actions reach the journal as one JSON line each, under SYSLOG_IDENTIFIER=pgnoti.
        @Test func operatorActionsLogOneJournalLineEach() async throws {
            let dir = try DaemonProcess.makeDirectory("journal")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "reject-bad-signature").request)
            #expect(try await daemon.terminate() == 0)
            let journal = try NotifySocket(path: dir.appendingPathComponent("journal.sock").path)
            let purge = try await runProcess(
                DaemonProcess.binary, ["purge", "--older-than", "0s", "--force", "--yes", "--config", config],
                environment: ProcessInfo.processInfo.environment.merging(
                    ["PGNOTI_JOURNAL_SOCKET": journal.path], uniquingKeysWith: { $1 }))
            #expect(purge.status == 0)
            let datagram = try #require(try await journal.receive(until: { _ in true }, timeout: .seconds(2)).first)
            #expect(datagram.contains("SYSLOG_IDENTIFIER=pgnoti\n"))
            let message = try #require(datagram.split(separator: "\n").first { $0.hasPrefix("MESSAGE=") })
            let line = try JSONSerialization.jsonObject(with: Data(message.dropFirst(8).utf8)) as! [String: Any]
            #expect(line["command"] as? String == "purge" && line["outcome"] as? String == "done")
            #expect(line["quarantine"] as? String == "1")
        }
    }
}

extension DaemonProcess {
    /// Queue files of a sandbox started in `directory` (state under ./var).
    func queueFilesSandbox() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(
            at: directory.appendingPathComponent("var/queue/new"), includingPropertiesForKeys: nil)
    }
}
