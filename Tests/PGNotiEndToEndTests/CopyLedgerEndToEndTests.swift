import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiTestSupport
import Testing

extension EndToEnd {
    /// `pgnoti copy-ledger` from real sandbox ledgers: what two single hosts stored, moved into
    /// one PostgreSQL ledger, keeps its history and is not sent again.
    @Suite(
        .enabled(
            if: ProcessInfo.processInfo.environment["PGNOTI_TEST_DATABASE_URL"] != nil,
            "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL end-to-end tests are skipped"))
    struct CopyLedgerEndToEndTests {
        typealias PG = PostgresEndToEndTests

        /// A Smartro approval as the PG posts it; `amount` is not signed (SignValue covers the
        /// TID and result code), so two hosts can hold two versions of one key.
        static func smartroPost(tid: String, amount: Int, port: Int) -> [UInt8] {
            let sign = SmartroSignature.make(
                tid: tid, resultCode: "3001", merchantKey: Config.smartroTestKey, algorithm: .md5)
            let escaped = sign.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sign
            let body =
                "MID=SMTPAY001m&TID=\(tid)&ResultCode=3001&StateCd=0&Amt=\(amount)&PayMethod=CARD&OID=O-\(tid)&SignValue=\(escaped)"
            return Array(
                ("POST /notify/smartro HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
                    + "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: \(body.utf8.count)\r\n"
                    + "Connection: close\r\n\r\n\(body)").utf8)
        }

        /// A sandbox host (`pgnoti serve` with no configuration, state under ./var) that takes
        /// `posts`, files their events into its queue directory, and stops. Returns its ledger.
        static func sandboxHost(_ name: String, posts: [[UInt8]], filed: Int) async throws -> String {
            let dir = try DaemonProcess.makeDirectory(name)
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            for post in posts {
                // The bytes carry port 0 in Host; the daemon does not read it.
                _ = try await onOwnThread { try daemon.send(post) }
            }
            let queue = dir.appendingPathComponent("var/queue/new").path
            try await waitUntil(timeout: .seconds(10), "\(filed) events filed") {
                (try? FileManager.default.contentsOfDirectory(atPath: queue).count) == filed
            }
            #expect(try await daemon.terminate() == 0)
            return dir.appendingPathComponent("var/pgnoti.sqlite").path
        }

        static func copyLedger(_ ledger: String, to database: String, passwordFile: String) async throws
            -> ProcessResult
        {
            try await runProcess(
                DaemonProcess.binary,
                ["copy-ledger", "--from", ledger, "--to", database, "--password-file", passwordFile],
                mergeOutput: true)
        }

        @Test func aSandboxLedgerMovedInKeepsItsHistoryAndIsNotSentAgain() async throws {
            let tids = (1...3).map { "SMTPAY001m0101241201000000000\($0)" }
            // Host B stored the first TID with another amount, and was moved in first.
            let hostB = try await Self.sandboxHost(
                "copy-b", posts: [Self.smartroPost(tid: tids[0], amount: 2000, port: 0)], filed: 1)
            // Host A: three approvals, one of them retried by the PG, and a forged one refused.
            var posts = tids.map { Self.smartroPost(tid: $0, amount: 1000, port: 0) }
            posts.append(Self.smartroPost(tid: tids[1], amount: 1000, port: 0))
            posts.append(
                DeployEndToEndTests.smartroPost(
                    tid: "SMTPAY001m01012412019999999999", key: "bm90LXRoZS1rZXk=", port: 0))
            let hostA = try await Self.sandboxHost("copy-a", posts: posts, filed: 3)
            let sourceBytes = try Data(contentsOf: URL(fileURLWithPath: hostA))

            let database = try await PG.scratchDatabase()
            let secret = "Sup3r-S3cret-pw"
            // Trust authentication on the test server ignores the password: it is carried, never shown.
            let passwordFile = try DaemonProcess.makeDirectory("copy-pw").appendingPathComponent("password")
            try "\(secret)\n".write(to: passwordFile, atomically: true, encoding: .utf8)

            let fromB = try await Self.copyLedger(hostB, to: database, passwordFile: passwordFile.path)
            #expect(fromB.status == 0, "\(fromB.output)")

            let fromA = try await Self.copyLedger(hostA, to: database, passwordFile: passwordFile.path)
            #expect(fromA.status == 0, "\(fromA.output)")
            let lines = fromA.output.split(separator: "\n").map(String.init)
            #expect(
                lines.contains { $0.split(separator: " ") == ["notifications", "3", "2", "0", "1", "0"] },
                "\(fromA.output)")
            #expect(lines.contains { $0.split(separator: " ") == ["quarantine", "1", "1", "0", "0", "0"] })
            #expect(lines.contains { $0.hasPrefix("  conflict notifications smartro SMTPAY001m \(tids[0]) 0:") })
            #expect(lines.last == "checked: the target holds every row of the source")
            #expect(!fromA.output.contains(secret) && !fromB.output.contains(secret))

