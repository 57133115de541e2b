import Foundation
import PGNotiCore
import PGNotiTestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A test server written in Python (`Tests/Support/*.py`): started on a free port (or the one
/// given), which it prints as `listening PORT` once it accepts connections.
final class PythonServer: @unchecked Sendable {
    let process = Process()
    let port: Int

    init(script: String, arguments: [String]) async throws {
        let path = DaemonProcess.packageRoot.appendingPathComponent("Tests/Support/\(script)")
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", path.path] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.standardError
        let said = PipeCollector(stdout)
        try process.run()
        // "listening PORT", or EOF if python or a package is missing.
        let text: String
        do {
            text = try await waitForValue(timeout: .seconds(30), "\(script) to say it is listening") {
                let text = said.text
                return text.contains("\n") || said.ended ? text : nil
            }
        } catch {
            kill(process.processIdentifier, SIGKILL)
            throw error
        }
        guard text.hasPrefix("listening "), let bound = Int(text.dropFirst(10).prefix { $0.isNumber }) else {
            kill(process.processIdentifier, SIGKILL)
            throw HarnessError("\(script) did not start (python3 is needed; see .ci/run for its packages): \(text)")
        }
        port = bound
    }

    /// Kills the server and waits until it is gone (its port free again).
    func stop() async throws {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        try await waitUntil(timeout: .seconds(10), "the test server to exit") { !self.process.isRunning }
    }

    deinit { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

    /// The JSON lines a server appended to `log`.
    static func records(_ log: URL) -> [[String: Any]] {
        guard let data = try? Data(contentsOf: log) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }
}

/// A merchant app's webhook endpoint: `Tests/Support/webhook_receiver.py`, which verifies every
/// request with the reference `standardwebhooks` package from PyPI.
final class WebhookReceiver: @unchecked Sendable {
    /// A made-up secret for these tests only.
    static let secret = "whsec_cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk"

    let server: PythonServer
    let log: URL
    var port: Int { server.port }

    /// Starts the receiver (on `port`, or a free one) and waits until it accepts connections.
    init(in directory: URL, port: Int = 0, _ behaviour: [String] = []) async throws {
        let secretFile = directory.appendingPathComponent("receiver-secret")
        try (Self.secret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        log = directory.appendingPathComponent("receiver.log")
        server = try await PythonServer(
            script: "webhook_receiver.py",
            arguments: ["--port", String(port), "--secret-file", secretFile.path, "--log", log.path] + behaviour)
    }

    var url: String { "http://127.0.0.1:\(port)/webhooks/pgnoti" }

    /// Every request it saw, in order.
    func records() -> [[String: Any]] { PythonServer.records(log) }

    /// Requests it answered 2xx, by webhook-id.
    func acceptedIDs() -> [String] {
        records().filter { ($0["status"] as? Int).map { (200..<300).contains($0) } == true }.compactMap {
            $0["id"] as? String
        }
    }

    func stop() async throws { try await server.stop() }
}

/// Consumer helpers shared by the forwarder tests.
enum Consumer {
    /// A config whose `[forward]` table points at `url`, with fast retries for tests.
    static func writeConfig(
        in directory: URL, url: String, extraForward: String = "", retryInitial: Double = 0.2, timeout: Double = 2
    ) throws -> URL {
        let secretFile = directory.appendingPathComponent("forward-secret")
        try (WebhookReceiver.secret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
        return try DaemonProcess.writeConfig(
            in: directory,
            extra: """
                [forward]
                url = "\(url)"
                secret_file = "\(secretFile.path)"
                retry_initial_seconds = \(retryInitial)
                timeout_seconds = \(timeout)
                \(extraForward)
                """)
    }

    static func start(_ directory: URL, _ arguments: [String] = ["forward"]) async throws -> DaemonProcess {
        let config = directory.appendingPathComponent("pgnoti.toml").path
        return try await DaemonProcess.start(directory, arguments: arguments + ["--config", config])
    }

    static func queue(_ directory: URL) -> URL { directory.appendingPathComponent("state/queue") }

    static func files(_ directory: URL, _ sub: String) -> [String] {
        let path = queue(directory).appendingPathComponent(sub).path
        return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0.hasSuffix(".json") }
            .sorted()
    }

    /// Files an event into `new/` as the relay does (write elsewhere, rename in), named so that
    /// `sequence` gives the filing order.
    @discardableResult
    static func file(_ event: Event, sequence: Int, in directory: URL) throws -> String {
        let new = queue(directory).appendingPathComponent("new")
        try FileManager.default.createDirectory(at: new, withIntermediateDirectories: true)
        let name = String(format: "%017d", 1_700_000_000_000_000 + sequence) + "-" + event.id + ".json"
        let temporary = queue(directory).appendingPathComponent(".test-\(name)")
        try Data(event.jsonBytes()).write(to: temporary)
        guard rename(temporary.path, new.appendingPathComponent(name).path) == 0 else {
            throw HarnessError("rename into new/ failed")
        }
        return name
    }

    /// A payment event for `order` (approval, or its cancel).
    static func event(order: String, tid: String, kind: EventKind = .paymentApproved, state: String = "0") -> Event {
        Event(
            notification: PaymentNotification(
                provider: .smartro, merchantID: "SMTPAY001m", tid: tid, state: state, kind: kind, orderID: order,
                amount: 1000, goodsName: "똠방각하 \"특가\""),
            receivedAt: Date())
    }
}
