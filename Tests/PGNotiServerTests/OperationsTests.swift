import Foundation
import Logging
import PGNotiCore
import PGNotiIntake
import PGNotiTestSupport
import Testing

@testable import PGNotiLogging
@testable import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

struct JSONLogTests {
    @Test func everyLineIsOneJSONObjectWithTimeLevelAndMetadata() throws {
        let sink = LogSink.memory()
        let logger = Logger.json(level: .info, sink: sink)
        logger.info(
            "notification",
            metadata: ["provider": "smartro", "http_status": "200", "latency_ms": .stringConvertible(1.5)])
        logger.debug("hidden at info")
        logger.warning("second", metadata: ["nested": ["a": "b"]])
        let lines = sink.lines
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(first["msg"] as? String == "notification")
        #expect(first["level"] as? String == "info")
        #expect(first["provider"] as? String == "smartro")
        #expect(first["latency_ms"] as? Double == 1.5)
        #expect((first["time"] as? String)?.hasSuffix("+09:00") == true)
        let second = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as! [String: Any]
        #expect((second["nested"] as? [String: String])?["a"] == "b")
    }

    @Test func linesStayValidJSONWhateverTheFieldsHold() throws {
        let sink = LogSink.memory()
        let logger = Logger.json(level: .info, sink: sink)
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} 김똠순 \u{FFFD}"
        logger.info("m\nsg", metadata: ["detail": .string(nasty), "msg": "shadow", "list": [.string(nasty)]])
        #expect(sink.lines.count == 1)
        let line = try JSONSerialization.jsonObject(with: Data(sink.lines[0].utf8)) as! [String: Any]
        #expect(line["detail"] as? String == nasty)
        #expect(line["msg"] as? String == "m\nsg")
    }

    /// A stdout that stops reading (journald pushing back) must never stall a request: lines are
    /// dropped and counted, and the count is logged once the pressure ends.
    @Test func aStalledStdoutDropsLinesInsteadOfBlocking() async throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let sink = LogSink(fd: fds[1], maxBytes: 64 * 1024)
        let logger = Logger.json(level: .info, sink: sink)
        let line = String(repeating: "x", count: 1000)
        let started = ContinuousClock.now
        // Far more than the pipe (64 KiB) and the buffer can hold.
        for i in 0..<2000 { logger.info("notification", metadata: ["n": .stringConvertible(i), "pad": .string(line)]) }
        #expect(ContinuousClock.now - started < .seconds(5), "logging blocked")
        #expect(sink.droppedLines > 0)

        // The reader comes back: everything buffered arrives, then the drop report.
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { received.append(contentsOf: buffer[..<n]) } else { try await Task.sleep(for: .milliseconds(10)) }
            if String(decoding: received, as: UTF8.self).contains("log lines dropped") { break }
        }
        close(fds[1])
        let lines = String(decoding: received, as: UTF8.self).split(separator: "\n")
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        let report = try #require(lines.last { $0.contains("log lines dropped") })
        let object = try JSONSerialization.jsonObject(with: Data(report.utf8)) as! [String: Any]
        #expect((object["dropped"] as? Int ?? 0) > 0)
    }
}

struct PublicFrontTests {
    @Test func routesNameAProviderAndAnOptionalSecret() {
        #expect(PublicFront.Route(path: "/notify/smartro")?.provider == .smartro)
        #expect(PublicFront.Route(path: "/notify/tomatopay/s3cr3t")?.secret == Array("s3cr3t".utf8))
        #expect(PublicFront.Route(path: "/notify/nicepay") == nil)
        #expect(PublicFront.Route(path: "/notify/innopay/a/b") == nil)
        #expect(PublicFront.Route(path: "/") == nil)
    }

    /// Toss files and Payup results never come in over `/notify`: a URL for them would only be a
    /// way to forge one.
    @Test func sourcesThatPostNothingHaveNoRoute() {
        #expect(PublicFront.Route(path: "/notify/toss") == nil)
        #expect(PublicFront.Route(path: "/notify/payup") == nil)
        #expect(PublicFront.Route(path: "/notify/payup/s3cr3t") == nil)
        for provider in ProviderID.allCases where provider.postsNotifications {
            #expect(PublicFront.Route(path: "/notify/\(provider.rawValue)")?.provider == provider)
        }
    }

    @Test func secretsNeverReachALogPath() {
        #expect(PublicFront.maskedPath("/notify/tomatopay/s3cr3t-value") == "/notify/tomatopay/***")
        #expect(PublicFront.maskedPath("/notify/tomatopay") == "/notify/tomatopay")
        #expect(PublicFront.maskedPath("/notify/x/y/z") == "/notify/x/***")
    }

    /// Only a committed result is an ACK; a wrong path secret is indistinguishable from a path
    /// that does not exist.
    @Test func statusesFollowTheReason() {
        func status(_ reason: Rejection.Reason) -> Int {
            let result = IntakeResult.refused(Rejection(reason, "x"))
            return Int(PublicFront.response(for: result).status.code)
        }
        #expect(status(.pathSecretMismatch) == 404)
        #expect(status(.sourceNotAllowed) == 403)
        #expect(status(.merchantNotAccepted) == 403)
        #expect(status(.stateMismatch) == 403)
        #expect(status(.testMerchant) == 403)
        #expect(status(.bodyTooLarge) == 413)
        #expect(status(.rateLimited) == 429)
        #expect(status(.missingField) == 400)
        #expect(status(.unsupportedMediaType) == 415)
        let oversized = PublicFront.response(for: .refused(Rejection(.bodyTooLarge, "x")))
        #expect(oversized.headers[.connection] == "close")
    }
}