            // History: every TID once, B's version of the first kept, A's retry counted.
            #expect(
                try await PG.psql(database, "SELECT tid, amount, retries FROM notifications ORDER BY tid")
                    == "\(tids[0])|2000|0\n\(tids[1])|1000|1\n\(tids[2])|1000|0")
            #expect(try await PG.psql(database, "SELECT count(*) FROM retries") == "1")
            #expect(try await PG.psql(database, "SELECT reason FROM quarantine") == "signature_mismatch")
            // Not sent again: every event was filed on its host; the only delivery is the
            // conflict the merge found, built from A's stored body as the intake builds it.
            let outbox = try await PG.psql(database, "SELECT convert_from(payload, 'UTF8') FROM outbox")
            let event = try #require(
                try JSONSerialization.jsonObject(with: Data(outbox.utf8)) as? [String: Any], "\(outbox)")
            #expect(event["kind"] as? String == "notification.conflict")
            #expect(event["amount"] as? Int == 1000 && event["sandbox"] as? Bool == true)
            #expect(event["verified_by"] as? String == "signvalue-md5", "as A verified it when it arrived")
            let conflict = try #require(event["conflict"] as? [String: Any])
            #expect((conflict["stored"] as? [String: Any])?["amount"] as? Int == 2000)

            // Run again: nothing added.
            let counts =
                "SELECT (SELECT count(*) FROM notifications), (SELECT count(*) FROM conflicts), (SELECT count(*) FROM outbox), (SELECT count(*) FROM quarantine), (SELECT count(*) FROM retries)"
            let before = try await PG.psql(database, counts)
            let again = try await Self.copyLedger(hostA, to: database, passwordFile: passwordFile.path)
            #expect(again.status == 0, "\(again.output)")
            #expect(
                again.output.split(separator: "\n").contains {
                    $0.split(separator: " ") == ["notifications", "3", "0", "3", "0", "0"]
                }, "\(again.output)")
            #expect(!again.output.contains("merged:"))
            #expect(try await PG.psql(database, counts) == before)
            #expect(try Data(contentsOf: URL(fileURLWithPath: hostA)) == sourceBytes, "the source is read only")

            // The cluster's forwarder sends the merge's conflict event, and nothing of the history.
            let receiver = try await WebhookReceiver(in: try DaemonProcess.makeDirectory("copy-app"))
            let forwarder = try await PG.forwarder("copy-fwd", database: database, url: receiver.url)
            defer { forwarder.stop() }
            try await waitUntil(timeout: .seconds(15), "the outbox delivered") {
                try await PG.psql(database, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == "0"
            }
            #expect(receiver.acceptedIDs() == [event["id"] as? String], "\(receiver.records())")
        }

        @Test func aLedgerWhoseDaemonStillRunsIsRefused() async throws {
            let dir = try DaemonProcess.makeDirectory("copy-running")
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            let database = try await PG.scratchDatabase()
            let run = try await runProcess(
                DaemonProcess.binary,
                ["copy-ledger", "--from", dir.appendingPathComponent("var/pgnoti.sqlite").path, "--to", database],
                mergeOutput: true)
            #expect(run.status == 1)
            #expect(run.output.contains("still runs") && run.output.contains("stop it first"), "\(run.output)")
            #expect(try await daemon.terminate() == 0)
            #expect(try await PG.psql(database, "SELECT to_regclass('notifications') IS NULL") == "t", "nothing copied")
        }

        @Test func aPasswordInTheURLAndInAFileIsRefusedWithoutShowingIt() async throws {
            let dir = try DaemonProcess.makeDirectory("copy-twice")
            let passwordFile = dir.appendingPathComponent("password")
            try "file-secret\n".write(to: passwordFile, atomically: true, encoding: .utf8)
            let run = try await runProcess(
                DaemonProcess.binary,
                [
                    "copy-ledger", "--from", dir.appendingPathComponent("none.sqlite").path, "--to",
                    "postgresql://postgres:url-secret@127.0.0.1/db", "--password-file", passwordFile.path,
                ], mergeOutput: true)
            #expect(run.status != 0)
            #expect(run.output.contains("keep it in the file only"), "\(run.output)")
            #expect(!run.output.contains("url-secret") && !run.output.contains("file-secret"))
        }
    }
}
