import Foundation
import PGNotiConfig
import PGNotiStore
import PGNotiTestSupport
import Testing

extension EndToEnd {
    /// The operator CLI on a database the daemon seeded, with the daemon still running.
    @Suite struct OperatorCLIEndToEndTests {
        static func run(_ arguments: [String], in dir: URL) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await QuarantineEndToEndTests.runSplit(arguments, in: dir)
        }

        @Test func eventsStatsRedeliverBackupAndPurge() async throws {
            let dir = try DaemonProcess.makeDirectory("cli")
            let config = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            let approve = try TrustEndToEndTests.fixture("smartro", "approve-card")
            for name in ["approve-card", "conflict-amount", "reject-bad-signature"] {
                _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", name).request)
            }
            _ = try daemon.send(fixture: approve.request)  // a PG retry
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("innopay", "approve-card").request)
            try await daemon.waitForQueue(count: 3)
            let tid = try #require(approve.expect["tid"] as? String)

            let list = try await Self.run(["events", "list", "--config", config], in: dir)
            #expect(list.status == 0)
            #expect(list.stdout.contains("RECEIVED (KST)") && list.stdout.contains(tid), "the whole TID")
            #expect(list.stdout.split(separator: "\n").count == 3, "a header and two notifications")
            let json = try await Self.run(
                ["events", "list", "--config", config, "--json", "--provider", "smartro", "--since", "1h"], in: dir)
            let objects = json.stdout.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            #expect(objects.count == 1)
            #expect(objects.first?["retries"] as? Int == 1 && objects.first?["tid"] as? String == tid)
            let eventID = try #require(objects.first?["event_id"] as? String)
            let queueFile = try #require(objects.first?["queue_file"] as? String)

            let show = try await Self.run(["events", "show", tid, "--config", config], in: dir)
            #expect(show.status == 0)
            #expect(show.stdout.contains("event:         \(eventID) (payment.approved)"))
            #expect(show.stdout.contains("retries:       1"))
            #expect(show.stdout.contains("conflicts:     1"))
            #expect(show.stdout.contains(queueFile))
            #expect(show.stdout.contains("+09:00"), "times in KST")
            #expect(!show.stdout.contains("010-0000-0001"), "personal data masked")
            #expect(!show.stdout.contains("raw:"))
            #expect(
                try await Self.run(["events", "show", "ORD-20241123-0001", "--config", config], in: dir).stdout
                    .contains(
                        eventID))
            let unknown = try await Self.run(["events", "show", "nope", "--config", config], in: dir)
            #expect(unknown.status != 0 && unknown.stderr.contains("nope"))

            let stats = try await Self.run(["stats", "--config", config], in: dir)
            #expect(stats.stdout.contains("payment.approved"))
            #expect(stats.stdout.contains("conflicts: 1 filed"))
            #expect(stats.stdout.contains("signature_mismatch 1"))
            #expect(stats.stdout.contains("queue: 3 file(s) in new/"))

            // A consumer took the file and lost it: redeliver files it again, same name and id.
            let file = daemon.queueNew.appendingPathComponent(queueFile)
            let original = try Data(contentsOf: file)
            try FileManager.default.removeItem(at: file)
            let redeliver = try await Self.run(["redeliver", eventID, "--config", config], in: dir)
            #expect(redeliver.stdout.contains("queued 1 event(s)"))
            #expect(redeliver.stdout.contains("the daemon holds the outbox lock"))
            try await waitUntil(timeout: .seconds(20), "the daemon to file it again") {
                FileManager.default.fileExists(atPath: file.path)
            }
            #expect(try Data(contentsOf: file) == original)

            let backup = dir.appendingPathComponent("backup.sqlite").path
            let copied = try await Self.run(["backup", backup, "--config", config], in: dir)
            #expect(copied.status == 0, "\(copied.stderr)")
            let copy = try Ledger(path: backup)
            #expect(try await copy.counts().notifications == 2)
            try await copy.close()

            let purge = try await Self.run(
                ["purge", "--older-than", "0s", "--force", "--yes", "--config", config], in: dir)
            #expect(purge.stdout.contains("2 notification(s)"), "\(purge)")
            let purged = try await Self.run(["events", "show", tid, "--config", config], in: dir)
            #expect(purged.stdout.contains("request:       purged"))
            #expect(!purged.stdout.contains("김똠순"))
            #expect(purged.stdout.contains(#""amount" : 15000"#) || purged.stdout.contains(#""amount": 15000"#))
            // Dedup keys survive a purge: the PG's retry is still a retry.
            #expect(try daemon.send(fixture: approve.request).status == 200)
            let lines = try await daemon.waitForLog(count: 6) { $0["msg"] as? String == "notification" }
            #expect(lines.last?["outcome"] as? String == "duplicate")

            // Redelivered after the purge, the event keeps the v1 members an app reads and says
            // it was purged; the personal ones are empty.
            try FileManager.default.removeItem(at: file)
            _ = try await Self.run(["redeliver", eventID, "--config", config], in: dir)
            try await waitUntil(timeout: .seconds(20), "the purged event filed again") {
                FileManager.default.fileExists(atPath: file.path)
            }
            let refiled = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
            #expect(refiled["purged"] as? Bool == true && refiled["sandbox"] as? Bool == false)
            #expect(refiled["test"] as? Bool == true && refiled["currency"] as? String == "KRW")
            #expect(refiled["verified_by"] as? String != nil && refiled["amount"] as? Int == 15000)
            #expect(refiled["buyer"] is NSNull && (refiled["raw"] as? [String: Any])?.isEmpty == true)
            #expect(try await daemon.terminate() == 0)
        }

        /// `pgnoti retention` runs the configured policy once, and like purge it asks first.
        @Test func retentionRunsTheConfiguredPolicyOnceAndAsksFirst() async throws {
            let dir = try DaemonProcess.makeDirectory("retention")
            let off = try DaemonProcess.writeConfig(in: dir).path
            let daemon = try await DaemonProcess.start(dir)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request)
            #expect(try await daemon.terminate() == 0)
            let none = try await Self.run(["retention", "--yes", "--config", off], in: dir)
            #expect(none.status == 1 && none.stderr.contains("retention is off"), "\(none)")
            let config = try DaemonProcess.writeConfig(in: dir, top: "retention = \"1d\"").path
            let unasked = try await Self.run(["retention", "--config", config], in: dir)
            #expect(unasked.status == 64 && unasked.stderr.contains("--yes"), "\(unasked)")
            let dry = try await Self.run(["retention", "--dry-run", "--config", config], in: dir)
            #expect(dry.status == 0 && dry.stdout.contains("would purge") && dry.stdout.contains("0 notification(s)"))
            let done = try await Self.run(["retention", "--yes", "--config", config], in: dir)
            #expect(done.status == 0 && done.stdout.contains("purged before"), "\(done)")
        }
    }
}
