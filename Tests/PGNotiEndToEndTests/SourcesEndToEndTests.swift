import Foundation
import PGNotiCore
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    /// Toss files through the daemon's inbox and the pull, and Payup through the daemon's client.
    @Suite struct SourcesEndToEndTests {
        static let tossFixtures = DaemonProcess.fixtures.appendingPathComponent("toss")

        static func queueEvents(_ daemon: DaemonProcess) throws -> [[String: Any]] {
            try daemon.queueFiles().compactMap {
                try JSONSerialization.jsonObject(with: Data(contentsOf: $0)) as? [String: Any]
            }
        }

        /// Moves a file into the inbox the way an FTP server that uploads under a temporary name does.
        static func dropRenamed(_ name: String, from source: URL, into inbox: URL) throws {
            let temporary = inbox.appendingPathComponent(".in.\(name).part")
            try Data(contentsOf: source).write(to: temporary)
            guard rename(temporary.path, inbox.appendingPathComponent(name).path) == 0 else {
                throw HarnessError("rename into the inbox failed")
            }
        }

        /// The issue's "done when": the seed's AUTH and REV files dropped into the inbox give an
        /// event per row (the REV row without a Status is quarantined, not guessed); dropping
        /// them again gives none.
        @Test func samplesDroppedIntoTheInboxGiveOneEventPerRowOnce() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-inbox")
            let inbox = dir.appendingPathComponent("inbox")
            try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
            _ = try DaemonProcess.writeConfig(
                in: dir, extra: "[toss]\ninbox = \"\(inbox.path)\"\nstable_seconds = 30\npoll_seconds = 0.2\n")
            let daemon = try await DaemonProcess.start(dir)
            defer { daemon.stop() }
            for name in ["toss_AUTH_20070706.dat", "toss_REV_20070706.dat"] {
                try Self.dropRenamed(name, from: Self.tossFixtures.appendingPathComponent(name), into: inbox)
            }
            // Renamed in: taken at once, not after stable_seconds.
            try await waitUntil(timeout: .seconds(15), "seven events") { try daemon.queueFiles().count == 7 }
            let events = try Self.queueEvents(daemon)
            #expect(events.allSatisfy { $0["provider"] as? String == "toss" })
            #expect(events.filter { $0["kind"] as? String == "payment.approved" }.count == 4)
            #expect(events.filter { $0["kind"] as? String == "payment.canceled" }.count == 3)
            let refused = try await daemon.waitForLog {
                $0["msg"] as? String == "notification" && $0["outcome"] as? String == "rejected"
            }
            #expect(refused.first?["file"] as? String == "toss_REV_20070706.dat")
            #expect("\(refused.first?["line"] ?? "")" == "3")

            // The same files again (a later push with nothing new).
            for name in ["toss_AUTH_20070706.dat", "toss_REV_20070706.dat"] {
                try Self.dropRenamed(name, from: Self.tossFixtures.appendingPathComponent(name), into: inbox)
            }
            let reads = try await daemon.waitForLog(message: "Toss file read", count: 4)
            // Both second reads committed nothing new, so the relay has nothing more to file.
            #expect(reads.dropFirst(2).allSatisfy { "\($0["new"] ?? "")" == "0" }, "\(reads)")
            #expect(try daemon.queueFiles().count == 7, "nothing filed twice")
            // 2007 is long final: both files moved to done/.
            try await waitUntil(timeout: .seconds(10), "files final") {
                (try? FileManager.default.contentsOfDirectory(atPath: inbox.appendingPathComponent("done").path).count)
                    == 2
            }
        }

        @Test func aHalfWrittenFileIsNotTakenEarly() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-partial")
            let inbox = dir.appendingPathComponent("inbox")
            try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
            _ = try DaemonProcess.writeConfig(
                in: dir,
                extra:
                    "[toss]\ninbox = \"\(inbox.path)\"\nstable_seconds = 2\npoll_seconds = 0.1\nfinal_after_minutes = 0\n"
            )
            let daemon = try await DaemonProcess.start(dir)
            defer { daemon.stop() }
            let whole = [UInt8](
                try Data(contentsOf: Self.tossFixtures.appendingPathComponent("toss_AUTH_20070706.dat")))
            // A day that is not final during the test.
            let path = inbox.appendingPathComponent("toss_AUTH_20991231.dat").path
            let cut = whole.count / 2
            // Written in place, in two parts, as a plain FTP STOR would (no rename).
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
            try #require(fd >= 0)
            _ = whole[..<cut].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            // Time must pass here: the file may not be taken before it has been unchanged for
            // stable_seconds (2 s), and the daemon logs nothing while it waits for that.
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try daemon.queueFiles().isEmpty, "not taken while it may still grow")
            _ = whole[cut...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            // Again time must pass: 2.4 s after the first write but 1.2 s after the change, so the
            // file is still not taken only if the change restarted the stable time.
            try await Task.sleep(for: .milliseconds(1200))
            #expect(try daemon.queueFiles().isEmpty, "the stable time starts again when the file changes")
            try await waitUntil(timeout: .seconds(15), "the whole file read") { try daemon.queueFiles().count == 4 }
            #expect(daemon.logObjects.filter { $0["outcome"] as? String == "rejected" }.isEmpty)
        }

        /// Issue 14, fault 1, against the daemon: a past day's file written in place stalls
        /// inside line 3's amount for longer than stable_seconds. The daemon reads the two whole
        /// lines and leaves the file where it is; when the upload resumes it reads the rest, so
        /// no row is lost; the file moves to done/ only once it has been unchanged for
        /// final_after_minutes.
        @Test func aPastDaysFileWrittenInPlaceWithAStallLosesNoRow() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-stall")
            let inbox = dir.appendingPathComponent("inbox")
            try FileManager.default.createDirectory(at: inbox, withIntermediateDirectories: true)
            _ = try DaemonProcess.writeConfig(
                in: dir,
                extra:
                    "[toss]\ninbox = \"\(inbox.path)\"\nstable_seconds = 1\npoll_seconds = 0.1\nfinal_after_minutes = 1\n"
            )
            let daemon = try await DaemonProcess.start(dir)
            defer { daemon.stop() }
            let whole = [UInt8](
                try Data(contentsOf: Self.tossFixtures.appendingPathComponent("toss_AUTH_20070706.dat")))
            let amount = try #require(whole.firstRange(of: Array(";319000;".utf8)))
            let cut = amount.lowerBound + 4  // "…;319", inside line 3's amount
            let name = "toss_AUTH_20070706.dat"  // long final
            let path = inbox.appendingPathComponent(name)
            try Data(whole[..<cut]).write(to: path)  // in place, no rename

            try await waitUntil(timeout: .seconds(15), "the stalled file read") {
                daemon.logObjects.contains {
                    $0["msg"] as? String == "Toss file read" && $0["file"] as? String == name
                        && "\($0["unterminated_line"] ?? "")" == "3"
                }
            }
            // Filed a moment after the commit the log line reports.
            try await waitUntil(timeout: .seconds(15), "the two whole lines filed") {
                try daemon.queueFiles().count == 2
            }
            #expect(FileManager.default.fileExists(atPath: path.path), "not moved while it may still be written")

            let handle = try FileHandle(forWritingTo: path)
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(whole[cut...]))
            try handle.close()
            try await waitUntil(timeout: .seconds(15), "four events") { try daemon.queueFiles().count == 4 }
            #expect(FileManager.default.fileExists(atPath: path.path), "just written: not final yet")
            let events = try Self.queueEvents(daemon)
            #expect(Set(events.compactMap { $0["tid"] as? String }).count == 4, "one event per row")
            #expect(events.first { $0["tid"] as? String == "toss2007070623433532130" }?["amount"] as? Int == 319000)
            #expect(daemon.logObjects.filter { $0["outcome"] as? String == "rejected" }.isEmpty)

            // Unchanged for two minutes: final.
            try FileManager.default.setAttributes(
                [.modificationDate: Date().addingTimeInterval(-120)], ofItemAtPath: path.path)
            try await waitUntil(timeout: .seconds(15), "the file moved to done/") {
                FileManager.default.fileExists(atPath: inbox.appendingPathComponent("done/\(name)").path)
            }
            #expect(try daemon.queueFiles().count == 4)
        }

        static func tossPullConfig(_ dir: URL, url: String, mertKey: String) throws -> String {
            let keyFile = dir.appendingPathComponent("toss-mert-key")
            try (mertKey + "\n").write(to: keyFile, atomically: true, encoding: .utf8)
            return try DaemonProcess.writeConfig(
                in: dir,
                extra: """
                    [toss]
                    merchant_id = "toss"
                    mert_key_file = "\(keyFile.path)"
                    pull_url = "\(url)"
                    pull_timeout_seconds = 5
                    """
            ).path
        }

        @Test func thePullSendsTheRightKeyAndFilesTheRows() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-pull")
            let mertKey = "test-mert-key-7f3a"
            let keyFile = dir.appendingPathComponent("server-key")
            try mertKey.write(to: keyFile, atomically: true, encoding: .utf8)
            let log = dir.appendingPathComponent("toss-server.log")
            let server = try await PythonServer(
                script: "fake_toss.py",
                arguments: [
                    "--mert-key-file", keyFile.path, "--rows-dir", Self.tossFixtures.path, "--log", log.path,
                    "--fail-first", "1",
                ])
            let url = "http://127.0.0.1:\(server.port)/pg/wmp/outerpage/trxdown.jsp"
            let config = try Self.tossPullConfig(dir, url: url, mertKey: mertKey)
            let pulled = try await QuarantineEndToEndTests.runSplit(
                ["toss", "pull", "--date", "20070706", "--service", "TRX", "--config", config], in: dir)
            #expect(pulled.status == 0, "\(pulled.stderr)")
            #expect(pulled.stdout.contains("TRX: toss_AUTH_20070706.dat: 4 rows, 4 new"), "\(pulled.stdout)")
            let requests = PythonServer.records(log)
            #expect(requests.count == 2, "one 503, retried once")
            #expect(requests.last?["key_ok"] as? Bool == true)
            #expect(
                requests.last?["servicecode"] as? String == "TRX" && requests.last?["trxdate"] as? String == "20070706")
            #expect(!pulled.stderr.contains(mertKey) && !pulled.stdout.contains(mertKey))
            let md5Key = Digest.hex(Digest.md5(Array(("toss" + mertKey).utf8)))
            #expect(!pulled.stderr.contains(md5Key), "the URL with its key is never printed")
            let again = try await QuarantineEndToEndTests.runSplit(
                ["toss", "pull", "--date", "20070706", "--service", "TRX", "--config", config], in: dir)
            #expect(again.stdout.contains("0 new"), "\(again.stdout)")
            let queued = try FileManager.default.contentsOfDirectory(
                atPath: dir.appendingPathComponent("state/queue/new").path)
            #expect(queued.count == 4)
        }

        @Test func aWrongKeyGetsTheErrorPageNamedNotFiled() async throws {
            let dir = try DaemonProcess.makeDirectory("toss-pull-key")
            let keyFile = dir.appendingPathComponent("server-key")
            try "the-right-key".write(to: keyFile, atomically: true, encoding: .utf8)
            let log = dir.appendingPathComponent("toss-server.log")
            let server = try await PythonServer(
                script: "fake_toss.py",
                arguments: ["--mert-key-file", keyFile.path, "--rows-dir", Self.tossFixtures.path, "--log", log.path])
            let config = try Self.tossPullConfig(
                dir, url: "http://127.0.0.1:\(server.port)/pg/wmp/outerpage/trxdown.jsp", mertKey: "a-wrong-key")
            let pulled = try await QuarantineEndToEndTests.runSplit(
                ["toss", "pull", "--date", "20070706", "--config", config], in: dir)
            #expect(pulled.status != 0)
            #expect(pulled.stderr.contains("HTML page") && pulled.stderr.contains("인증 오류"), "\(pulled.stderr)")
            #expect(!pulled.stderr.contains("a-wrong-key"))
            #expect(PythonServer.records(log).count == 2, "not retried: one request per service")
        }

        // MARK: - Payup

        struct PayupSetup {
            let dir: URL
            let config: String
            let daemon: DaemonProcess
            let server: PythonServer
            let log: URL
        }

        static let apiKey = "25bcd7a82f5b4058818462cc7715964c"  // the manual's published example key
        static let token = "client-token-for-tests-only-3f9c"

        static func payup(_ name: String, timeout: Int = 10) async throws -> PayupSetup {
            let dir = try DaemonProcess.makeDirectory(name)
            let keyFile = dir.appendingPathComponent("payup-key")
            try (apiKey + "\n").write(to: keyFile, atomically: true, encoding: .utf8)
            let tokenFile = dir.appendingPathComponent("payup-token")
            try (token + "\n").write(to: tokenFile, atomically: true, encoding: .utf8)
            let log = dir.appendingPathComponent("payup-server.log")
            let server = try await PythonServer(
                script: "fake_payup.py", arguments: ["--api-key-file", keyFile.path, "--log", log.path, "--slow", "4"])
            let config = try DaemonProcess.writeConfig(
                in: dir,
                extra: """
                    [payup]
                    base_url = "http://127.0.0.1:\(server.port)"
                    merchant_id = "tester"
                    api_cert_key_file = "\(keyFile.path)"
                    client_token_file = "\(tokenFile.path)"
                    timeout_seconds = \(timeout)
                    """
            ).path
            let daemon = try await DaemonProcess.start(dir)
            // The CLI reaches the daemon through admin_listen, which the test config leaves at port 0.
            let admin = try await daemon.adminPort()
            let text = try String(contentsOfFile: config, encoding: .utf8)
                .replacingOccurrences(
                    of: "admin_listen = \"127.0.0.1:0\"", with: "admin_listen = \"127.0.0.1:\(admin)\"")
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            return PayupSetup(dir: dir, config: config, daemon: daemon, server: server, log: log)
        }

        static func call(_ setup: PayupSetup, _ operation: String, _ json: String) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            try await QuarantineEndToEndTests.runSplit(
                ["payup", operation, "--config", setup.config], in: setup.dir, stdin: Data(json.utf8))
        }

        static let card = "9490191412341234"

        static func approval(order: String) -> String {
            #"{"orderNumber":"\#(order)","cardNo":"\#(card)","expireMonth":"05","expireYear":"29","birthday":"890302","cardPw":"00","amount":"1004","quota":"0","itemName":"TEST 상품","userName":"최용수"}"#
        }

        @Test func anApprovalPrintsTheAnswerAndFilesOneEventWithoutCardData() async throws {
            let setup = try await Self.payup("payup-ok")
            defer { setup.daemon.stop() }
            let result = try await Self.call(setup, "approve", Self.approval(order: "ORD-0001"))
            #expect(result.status == 0, "\(result.stderr)")
            let answer = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(answer["responseCode"] as? String == "0000")
            let transaction = try #require(answer["transactionId"] as? String)
            try await waitUntil(timeout: .seconds(10), "one event") { try setup.daemon.queueFiles().count == 1 }
            let event = try #require(try Self.queueEvents(setup.daemon).first)
            #expect(event["provider"] as? String == "payup" && event["kind"] as? String == "payment.approved")
            #expect(event["tid"] as? String == transaction && event["order_id"] as? String == "ORD-0001")
            #expect(event["amount"] as? Int == 1004)
            let request = try #require(PythonServer.records(setup.log).first)
            #expect(request["signature_ok"] as? Bool == true, "signed per the manual")

            // The card number reached Payup and nowhere else.
            #expect((request["request"] as? [String: Any])?["cardNo"] as? String == "len16")
            _ = try await setup.daemon.terminate()
            #expect(!setup.daemon.logText.contains(Self.card))
            for file in try FileManager.default.subpathsOfDirectory(
                atPath: setup.dir.appendingPathComponent("state").path)
            {
                let path = setup.dir.appendingPathComponent("state").appendingPathComponent(file).path
                if let data = FileManager.default.contents(atPath: path) {
                    #expect(data.range(of: Data(Self.card.utf8)) == nil, "card number in \(file)")
                    #expect(data.range(of: Data("890302".utf8)) == nil, "birthday in \(file)")
                }
            }
        }

        @Test func aDeclineIsAFailedPaymentAndACancelACanceledOne() async throws {
            let setup = try await Self.payup("payup-decline")
            defer { setup.daemon.stop() }
            let declined = try await Self.call(setup, "approve", Self.approval(order: "DECLINE-1"))
            #expect(declined.status == 1)
            #expect(declined.stdout.contains("5001"))
            let approved = try await Self.call(setup, "approve", Self.approval(order: "ORD-2"))
            let transaction = try #require(
                (try JSONSerialization.jsonObject(with: Data(approved.stdout.utf8)) as? [String: Any])?["transactionId"]
                    as? String)
            let canceled = try await Self.call(setup, "cancel", #"{"transactionId":"\#(transaction)"}"#)
            #expect(canceled.status == 0, "\(canceled.stderr)")
            try await waitUntil(timeout: .seconds(10), "three events") { try setup.daemon.queueFiles().count == 3 }
            let events = try Self.queueEvents(setup.daemon)
            #expect(
                events.compactMap { $0["kind"] as? String } == [
                    "payment.failed", "payment.approved", "payment.canceled",
                ])
            #expect(events[2]["order_id"] as? String == "ORD-2", "the cancel carries its approval's order")
            let failed = try #require(try Self.queueEvents(setup.daemon).first)
            #expect(failed["result_code"] as? String == "5001")
            #expect(PythonServer.records(setup.log).allSatisfy { $0["signature_ok"] as? Bool == true })
        }

        @Test func aLostAnswerIsAnUnknownPaymentListedAsPending() async throws {
            let setup = try await Self.payup("payup-unknown", timeout: 1)
            defer { setup.daemon.stop() }
            let result = try await Self.call(setup, "approve", Self.approval(order: "SLOW-1"))
            #expect(result.status == 3, "\(result.stdout) \(result.stderr)")
            #expect(result.stdout.contains("\"outcome\":\"unknown\""))
            try await waitUntil(timeout: .seconds(10), "an event") { try setup.daemon.queueFiles().count == 1 }
            let event = try #require(try Self.queueEvents(setup.daemon).first)
            #expect(event["kind"] as? String == "payment.unknown" && event["order_id"] as? String == "SLOW-1")
            let pending = try await QuarantineEndToEndTests.runSplit(
                ["payup", "pending", "--config", setup.config], in: setup.dir)
            #expect(pending.stdout.contains("SLOW-1") && pending.stdout.contains("unknown"), "\(pending.stdout)")
        }

        @Test func theClientWantsItsToken() async throws {
            let setup = try await Self.payup("payup-token")
            defer { setup.daemon.stop() }
            let body = Array(Self.approval(order: "ORD-X").utf8)
            let head =
                "POST /payup/approve HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: \(body.count)\r\n\r\n"
            let response = try RawHTTPClient.exchange(
                host: "127.0.0.1", port: try await setup.daemon.adminPort(), bytes: Array(head.utf8) + body)
            #expect(response.status == 401)
            #expect(PythonServer.records(setup.log).isEmpty, "nothing sent to Payup")
        }
    }
}

