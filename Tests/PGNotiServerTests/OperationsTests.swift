import Foundation
import Logging
import Testing

@testable import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

struct JSONLogTests {
    @Test func everyLineIsOneJSONObjectWithTimeLevelAndMetadata() throws {
        let sink = LogSink.memory()
        let logger = Daemon.logger(level: .info, sink: sink)
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
}

struct SystemdTests {
    static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    @Test func unitDeclaresNotifyStateDirectoryUserAndHardening() throws {
        let unit = try String(contentsOf: Self.root.appendingPathComponent("systemd/pgnoti.service"), encoding: .utf8)
        for line in [
            "Type=notify", "StateDirectory=pgnoti", "User=pgnoti", "Restart=on-failure", "ProtectSystem=strict",
            "NoNewPrivileges=yes", "PrivateTmp=yes", "LoadCredential=smartro-merchant-keys:",
        ] {
            #expect(unit.contains(line), "\(line)")
        }
    }

    /// `systemd-analyze verify` also checks that ExecStart's binary exists, so the unit is verified
    /// with the path pointing at the binary this build made.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze")))
    func systemdAnalyzeVerifyPasses() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-unit-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "pgnoti")
        let installed = FileManager.default.isExecutableFile(atPath: "/usr/local/bin/pgnoti")
        var unit = try String(contentsOf: Self.root.appendingPathComponent("systemd/pgnoti.service"), encoding: .utf8)
        if !installed {
            try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build pgnoti first")
            unit = unit.replacingOccurrences(of: "/usr/local/bin/pgnoti", with: binary.path)
        }
        let path = dir.appendingPathComponent("pgnoti.service")
        try unit.write(to: path, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-analyze")
        process.arguments = ["verify", path.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(!output.contains("pgnoti.service:"), "\(output)")
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
