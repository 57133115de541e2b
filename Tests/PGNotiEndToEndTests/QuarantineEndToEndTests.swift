import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiStore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Everything refused is kept, and what was refused by mistake can be brought back.
extension EndToEnd {
    @Suite struct QuarantineEndToEndTests {
        static func run(_ arguments: [String], in dir: URL) async throws -> (status: Int32, output: String) {
            try await OperationsEndToEndTests.run(arguments, in: dir)
        }

        /// Runs a command and splits what it printed on stdout from what it said on stderr.
        static func runSplit(_ arguments: [String], in dir: URL, stdin: Data? = nil) async throws -> (
            status: Int32, stdout: String, stderr: String
        ) {
            let result = try await runProcess(DaemonProcess.binary, arguments, in: dir, stdin: stdin)
            return (result.status, result.stdout, result.stderr)
        }

        static func writeKeys(_ key: String, in dir: URL) throws {
            try "SMTPAY001m=\(key)\n".write(to: dir.appendingPathComponent("keys"), atomically: true, encoding: .utf8)
        }

        static func smartroOnly(_ dir: URL) -> String {
            """
            [smartro]
            merchant_keys_file = "\(dir.path)/keys"
            accept_test_merchants = true
            """
        }

        /// The manual's key with one character changed: what a typo in the keys file looks like.
        static let wrongKey = "1" + Config.smartroTestKey.dropFirst()

        @Test func aNotificationRefusedForAWrongKeyIsReleasedOnceAfterTheFixWhileTheDaemonRuns() async throws {
            let dir = try DaemonProcess.makeDirectory("release")
            try Self.writeKeys(Self.wrongKey, in: dir)
            let config = try DaemonProcess.writeConfig(in: dir, providers: Self.smartroOnly(dir)).path
            let daemon = try await DaemonProcess.start(dir)
            let fixture = try TrustEndToEndTests.fixture("smartro", "approve-card")
            let refused = try daemon.send(fixture: fixture.request)
            #expect(refused.status == 403)
            _ = try daemon.send(
                Array(
                    "POST /notify/smartro HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\ngarbage"
                        .utf8
                ))

            let table = try await Self.run(["quarantine", "list", "--config", config], in: dir)
            #expect(table.status == 0)
            #expect(table.output.contains("signature_mismatch") && table.output.contains("missing_field"))
            #expect(table.output.contains("SMTPAY001m01012411231530001234"), "the whole TID")
            let json = try await Self.run(
                [
                    "quarantine", "list", "--config", config, "--json", "--reason", "signature_mismatch", "--since",
                    "1h",
                ],
                in: dir)
            let items = json.output.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            #expect(items.count == 1)
            let id = try #require(items.first?["id"] as? Int)
            #expect(items.first?["parsed"] as? Bool == true)

            let show = try await Self.runSplit(["quarantine", "show", String(id), "--config", config], in: dir)
            #expect(show.status == 0)
            #expect(show.stdout.contains("signature_mismatch") && show.stdout.contains("김**"))
            #expect(!show.stdout.contains("김똠순"), "a buyer's name is personal data: masked")
            #expect(!show.stdout.contains("010-0000-0001"), "personal data masked")
            #expect(!show.stdout.contains("raw:"))
            let raw = try await Self.runSplit(["quarantine", "show", String(id), "--raw", "--config", config], in: dir)
            #expect(raw.stdout.contains("raw:") && raw.stdout.contains("BuyerTel=010-0000-0001"))
            #expect(raw.stderr.contains("warning"))

            // Still the wrong key: released, refused again, nothing filed.
            let early = try await Self.runSplit(["quarantine", "release", String(id), "--config", config], in: dir)
            #expect(early.stdout == "refused signature_mismatch\n")
            #expect(early.status == 1, "a release that did not happen is a failure")

            try Self.writeKeys(Config.smartroTestKey, in: dir)
            let released = try await Self.runSplit(["quarantine", "release", String(id), "--config", config], in: dir)
            #expect(released.status == 0)
            let line = released.stdout.trimmingCharacters(in: .newlines)
            #expect(line.hasPrefix("accepted "), "\(released)")
            let eventID = String(line.dropFirst("accepted ".count))
            // The daemon holds the outbox lock, so the daemon files it, within a second or so.
            #expect(released.stderr.contains("the daemon holds the outbox lock"))
            try await daemon.waitForQueue(count: 1, timeout: .seconds(5))
            let again = try await Self.runSplit(
                ["quarantine", "release", "--reason", "signature_mismatch", "--config", config], in: dir)
            #expect(again.stdout.isEmpty, "an item already released is not picked by --reason")
            let twice = try await Self.runSplit(["quarantine", "release", String(id), "--config", config], in: dir)
            #expect(twice.stdout == "duplicate \(eventID)\n")

            let files = try daemon.queueFiles()
            #expect(files.count == 1)
            let event = try JSONSerialization.jsonObject(with: Data(contentsOf: files[0])) as! [String: Any]
            #expect(event["id"] as? String == eventID)
            // It keeps the time the PG first sent it.
            #expect(event["received_at"] as? String == items.first?["received_at"] as? String)

            let drop = try await Self.run(["quarantine", "drop", String(id), "--config", config], in: dir)
            #expect(drop.output == "dropped 1 of 1\n")
            let after = try await Self.run(["quarantine", "list", "--config", config, "--json"], in: dir)
            #expect(after.output.split(separator: "\n").count == 1, "only the garbage is left")
            #expect(try await daemon.terminate() == 0)
        }

