import Foundation
import PGNotiCore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// The source and consumer commands as a user runs them: `toss import`, `payup sign` and
    /// `verify`, `forward` without a configuration, and the forwarder's figures on `/metrics`.
    @Suite struct SourceCommandsEndToEndTests {
        static let tossFixtures = DaemonProcess.fixtures.appendingPathComponent("toss")

        static func run(_ arguments: [String], in dir: URL, stdin: String? = nil) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await QuarantineEndToEndTests.runSplit(arguments, in: dir, stdin: stdin.map { Data($0.utf8) })
        }

        static func events(in directory: URL) throws -> [[String: Any]] {
            try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "json" }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
                .compactMap { try JSONSerialization.jsonObject(with: Data(contentsOf: $0)) as? [String: Any] }
        }

        // MARK: - toss import

        /// The README's example, with no daemon: a summary per file, an event per filed row in
        /// `<queue>/new/` before the command exits, and nothing twice on a second import.
        @Test func tossImportFilesEachRowOnceAndSaysSo() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-import")
            let config = try DaemonProcess.writeConfig(in: dir, extra: "[toss]\n").path
            let auth = Self.tossFixtures.appendingPathComponent("toss_AUTH_20070706.dat").path
            let rev = Self.tossFixtures.appendingPathComponent("toss_REV_20070706.dat").path
            let first = try await Self.run(["toss", "import", auth, rev, "--config", config], in: dir)
            let lines = first.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "toss_AUTH_20070706.dat: 4 rows, 4 new, 0 duplicates, 0 bad", "\(first.stdout)")
            #expect(lines.dropFirst().first == "toss_REV_20070706.dat: 4 rows, 3 new, 0 duplicates, 1 bad")
            #expect(
                lines.dropFirst(2).first?.hasPrefix("  line 3: invalid_field: Status is empty") == true,
                "the refused row by its line number: \(first.stdout)")
            #expect(lines.count == 3, "no note about a daemon: none runs, so the command filed the events")
            // A refused row makes the run unclean: exit 1, although every other row was filed.
            #expect(first.status == 1, "\(first.stderr)")

            let new = dir.appendingPathComponent("state/queue/new")
            let events = try Self.events(in: new)
            #expect(events.count == 7, "one event per filed row")
            #expect(events.allSatisfy { $0["provider"] as? String == "toss" })
            #expect(events.filter { $0["kind"] as? String == "payment.approved" }.count == 4)
            #expect(events.filter { $0["kind"] as? String == "payment.canceled" }.count == 3)
            #expect(Set(events.compactMap { $0["id"] as? String }).count == 7)

            let again = try await Self.run(["toss", "import", auth, rev, "--config", config], in: dir)
            #expect(again.status == 0, "\(again.stdout) \(again.stderr)")
            #expect(
                again.stdout.contains("toss_AUTH_20070706.dat: 0 rows, 0 new, 0 duplicates, 0 bad"), "\(again.stdout)")
            #expect(again.stdout.contains("toss_REV_20070706.dat: 0 rows, 0 new, 0 duplicates, 0 bad"))
            #expect(try Self.events(in: new).count == 7, "nothing filed twice")
        }

        /// A line that does not split into twelve fields is reported with its number; its
        /// neighbours are filed and the command exits nonzero.
        @Test func tossImportReportsACorruptLineByNumberAndFilesItsNeighbours() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-import-corrupt")
            let config = try DaemonProcess.writeConfig(in: dir, extra: "[toss]\n").path
            let corrupt = Self.tossFixtures.appendingPathComponent("corrupt-line/toss_AUTH_20070706.dat").path
            let result = try await Self.run(["toss", "import", corrupt, "--config", config], in: dir)
            #expect(result.status == 1)
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "toss_AUTH_20070706.dat: 4 rows, 3 new, 0 duplicates, 1 bad", "\(result.stdout)")
            #expect(lines.dropFirst().first?.hasPrefix("  line 3: ") == true, "\(result.stdout)")
            #expect(lines.dropFirst().first?.contains("(quarantine ") == true, "kept in the quarantine")
            let events = try Self.events(in: dir.appendingPathComponent("state/queue/new"))
            #expect(
                Set(events.compactMap { $0["tid"] as? String }) == [
                    "toss2007070623592792192", "toss2007070623571812279", "toss2007070623383531154",
                ], "lines 1, 2 and 4")
            let quarantined = try await Self.run(["quarantine", "list", "--json", "--config", config], in: dir)
            #expect(quarantined.stdout.split(separator: "\n").count == 1, "\(quarantined.stdout)")
        }

        /// Issue 14, fault 1, by hand: a file cut inside line 3's amount, then the whole file.
        /// The first import says line 3 has no newline and leaves it; the second files it, once,
        /// with its amount.
        @Test func tossImportLeavesAnUnterminatedLastLineForTheNextImport() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-import-cut")
            let config = try DaemonProcess.writeConfig(in: dir, extra: "[toss]\n").path
            let whole = [UInt8](
                try Data(contentsOf: Self.tossFixtures.appendingPathComponent("toss_AUTH_20070706.dat")))
            let amount = try #require(whole.firstRange(of: Array(";319000;".utf8)))
            let file = dir.appendingPathComponent("toss_AUTH_20070706.dat")
            try Data(whole[..<(amount.lowerBound + 4)]).write(to: file)
            let first = try await Self.run(["toss", "import", file.path, "--config", config], in: dir)
            #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
            let lines = first.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "toss_AUTH_20070706.dat: 2 rows, 2 new, 0 duplicates, 0 bad", "\(first.stdout)")
            #expect(
                lines.dropFirst().first?.hasPrefix("  line 3: no newline at its end yet") == true
                    && lines.dropFirst().first?.contains("left for the next import") == true, "\(first.stdout)")

            try Data(whole).write(to: file)
            let second = try await Self.run(["toss", "import", file.path, "--config", config], in: dir)
            #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
            #expect(
                second.stdout.hasPrefix(
                    "toss_AUTH_20070706.dat: 2 rows, 2 new, 0 duplicates, 0 bad (lines before 3 were read before)"),
                "\(second.stdout)")
            let events = try Self.events(in: dir.appendingPathComponent("state/queue/new"))
            #expect(events.count == 4)
            let g3 = events.filter { $0["tid"] as? String == "toss2007070623433532130" }
            #expect(g3.count == 1 && g3.first?["amount"] as? Int == 319000)
        }

        /// Issue 14, fault 2, by hand: named REV first, the files are still read day by day with
        /// the approvals first, so the queue holds every approval before any cancel.
        @Test func tossImportFilesApprovalsBeforeCancelsWhateverTheOrderGiven() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-import-order")
            let config = try DaemonProcess.writeConfig(in: dir, extra: "[toss]\n").path
            let auth = dir.appendingPathComponent("toss_AUTH_20070706.dat")
            let rev = dir.appendingPathComponent("toss_REV_20070706.dat")
            try Data(contentsOf: Self.tossFixtures.appendingPathComponent("toss_AUTH_20070706.dat")).write(to: auth)
            // A same-day cancel of AUTH line 1 as well as the seed's rows.
            let cancel = Array(
                "toss;SC0010;toss2007070623592792192;Toss_20070706235709_uytr120;11100;x;uytr120;15000;N;20070706235959;30017594;20\n"
                    .utf8)
            try Data(
                cancel
                    + [UInt8](try Data(contentsOf: Self.tossFixtures.appendingPathComponent("toss_REV_20070706.dat")))
            )
            .write(to: rev)
            let result = try await Self.run(["toss", "import", rev.path, auth.path, "--config", config], in: dir)
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasPrefix("toss_AUTH_20070706.dat:") == true, "\(result.stdout)")
            let kinds = try Self.events(in: dir.appendingPathComponent("state/queue/new")).compactMap {
                $0["kind"] as? String
            }
            #expect(
                kinds == Array(repeating: "payment.approved", count: 4) + Array(repeating: "payment.canceled", count: 4)
            )
        }

        // MARK: - payup sign / verify

        static let apiKey = "25bcd7a82f5b4058818462cc7715964c"  // the manual's published example key
        static let approval = "d186b8fedccffd291e0619fbf8b247c3f283e3769571eb57b68a50b46af23b75"
        static let cancel = "db890c12b64c1e1de7127c0c07489fe18859139413acdac420a6f548ba518a3a"
        static let approveFlags = [
            "--merchant", "tester", "--order", "ZP2017090911", "--amount", "1004", "--timestamp", "20170910132060",
        ]
        static let cancelFlags = ["--merchant", "tester", "--transaction", "20170912142746ST0020"]

        /// The manual's two worked examples (참고 2.1.1, 2.2.1), the key on stdin with its newline.
        @Test func payupSignPrintsTheManualsSignatures() async throws {
            let dir = try DaemonProcess.makeDirectory("payup-sign")
            let approve = try await Self.run(
                ["payup", "sign", "approve"] + Self.approveFlags + ["--key-file", "-"], in: dir,
                stdin: Self.apiKey + "\n")
            #expect(approve.status == 0, "\(approve.stderr)")
            #expect(approve.stdout == Self.approval + "\n")
            let cancel = try await Self.run(
                ["payup", "sign", "cancel"] + Self.cancelFlags + ["--key-file", "-"], in: dir, stdin: Self.apiKey + "\n"
            )
            #expect(cancel.status == 0, "\(cancel.stderr)")
            #expect(cancel.stdout == Self.cancel + "\n")

            // From a file: surrounding whitespace trimmed.
            let keyFile = dir.appendingPathComponent("payup-key")
            try ("  " + Self.apiKey + "\n").write(to: keyFile, atomically: true, encoding: .utf8)
            let fromFile = try await Self.run(
                ["payup", "sign", "approve"] + Self.approveFlags + ["--key-file", keyFile.path], in: dir)
            #expect(fromFile.stdout == Self.approval + "\n", "\(fromFile.stderr)")
            #expect(!approve.stderr.contains(Self.apiKey) && !cancel.stdout.contains(Self.apiKey))
        }

        @Test func payupVerifyExitsZeroOnlyForTheRightSignature() async throws {
            let dir = try DaemonProcess.makeDirectory("payup-verify")
            func verify(_ operation: String, _ flags: [String], _ signature: String) async throws -> (
                status: Int32, stdout: String, stderr: String
            ) {
                try await Self.run(
                    ["payup", "verify", operation] + flags + ["--signature", signature, "--key-file", "-"], in: dir,
                    stdin: Self.apiKey + "\n")
            }
            let right = try await verify("approve", Self.approveFlags, Self.approval)
            #expect(right.status == 0 && right.stdout == "ok\n", "\(right.stdout) \(right.stderr)")
            #expect(try await verify("approve", Self.approveFlags, Self.approval.uppercased()).status == 0)
            let wrong = try await verify("approve", Self.approveFlags, String(Self.approval.dropLast()) + "4")
            #expect(wrong.status == 1 && wrong.stdout == "mismatch\n", "\(wrong.stdout) \(wrong.stderr)")
            var otherAmount = Self.approveFlags
            otherAmount[5] = "1005"
            #expect(try await verify("approve", otherAmount, Self.approval).status == 1, "the amount is signed")

            #expect(try await verify("cancel", Self.cancelFlags, Self.cancel).status == 0)
            #expect(try await verify("cancel", Self.cancelFlags, Self.approval).status == 1)
        }

        // MARK: - forward without --config

        /// Without `--config` the forwarder takes the sandbox queue under `./var`, relative to
        /// the directory it runs in.
        @Test func forwardWithoutAConfigDrainsTheSandboxQueue() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-sandbox")
            let receiver = try await WebhookReceiver(in: dir)
            try (WebhookReceiver.secret + "\n").write(
                to: dir.appendingPathComponent("secret"), atomically: true, encoding: .utf8)
            let queue = dir.appendingPathComponent("var/queue")
            let new = queue.appendingPathComponent("new")
            try FileManager.default.createDirectory(at: new, withIntermediateDirectories: true)
            let event = Consumer.event(order: "ORD-SANDBOX", tid: "TSANDBOX")
            let name = "01700000000000001-\(event.id).json"
            let temporary = queue.appendingPathComponent(".test-\(name)")
            try Data(event.jsonBytes()).write(to: temporary)
            try #require(rename(temporary.path, new.appendingPathComponent(name).path) == 0)

            // A relative --secret-file too, as the README's example has it.
            let forwarder = try await DaemonProcess.start(
                dir, arguments: ["forward", "--url", receiver.url, "--secret-file", "secret"])
            defer { forwarder.stop() }
            let done = queue.appendingPathComponent("forward/done/\(name)")
            try await waitUntil(timeout: .seconds(30), "delivery") { FileManager.default.fileExists(atPath: done.path) }
            let records = receiver.records()
            #expect(records.count == 1)
            #expect(records.first?["id"] as? String == event.id && records.first?["verified"] as? Bool == true)
            #expect(receiver.acceptedIDs() == [event.id])
            let body = try Data(contentsOf: done)
            #expect(records.first?["body_sha256"] as? String == Digest.hex(Digest.sha256(Array(body))))
            #expect(try FileManager.default.contentsOfDirectory(atPath: new.path).isEmpty)
            let starting = try await forwarder.waitForLog { $0["msg"] as? String == "consumer starting" }
            #expect(starting.first?["queue"] as? String == "./var/queue", "\(starting)")
        }

        // MARK: - the forwarder's figures on the daemon's /metrics

        /// A sample's value (the exposition writes gauges as `1.0`).
        static func metric(_ text: String, _ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap {
                Double($0.dropFirst(name.count + 1))
            }
        }

        /// `pgnoti_forward_*` are read from the forwarder's directories at scrape time: after an
        /// event the app answered 410 sits in `forward/failed/`, the daemon says so.
        @Test func metricsShowTheForwardersFigures() async throws {
            let dir = try DaemonProcess.makeDirectory("forward-metrics")
            let gone = Consumer.event(order: "ORD-GONE", tid: "TGONE")
            let delivered = Consumer.event(order: "ORD-OK", tid: "TOK")
            let receiver = try await WebhookReceiver(in: dir, ["--gone", gone.id])
            _ = try Consumer.writeConfig(in: dir, url: receiver.url)
            let daemon = try await DaemonProcess.start(dir)
            defer { daemon.stop() }
            let failedName = try Consumer.file(gone, sequence: 1, in: dir)
            let doneName = try Consumer.file(delivered, sequence: 2, in: dir)
            let forwarder = try await Consumer.start(dir)
            try await waitUntil(timeout: .seconds(30), "one failed, one delivered") {
                Consumer.files(dir, "forward/failed") == [failedName]
                    && Consumer.files(dir, "forward/done") == [doneName]
            }
            #expect(try await forwarder.terminate() == 0)

            let first = try await daemon.admin("/metrics")
            #expect(first.status == 200)
            let text = first.bodyText
            #expect(Self.metric(text, "pgnoti_forward_failed") == 1, "\(text)")
            #expect(Self.metric(text, "pgnoti_forward_delivered_last_hour") == 1)
            #expect(Self.metric(text, "pgnoti_forward_pending") == 0)
            #expect(Self.metric(text, "pgnoti_forward_in_flight") == 0)
            #expect(Self.metric(text, "pgnoti_forward_retrying") == 0)
            #expect(Self.metric(text, "pgnoti_forward_running") == 0, "the forwarder was stopped")

            // With the forwarder stopped: one event waiting in new/, one claimed and never
            // tried, one claimed with a failed attempt behind it. Nothing is in flight when no
            // forwarder runs: the claimed one is pending, like the one in new/.
            try Consumer.file(Consumer.event(order: "ORD-P", tid: "TP"), sequence: 3, in: dir)
            let cur = Consumer.queue(dir).appendingPathComponent("forward/cur")
            let inFlight = Consumer.event(order: "ORD-F", tid: "TF")
            try Data(inFlight.jsonBytes()).write(
                to: cur.appendingPathComponent("01700000000000004-\(inFlight.id).json"))
            let retrying = Consumer.event(order: "ORD-R", tid: "TR")
            let retryingName = "01700000000000005-\(retrying.id).json"
            try Data(retrying.jsonBytes()).write(to: cur.appendingPathComponent(retryingName))
            let now = Date().timeIntervalSince1970
            try Data(
                #"{"attempts":2,"event_id":"\#(retrying.id)","first_attempt_at":\#(now - 60),"last_error":"HTTP 500","next_attempt_at":\#(now + 600)}"#
                    .utf8
            ).write(to: Consumer.queue(dir).appendingPathComponent("forward/state/\(retryingName)"))

            let second = try await daemon.admin("/metrics").bodyText
            #expect(Self.metric(second, "pgnoti_forward_pending") == 2, "\(second)")
            #expect(Self.metric(second, "pgnoti_forward_in_flight") == 0)
            #expect(Self.metric(second, "pgnoti_forward_running") == 0)
            #expect(Self.metric(second, "pgnoti_forward_retrying") == 1)
            #expect(Self.metric(second, "pgnoti_forward_failed") == 1)
            #expect(Self.metric(second, "pgnoti_forward_delivered_last_hour") == 1)
        }
    }
}