struct SystemdTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static var analyzeAvailable: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") }

    static func systemdAnalyze(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let result = try await runProcess(
            URL(fileURLWithPath: "/usr/bin/systemd-analyze"), arguments, mergeOutput: true)
        return (result.status, result.output)
    }

    /// The shipped unit with ExecStart pointing at the binary this build made: `verify` checks
    /// that the binaries exist, so the unit is checked as it ships, not as it would be installed.
    static func unitWithBuiltBinary(_ name: String) throws -> URL {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "pgnoti")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build pgnoti first")
        let unit = try String(contentsOf: root.appendingPathComponent("systemd/\(name)"), encoding: .utf8)
            .replacingOccurrences(of: "/usr/bin/pgnoti", with: binary.path)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-unit-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name)
        try unit.write(to: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func unitDeclaresNotifyWatchdogReloadAndHardening() throws {
        let unit = try String(contentsOf: Self.root.appendingPathComponent("systemd/pgnoti.service"), encoding: .utf8)
        for line in [
            "Type=notify", "StateDirectory=pgnoti", "User=pgnoti", "Restart=on-failure", "ProtectSystem=strict",
            "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "NoNewPrivileges=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
            "SystemCallArchitectures=native", "MemoryDenyWriteExecute=yes", "CapabilityBoundingSet=\n", "UMask=0027",
            "IPAddressDeny=any", "LoadCredential=smartro-merchant-keys:", "WatchdogSec=", "ExecReload=",
            "LimitNOFILE=65536",
        ] {
            #expect(unit.contains(line), "\(line)")
        }
    }

    @Test func forwarderUnitRunsTheConsumerHardenedWithItsSecretAsACredential() throws {
        let unit = try String(
            contentsOf: Self.root.appendingPathComponent("systemd/pgnoti-forward.service"), encoding: .utf8)
        for line in [
            "Type=notify", "ExecStart=/usr/bin/pgnoti forward --config /etc/pgnoti/pgnoti.toml",
            "LoadCredential=forward-secret:/etc/pgnoti/forward-secret", "StateDirectory=pgnoti", "User=pgnoti",
            "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes",
            "CapabilityBoundingSet=\n", "IPAddressDeny=any",
        ] {
            #expect(unit.contains(line), "\(line)")
        }
    }

    @Test(.enabled(if: SystemdTests.analyzeAvailable)) func systemdAnalyzeVerifyPasses() async throws {
        for name in ["pgnoti.service", "pgnoti-forward.service"] {
            let result = try await Self.systemdAnalyze(["verify", try Self.unitWithBuiltBinary(name).path])
            #expect(result.status == 0, "\(name): \(result.output)")
            #expect(!result.output.contains("\(name):"), "\(result.output)")
        }
    }

    /// `systemd-analyze security` rates the shipped unit 2.0 or better ("OK" or "SAFE").
    @Test(.enabled(if: SystemdTests.analyzeAvailable)) func systemdAnalyzeSecurityRatesTheUnitOK() async throws {
        for name in ["pgnoti.service", "pgnoti-forward.service"] {
            let result = try await Self.systemdAnalyze([
                "security", "--offline=yes", try Self.unitWithBuiltBinary(name).path,
            ])
            let line = try #require(result.output.split(separator: "\n").last { $0.contains("Overall exposure level") })
            let score = line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }
            #expect(score != nil && score! <= 2.0, "\(name): \(line)")
        }
    }
}

struct SystemdNotifierTests {
    @Test func sendsDatagramsToTheNamedSocketAndIsSilentWithoutOne() throws {
        #expect(SystemdNotifier(environment: [:]).notify("READY=1") == false)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "n-\(UUID().uuidString.prefix(6)).sock"
        ).path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer {
            close(fd)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": path]).notify("READY=1\nSTATUS=x"))
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(n > 0)
        #expect(String(decoding: buffer[..<max(n, 0)], as: UTF8.self) == "READY=1\nSTATUS=x")
    }
}

struct SourcesDropInTests {
    /// The drop-in for Toss and Payup, read after the shipped unit as systemd reads a drop-in
    /// (its `[Service]` lines added to the unit's), still verifies, and names what those
    /// sources need.
    @Test(.enabled(if: SystemdTests.analyzeAvailable)) func dropInVerifiesOnTopOfTheUnit() async throws {
        let unit = try SystemdTests.unitWithBuiltBinary("pgnoti.service")
        let dropIn = try String(
            contentsOf: SystemdTests.root.appendingPathComponent("systemd/pgnoti-sources.conf.example"), encoding: .utf8
        )
        for line in [
            "ReadWritePaths=", "IPAddressAllow=", "LoadCredential=toss-mert-key:",
            "LoadCredential=payup-api-cert-key:", "LoadCredential=payup-client-token:",
        ] {
            #expect(dropIn.contains(line), "\(line)")
        }
        let merged = try String(contentsOf: unit, encoding: .utf8) + "\n" + dropIn
        try merged.write(to: unit, atomically: true, encoding: .utf8)
        let result = try await SystemdTests.systemdAnalyze(["verify", unit.path])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("pgnoti.service:"), "\(result.output)")
    }
}
