import Foundation
import PGNotiConfig
import PGNotiRawHTTP
import PGNotiStore
import PGNotiTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Authentication of the PGs that sign nothing, as a forger and as the PG would meet it.
extension EndToEnd {
    @Suite struct TrustEndToEndTests {
        /// Not a published test key: if it shows up anywhere, it leaked.
        static let plantedPathSecret = "planted-path-secret-5f2a9c1e7b"
        static let plantedMerchantKey = "planted-merchant-key-3d8e0a6b4c=="

        static func fixture(_ provider: String, _ name: String) throws -> Fixture {
            try #require(try Fixture.all().first { $0.provider == provider && $0.name == name })
        }

        /// The fixture's bytes aimed at `target`, with extra headers.
        static func bytes(_ fixture: Fixture, port: Int, target: String? = nil, headers: [String] = []) -> [UInt8] {
            var request = fixture.request
            request.headers += headers.map { line in
                let parts = line.split(separator: ":", maxSplits: 1)
                return (String(parts[0]), parts[1].trimmingCharacters(in: .whitespaces))
            }
            return request.serialized(host: "127.0.0.1:\(port)", target: target ?? request.target)
        }

        @Test func aMissingOrWrongPathSecretIsA404AndTheSecretIsNeverLogged() async throws {
            let dir = try DaemonProcess.makeDirectory("pathsecret")
            try "# rotated\n\(Self.plantedPathSecret)\nsecond-value-of-the-secret-99\n"
                .write(to: dir.appendingPathComponent("tomato-secret"), atomically: true, encoding: .utf8)
            try "SMTPAY001m=\(Config.smartroTestKey)\nPLANT0001m=\(Self.plantedMerchantKey)\n"
                .write(to: dir.appendingPathComponent("keys"), atomically: true, encoding: .utf8)
            let config = try DaemonProcess.writeConfig(
                in: dir,
                providers: """
                    [smartro]
                    merchant_keys_file = "\(dir.path)/keys"
                    accept_test_merchants = true
                    [tomatopay]
                    path_secret_file = "\(dir.path)/tomato-secret"
                    """, logLevel: "debug")
            let daemon = try await DaemonProcess.start(dir)
            let approve = try Self.fixture("tomatopay", "approve")
            let unknown = try daemon.send(
                Array("POST /notify/nicepay HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            )

            for target in [
                "/notify/tomatopay", "/notify/tomatopay/wrong-wrong-wrong-wrong",
                "/notify/tomatopay/\(Self.plantedPathSecret)x",
            ] {
                let response = try daemon.send(Self.bytes(approve, port: daemon.port, target: target))
                #expect(response.status == 404, "\(target)")
                #expect(response.body == unknown.body, "exactly like an unknown path")
            }
            // Not even the size limit shows: a declared oversized body under a wrong secret is a
            // 404 too (and its body is still not read).
            let oversized = try daemon.send(
                Array(
                    "POST /notify/tomatopay/wrong HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n".utf8))
            #expect(oversized.status == 404 && oversized.body == unknown.body)
            let get = try daemon.send(
                Array("GET /notify/tomatopay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            #expect(get.status == 404, "without the secret not even the method is revealed")
            let getWithSecret = try daemon.send(
                Array(
                    "GET /notify/tomatopay/\(Self.plantedPathSecret) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                        .utf8)
            )
            #expect(getWithSecret.status == 405)

            for secret in [Self.plantedPathSecret, "second-value-of-the-secret-99"] {
                let response = try daemon.send(
                    Self.bytes(approve, port: daemon.port, target: "/notify/tomatopay/\(secret)"))
                #expect(response.status == 200 && response.bodyText == "OK", "either value works while rotating")
            }
            try await daemon.waitForQueue(count: 1)
            let refused = try await daemon.waitForLog(count: 4) { $0["reason"] as? String == "path_secret_mismatch" }
            #expect(refused.count == 4)
            #expect(
                refused.allSatisfy {
                    ($0["path"] as? String)?.hasSuffix("/***") == true || $0["path"] as? String == "/notify/tomatopay"
                })
            #expect(try await daemon.terminate() == 0)

            // Nothing prints the planted secrets: not the log (at debug), not a command.
            let list = try await OperationsEndToEndTests.run(
                ["quarantine", "list", "--config", config.path, "--json"], in: dir)
            let check = try await OperationsEndToEndTests.run(["check-config", "--config", config.path], in: dir)
            #expect(list.status == 0 && check.status == 0)
            for text in [daemon.logText, list.output, check.output] {
                #expect(!text.contains(Self.plantedPathSecret))
                #expect(!text.contains("second-value-of-the-secret"))
                #expect(!text.contains(Self.plantedMerchantKey))
                #expect(!text.contains("planted-merchant-key"))
            }
            #expect(list.output.split(separator: "\n").count == 4)
        }

        @Test func sourcesOutsideTheAllowlistAreRefusedAndXForwardedForCountsOnlyFromTrustedProxies() async throws {
            let pgAddress = "211.193.35.20"
            func start(trusted: Bool) async throws -> DaemonProcess {
                let dir = try DaemonProcess.makeDirectory("allow")
                _ = try DaemonProcess.writeConfig(
                    in: dir, top: trusted ? "trusted_proxies = [\"127.0.0.1\", \"::1\"]" : "",
                    providers: """
                        [innopay]
                        allow_sources = ["\(pgAddress)"]
                        accept_test_merchants = true
                        """)
                return try await DaemonProcess.start(dir)
            }
            let fixture = try Self.fixture("innopay", "approve-card")

            // No trusted proxy: the header is a forger's word and is ignored; loopback is not allowed.
            let direct = try await start(trusted: false)
            let spoofed = try direct.send(
                Self.bytes(fixture, port: direct.port, headers: ["X-Forwarded-For: \(pgAddress)"]))
            #expect(spoofed.status == 403 && spoofed.bodyText == "rejected: source_not_allowed\n")
            let line = try await #require(direct.notificationLines(count: 1).first)
            #expect(line["peer"] as? String == "127.0.0.1" && line["client"] as? String == "127.0.0.1")
            #expect(try await direct.terminate() == 0)

            // Behind the trusted proxy the rightmost untrusted hop is the client.
            let proxied = try await start(trusted: true)
            let viaProxy = try proxied.send(
                Self.bytes(fixture, port: proxied.port, headers: ["X-Forwarded-For: 198.51.100.66, \(pgAddress)"]))
            #expect(viaProxy.status == 200 && viaProxy.bodyText == "0000")
            let forged = try proxied.send(
                Self.bytes(fixture, port: proxied.port, headers: ["X-Forwarded-For: \(pgAddress), 198.51.100.66"]))
            #expect(forged.status == 403, "what the client wrote on the left is not believed")
            let lines = try await proxied.notificationLines(count: 2)
            #expect(lines.count == 2)
            #expect(lines[0]["peer"] as? String == "127.0.0.1")
            #expect(lines[0]["client"] as? String == pgAddress)
            #expect(lines[1]["client"] as? String == "198.51.100.66")
            #expect(try await proxied.terminate() == 0)

            let ledger = try Ledger(path: proxied.directory.appendingPathComponent("state/pgnoti.sqlite").path)
            let kept = try #require(try await ledger.quarantined(limit: 10).first)
            #expect(kept.reason == "source_not_allowed" && kept.peer == "127.0.0.1" && kept.client == "198.51.100.66")
            #expect(kept.forwardedFor == "\(pgAddress), 198.51.100.66")
        }

        @Test func aMerchantNotAcceptedIsRefused() async throws {
            let dir = try DaemonProcess.makeDirectory("merchants")
            _ = try DaemonProcess.writeConfig(
                in: dir,
                providers: """
                    [tomatopay]
                    allow_sources = ["127.0.0.1"]
                    merchants = ["someone01m"]
                    """)
            let daemon = try await DaemonProcess.start(dir)
            let response = try daemon.send(fixture: try Self.fixture("tomatopay", "approve").request)
            #expect(response.status == 403 && response.bodyText == "rejected: merchant_not_accepted\n")
            #expect(try await daemon.terminate() == 0)
            #expect(try daemon.queueFiles().isEmpty)
        }

        @Test func anUnsignedPGWithoutAuthenticationIsRefusedAtStart() async throws {
            let dir = try DaemonProcess.makeDirectory("noauth")
            let config = try DaemonProcess.writeConfig(in: dir, providers: "[innopay]\n")
            let check = try await OperationsEndToEndTests.run(["check-config", "--config", config.path], in: dir)
            #expect(check.status == 78)
            #expect(check.output.contains("innopay") && check.output.contains("path_secret"))
            let serve = try await OperationsEndToEndTests.run(["serve", "--config", config.path], in: dir)
            #expect(serve.status == 78)

            // Said in so many words, it runs, with a warning at every start.
            _ = try DaemonProcess.writeConfig(in: dir, providers: "[innopay]\nallow_unauthenticated = true\n")
            let daemon = try await DaemonProcess.start(dir)
            let logged1 = try await daemon.waitForLog {
                ($0["msg"] as? String)?.contains("innopay runs unauthenticated") == true
            }
            #expect(!logged1.isEmpty)
            #expect(try await daemon.terminate() == 0)
        }

        /// A fresh install: no PG configured yet. It starts, says why every URL is a 404, and answers so.
        @Test func aConfigWithEveryPGDisabledStartsAndAnswers404() async throws {
            let dir = try DaemonProcess.makeDirectory("nopg")
            _ = try DaemonProcess.writeConfig(in: dir, providers: "")
            let daemon = try await DaemonProcess.start(dir)
            let logged2 = try await daemon.waitForLog { ($0["msg"] as? String)?.contains("no PG is enabled") == true }
            #expect(!logged2.isEmpty)
            let response = try daemon.send(fixture: try Self.fixture("smartro", "approve-card").request)
            #expect(response.status == 404)
            let logged3 = try await daemon.waitForLog { $0["msg"] as? String == "provider not enabled" }
            #expect(!logged3.isEmpty)
            #expect(try await daemon.terminate() == 0)
        }

        @Test func aSignedSmartroApprovalRepostedAsACancelIsRefused() async throws {
            let dir = try DaemonProcess.makeDirectory("flip")
            _ = try DaemonProcess.writeConfig(in: dir)
            let daemon = try await DaemonProcess.start(dir)
            var request = try Self.fixture("smartro", "approve-card").request
            let body = String(decoding: request.body, as: UTF8.self).replacingOccurrences(
                of: "StateCd=0", with: "StateCd=2")
            request.body = Array(body.utf8)
            request.headers = request.headers.map {
                $0.name == "Content-Length" ? ($0.name, "\(request.body.count)") : $0
            }
            let response = try daemon.send(fixture: request)
            #expect(response.status == 403 && response.bodyText == "rejected: state_mismatch\n")
            #expect(try await daemon.terminate() == 0)
            #expect(try daemon.queueFiles().isEmpty)
        }
    }
}