        /// With no daemon running, the command files the event itself before it exits.
        @Test func releaseFilesTheEventItselfWhenNoDaemonRuns() async throws {
            let dir = try DaemonProcess.makeDirectory("release-offline")
            try Self.writeKeys(Self.wrongKey, in: dir)
            let config = try DaemonProcess.writeConfig(in: dir, providers: Self.smartroOnly(dir)).path
            let daemon = try await DaemonProcess.start(dir)
            let received = Date()
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request)
            _ = try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "vbank-issued").request)
            #expect(try await daemon.terminate() == 0)

            try Self.writeKeys(Config.smartroTestKey, in: dir)
            let released = try await Self.runSplit(
                [
                    "quarantine", "release", "--reason", "signature_mismatch", "--since", "2026-01-01", "--config",
                    config,
                ],
                in: dir)
            #expect(released.status == 0)
            let lines = released.stdout.split(separator: "\n")
            #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("accepted ") })
            #expect(released.stderr.contains("filed 2 event(s)"))
            let files = try daemon.queueFiles()
            #expect(files.count == 2)
            // Filed in the order released, received when the PG sent them.
            let events = try files.map {
                try JSONSerialization.jsonObject(with: Data(contentsOf: $0)) as! [String: Any]
            }
            #expect(events.map { $0["kind"] as? String } == ["payment.approved", "vbank.issued"])
            for event in events {
                let stamp = try #require(event["received_at"] as? String)
                #expect(stamp.hasPrefix(String(KoreanTimeString.iso(received).prefix(10))))
            }
            // The same IDs again: duplicates, still one file each.
            let again = try await Self.runSplit(["quarantine", "release", "1", "2", "--config", config], in: dir)
            #expect(again.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("duplicate ") })
            #expect(try daemon.queueFiles().count == 2)
        }

        /// 30,000 garbage requests against a 1 MiB quarantine: it stays inside its byte cap, and the
        /// one wrong-key notification among them, the thing a release will want, is still there.
        @Test func aGarbageFloodStaysInsideTheByteCapAndKeepsWhatParsed() async throws {
            let dir = try DaemonProcess.makeDirectory("flood")
            try Self.writeKeys(Self.wrongKey, in: dir)
            _ = try DaemonProcess.writeConfig(
                in: dir, top: "[limits]\nquarantine_max_bytes = 1048576", providers: Self.smartroOnly(dir))
            let daemon = try await DaemonProcess.start(dir)
            let port = daemon.port
            #expect(
                try daemon.send(fixture: try TrustEndToEndTests.fixture("smartro", "approve-card").request).status
                    == 403)
            let garbage = Array(repeating: UInt8(ascii: "z"), count: 1024)
            let request =
                Array("POST /notify/smartro HTTP/1.1\r\nHost: x\r\nContent-Length: \(garbage.count)\r\n\r\n".utf8)
                + garbage
            let total = 30_000
            let answered = Shared(0)
            // Sixteen blocking clients, each on a thread of its own: the test awaits them without
            // holding one of the cooperative pool's two threads.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    group.addTask {
                        try await onOwnThread {
                            guard let connection = try? KeepAliveConnection(port: port) else { return }
                            var n = worker
                            while n < total {
                                if (try? connection.exchange(request)) == 400 { answered.withLock { $0 += 1 } }
                                n += 16
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(answered.withLock { $0 } == total)
            #expect(try await daemon.terminate() == 0)

            let ledger = try Ledger(path: dir.appendingPathComponent("state/pgnoti.sqlite").path)
            let counts = try await ledger.counts()
            #expect(counts.quarantineBytes <= 1_048_576)
            #expect(counts.quarantine > 100, "the cap was filled, not emptied")
            let kept = try await ledger.quarantined(reason: "signature_mismatch")
            #expect(kept.count == 1 && kept.first?.parsed == true)
        }
    }
}

enum KoreanTimeString {
    static func iso(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss"
        return formatter.string(from: date)
    }
}