extension EndToEnd {
    /// The README's examples of the events Toss files and the Payup client produce, rendered
    /// from the seed's rows and from the documents the client files.
    @Suite struct SourceEventExamples {
        static let begin = "<!-- source-events:begin (generated by SourceEventExamples; do not edit) -->"
        static let end = "<!-- source-events:end -->"

        static func event(_ provider: any PaymentProvider, _ body: [UInt8], _ contentType: String) throws -> [String:
            Any]
        {
            let fields = try provider.fields(from: body, contentType: contentType)
            let notification = try provider.interpret(fields)
            let event = Event(
                notification: notification, receivedAt: Date(), charset: fields.charset,
                lossyFields: fields.lossyFieldNames)
            return try #require(try JSONSerialization.jsonObject(with: Data(event.jsonBytes())) as? [String: Any])
        }

        static func row(_ file: String, line: Int) throws -> [UInt8] {
            let bytes = [UInt8](
                try Data(contentsOf: SourcesEndToEndTests.tossFixtures.appendingPathComponent(file)))
            return try #require(TossFile.lines(in: bytes).lines.first { $0.number == line }).bytes
        }

        static func payup(_ document: String) throws -> [String: Any] {
            try event(Payup(), Array(document.utf8), Payup.mediaType)
        }

        @Test func readmeShowsEveryNewKind() async throws {
            let auth = TossPayments.RowFormat(kind: .auth, delimiter: .semicolon).contentType
            let rev = TossPayments.RowFormat(kind: .rev, delimiter: .semicolon).contentType
            // The seed has no failed refund: its first REV row with the Status made 21.
            var refundFailed = try Self.row("toss_REV_20070706.dat", line: 1)
            try #require(refundFailed.suffix(3) == Array(";20".utf8))
            refundFailed[refundFailed.count - 1] = UInt8(ascii: "1")
            let examples: [(String, [String: Any])] = [
                (
                    "Toss AUTH row (`fixtures/toss/toss_AUTH_20070706.dat` line 1)",
                    try Self.event(TossPayments(), try Self.row("toss_AUTH_20070706.dat", line: 1), auth)
                ),
                (
                    "Toss AUTH row, account transfer (line 3)",
                    try Self.event(TossPayments(), try Self.row("toss_AUTH_20070706.dat", line: 3), auth)
                ),
                (
                    "Toss REV row (`fixtures/toss/toss_REV_20070706.dat` line 1)",
                    try Self.event(TossPayments(), try Self.row("toss_REV_20070706.dat", line: 1), rev)
                ),
                (
                    "Toss REV row with Status 21 (a refund that failed)",
                    try Self.event(TossPayments(), refundFailed, rev)
                ),
                (
                    "Payup approval answered `0000`",
                    try Self.payup(
                        #"{"operation":"approve","intent_id":"3f0c9a1e5b7d2c44","merchant_id":"tester","order_number":"ORD-0001","amount":"1004","timestamp":"20261124103000","outcome":"response","response":{"responseCode":"0000","responseMsg":"성공","transactionId":"20261124000001ST0001","authDateTime":"20261124103000","authNumber":"00308225","orderNumber":"ORD-0001","amount":"1004","cardName":"신한카드","kakaoResultCode":""}}"#
                    )
                ),
                (
                    "Payup approval declined (any code but `0000`)",
                    try Self.payup(
                        #"{"operation":"approve","intent_id":"9b1d0e77a2c35f10","merchant_id":"tester","order_number":"ORD-0002","amount":"100","timestamp":"20261124103500","outcome":"response","response":{"responseCode":"5001","responseMsg":"결제 금액이 최소 결제 금액 보다 작습니다."}}"#
                    )
                ),
                (
                    "Payup call whose answer was lost",
                    try Self.payup(
                        #"{"operation":"approve","intent_id":"c41e8f02d9a6b375","merchant_id":"tester","order_number":"ORD-0003","amount":"1004","timestamp":"20261124104000","outcome":"unknown","error":"no answer within 30 seconds"}"#
                    )
                ),
                (
                    "Payup cancel answered `0000`",
                    try Self.payup(
                        #"{"operation":"cancel","intent_id":"5a7b2e90c1d4f836","merchant_id":"tester","order_number":"ORD-0001","transaction_id":"20261124000001ST0001","timestamp":"20261124110000","outcome":"response","response":{"responseCode":"0000","responseMsg":"성공","cancelDateTime":"20261124110000","transactionId":"20261124000001ST0001"}}"#
                    )
                ),
            ]
            var out = [Self.begin, ""]
            for (title, event) in examples {
                out.append("- \(title) → `\(event["kind"] as? String ?? "?")`")
                out.append("")
                out.append("  ```json")
                out.append("  " + (try ReadmeExamples.json(ReadmeExamples.compact(event), pretty: false)))
                out.append("  ```")
                out.append("")
            }
            out.append(Self.end)
            try ReadmeExamples.check(
                out.joined(separator: "\n"), begin: Self.begin, end: Self.end, test: "SourceEventExamples")
        }
    }
}
