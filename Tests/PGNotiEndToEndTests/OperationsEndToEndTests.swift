import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension EndToEnd {
    @Suite struct OperationsEndToEndTests {
        static func fixture(_ provider: String, _ name: String) throws -> Fixture {
            try #require(try Fixture.all().first { $0.provider == provider && $0.name == name })
        }

        /// Runs a command; stdout and stderr as one text.
        static func run(_ arguments: [String], in directory: URL) async throws -> (status: Int32, output: String) {
            let result = try await runProcess(DaemonProcess.binary, arguments, in: directory, mergeOutput: true)
            return (result.status, result.output)
        }

        @Test func sandboxModeNeedsNoConfigAndKnowsSmartrosTestMerchant() async throws {
            let dir = try DaemonProcess.makeDirectory("sandbox")
            // Port 0 for the admin listener too: the fixed 9759 may belong to a developer's daemon.
            let daemon = try await DaemonProcess.start(
                dir, arguments: ["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            let first = try await #require(daemon.waitForLog { _ in true }.first)
            #expect(first["level"] as? String == "warning")
            #expect((first["msg"] as? String)?.contains("SANDBOX MODE") == true)
            let response = try daemon.send(fixture: try Self.fixture("smartro", "approve-card").request)
            #expect(response.status == 200 && response.bodyText == "OK")
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("var/pgnoti.sqlite").path))
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("var/queue/tmp").path))
            let new = dir.appendingPathComponent("var/queue/new").path
            try await waitUntil(timeout: .seconds(10), "one file in var/queue/new") {
                (try? FileManager.default.contentsOfDirectory(atPath: new).count) == 1
            }
            #expect(!daemon.logText.contains(Config.smartroTestKey))
            // Sandbox mode has the admin listener too, on the port asked for.
            let adminPort = try await daemon.adminPort()
            #expect(adminPort != 9759 && adminPort != daemon.port)
            let health = try await daemon.admin("/healthz")
            #expect(health.status == 200 && health.bodyText == "ok\n")
            #expect(try await daemon.terminate() == 0)
        }

        @Test func sendReplaysAFixtureAndPrintsStatusAndBody() async throws {
            let dir = try DaemonProcess.makeDirectory("send")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let file = DaemonProcess.fixtures.appendingPathComponent("innopay/approve-card.http").path
            let ok = try await Self.run(["send", file, "--to", "http://127.0.0.1:\(daemon.port)"], in: dir)
            #expect(ok.status == 0)
            #expect(ok.output == "200\n0000\n")
            let bad = try await Self.run(
                [
                    "send", DaemonProcess.fixtures.appendingPathComponent("smartro/reject-bad-signature.http").path,
                    "--to", "http://127.0.0.1:\(daemon.port)/notify/smartro",
                ], in: dir)
            #expect(bad.status != 0)
            #expect(bad.output.hasPrefix("403\n"))
            #expect(try await daemon.terminate() == 0)
        }

        @Test func checkConfigNamesTheBadKeyAndServeRefusesIt() async throws {
            let dir = try DaemonProcess.makeDirectory("checkconfig")
            let good = try DaemonProcess.writeConfig(in: dir)
            let ok = try await Self.run(["check-config", "--config", good.path], in: dir)
            #expect(ok.status == 0, "\(ok.output)")
            #expect(ok.output.hasPrefix("ok:"))
            #expect(!ok.output.contains(Config.smartroTestKey))

            let bad = dir.appendingPathComponent("bad.toml")
            try
                "[smartro]\nsign_algorithm = \"sha1\"\n[smartro.merchant_keys]\nSMTPAY001m = \"\(Config.smartroTestKey)\"\n"
                .write(to: bad, atomically: true, encoding: .utf8)
            let refused = try await Self.run(["check-config", "--config", bad.path], in: dir)
            #expect(refused.status == 78)
            #expect(refused.output.contains("smartro.sign_algorithm"))
            #expect(!refused.output.contains(Config.smartroTestKey))
            let serve = try await Self.run(["serve", "--config", bad.path], in: dir)
            #expect(serve.status == 78)
            #expect(serve.output.contains("smartro.sign_algorithm"))
        }

        /// pgnoti.service runs check-config before it starts and never sees the forwarder's
        /// credential: a forward URL without a visible secret must not stop the daemon.
        @Test func checkConfigChecksTheForwardSecretOnlyWhereItCanSeeIt() async throws {
            let dir = try DaemonProcess.makeDirectory("checkforward")
            let base = try String(contentsOf: try DaemonProcess.writeConfig(in: dir), encoding: .utf8)
            let unseen = dir.appendingPathComponent("unseen.toml")
            try (base + "\n[forward]\nurl = \"http://127.0.0.1:9/hook\"\n").write(
                to: unseen, atomically: true, encoding: .utf8)
            let ok = try await Self.run(["check-config", "--config", unseen.path], in: dir)
            #expect(ok.status == 0, "\(ok.output)")
            #expect(ok.output.contains("no signing secret visible here"))

            let secret = dir.appendingPathComponent("forward-secret")
            try "not-a-webhook-secret\n".write(to: secret, atomically: true, encoding: .utf8)
            let broken = dir.appendingPathComponent("broken.toml")
            try (base + "\n[forward]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = \"\(secret.path)\"\n")
                .write(to: broken, atomically: true, encoding: .utf8)
            let refused = try await Self.run(["check-config", "--config", broken.path], in: dir)
            #expect(refused.status == 78, "\(refused.output)")
            #expect(refused.output.contains("forward.secret_file"))
            #expect(!refused.output.contains("not-a-webhook-secret"))
        }

        @Test func debugLogShowsFieldsWithPersonalDataMasked() async throws {
            let dir = try DaemonProcess.makeDirectory("mask")
            _ = try DaemonProcess.writeConfig(in: dir, logLevel: "debug")
            let daemon = try await DaemonProcess.start(dir)
            let response = try daemon.send(fixture: try Self.fixture("smartro", "approve-card").request)
            #expect(response.status == 200)
            let line = try await #require(daemon.notificationLines(count: 1).first)
            let fields = try #require(line["fields"] as? [String: String])
            #expect(fields["MID"] == "SMTPAY001m")
            #expect(fields["Name"] == "김**", "a buyer name is personal data: masked like a phone")
            #expect(!daemon.logText.contains("김똠순"))
            #expect(fields["BuyerTel"] != "010-0000-0001" && fields["BuyerTel"]?.hasSuffix("0001") == true)
            #expect(fields["BuyerEmail"]?.contains("buyer0001") == false)
            #expect(fields["pinNo"] != nil && fields["pinNo"] != "53651234****1234")
            #expect(!daemon.logText.contains("010-0000-0001"))
            #expect(!daemon.logText.contains("buyer0001@example.com"))
            #expect(!daemon.logText.contains("YTVkYTRjMDRkYTY0OTFkNzUwODU4ZWQ5YTc2Y2Y5MDY"), "SignValue is masked too")
            #expect(!daemon.logText.contains(Config.smartroTestKey))
            #expect(try await daemon.terminate() == 0)
        }

        /// SIGTERM while a PG is halfway through sending: that request is cut without an ACK (the
        /// PG retries it), and the daemon exits promptly instead of waiting on the slow client past
        /// systemd's TimeoutStopSec.
        @Test func sigtermCutsARequestStillBeingReadAndExitsPromptly() async throws {
            let dir = try DaemonProcess.makeDirectory("inflight")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            let request = try Self.fixture("tomatopay", "approve").request
            let bytes = request.serialized(host: "127.0.0.1:\(daemon.port)", target: request.target)
            let half = bytes.count - 40

            let before = daemon.socketInodes()
            let fd = try connectLoopback(port: daemon.port)
            defer { close(fd) }
            _ = bytes[..<half].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            // The head is in and the body has started: wait until the daemon has the connection.
            try await waitUntil(timeout: .seconds(20), "the daemon to accept the connection") {
                !daemon.socketInodes().subtracting(before).isEmpty
            }
            let stopping = Date()
            kill(daemon.process.processIdentifier, SIGTERM)
            #expect(try await daemon.waitForExit(timeout: .seconds(15)) == 0)
            #expect(Date().timeIntervalSince(stopping) < 10, "exits well inside TimeoutStopSec")
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            let text = n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : ""
            #expect(!text.contains("\r\n\r\nOK"), "no ACK for a request that never arrived whole: \(text)")
            #expect(try daemon.queueFiles().isEmpty)
        }
    }
}
