import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiRawHTTP
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The real `pgnoti` binary, started as systemd would start it, on a loopback port.
///
/// Every wait here is bounded by a deadline and sleeps the task, never the thread: the
/// cooperative pool has two threads on the CI machines, and a test that blocks one can hang
/// every other test in the process.
public final class DaemonProcess: @unchecked Sendable {
    public let directory: URL
    public let process = Process()
    public let notifySocket: NotifySocket
    private let output: PipeCollector
    public private(set) var port = 0

    /// Every daemon started since the last `stopAll()`, kept alive until then so that a daemon a
    /// test stopped with `stop()` can finish its shutdown instead of being killed by `deinit`.
    private static let started = Mutex<[DaemonProcess]>([])

    public static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    public static var fixtures: URL { packageRoot.appendingPathComponent("fixtures") }

    /// The binary SwiftPM built next to this test bundle (override with PGNOTI_BIN).
    public static var binary: URL {
        if let explicit = ProcessInfo.processInfo.environment["PGNOTI_BIN"] { return URL(fileURLWithPath: explicit) }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("pgnoti")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return packageRoot.appendingPathComponent(".build/debug/pgnoti")
    }

    public static func makeDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-e2e-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The PGs' tables of a test config: every PG enabled, the unsigned ones allowed from
    /// loopback only, the PGs' published test merchants (which the fixtures use) accepted.
    public static func providerTables(directory: URL) -> String {
        """
        [smartro]
        merchant_keys_file = "\(directory.path)/smartro-keys"
        accept_test_merchants = true

        [tomatopay]
        allow_sources = ["127.0.0.0/8", "::1"]

        [innopay]
        allow_sources = ["127.0.0.0/8", "::1"]
        accept_test_merchants = true
        """
    }

    /// Writes a config with state inside `directory`. `top` goes before the tables (top-level
    /// keys, `[limits]`); `providers` replaces the PG tables; `extra` is appended verbatim.
    @discardableResult
    public static func writeConfig(
        in directory: URL, top: String = "", providers: String? = nil, extra: String = "", logLevel: String = "info",
        postgres: String? = nil
    ) throws -> URL {
        // A PostgreSQL database takes no queue: events are delivered from the database.
        let storage =
            postgres.map { "database = \"\($0)\"" } ?? """
                database = "\(directory.path)/state/pgnoti.sqlite"
                queue = "\(directory.path)/state/queue"
                """
        let config = """
            listen = "127.0.0.1:0"
            admin_listen = "127.0.0.1:0"
            \(storage)
            log_level = "\(logLevel)"
            \(top)

            \(providers ?? providerTables(directory: directory))

            \(extra)
            """
        try "# test keys: Smartro's published test merchant only\nSMTPAY001m=\(Config.smartroTestKey)\n"
            .write(to: directory.appendingPathComponent("smartro-keys"), atomically: true, encoding: .utf8)
        let url = directory.appendingPathComponent("pgnoti.toml")
        try config.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Launches the daemon without waiting for it (see `start` for one that is ready).
    public init(directory: URL, arguments: [String]? = nil, environment: [String: String] = [:]) throws {
        self.directory = directory
        notifySocket = try NotifySocket(
            path: directory.appendingPathComponent("notify-\(UUID().uuidString.prefix(6)).sock").path)
        process.executableURL = Self.binary
        process.arguments = arguments ?? ["serve", "--config", directory.appendingPathComponent("pgnoti.toml").path]
        process.currentDirectoryURL = directory
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notifySocket.path
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        output = PipeCollector(pipe)
        try process.run()
        Self.started.withLock { $0.append(self) }
    }

    /// Starts and waits for READY=1; the port comes from the READY status line.
    public static func start(_ directory: URL, arguments: [String]? = nil, environment: [String: String] = [:])
        async throws -> DaemonProcess
    {
        let daemon = try DaemonProcess(directory: directory, arguments: arguments, environment: environment)
        try await daemon.waitUntilReady()
        return daemon
    }

    public func waitUntilReady(timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            while let message = notifySocket.receiveNow() {
                if message.contains("READY=1") {
                    if let range = message.range(of: "listening on port ") {
                        port = Int(message[range.upperBound...].prefix { $0.isNumber }) ?? 0
                    }
                    return
                }
            }
            if !process.isRunning {
                // A READY=1 sent just before it exited is still worth reading.
                if notifySocket.hasPending { continue }
                throw HarnessError("daemon exited with \(process.terminationStatus) before READY=1:\n\(logText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("no READY=1 within \(timeout):\n\(logText)")
    }

    public var logText: String { output.text }
    public var logLines: [String] { logText.split(separator: "\n").map(String.init) }

    /// Log lines as JSON objects (the daemon writes nothing else to stdout).
    public var logObjects: [[String: Any]] {
        logLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The log objects matching `predicate`, once there are at least `count` of them. A line
    /// reaches the pipe a moment after its HTTP response, so reading the log right after a send
    /// races the daemon. Throws (with the log) if there are fewer than `count` at `timeout`.
    public func waitForLog(
        count: Int = 1, timeout: Duration = .seconds(10), _ what: String = "log lines",
        where predicate: ([String: Any]) -> Bool
    ) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let found = logObjects.filter(predicate)
            if found.count >= count { return found }
            guard ContinuousClock.now < deadline else {
                throw HarnessError(
                    "timed out after \(timeout) waiting for \(count) \(what), found \(found.count):\n\(logText)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The log objects whose `msg` is `message`, once there are at least `count` of them.
    public func waitForLog(message: String, count: Int = 1, timeout: Duration = .seconds(10)) async throws
        -> [[String: Any]]
    {
        try await waitForLog(count: count, timeout: timeout, "\"\(message)\" lines") { $0["msg"] as? String == message }
    }

    /// The per-request lines (`"msg": "notification"`), waiting for `count` of them.
    public func notificationLines(count: Int, timeout: Duration = .seconds(10)) async throws -> [[String: Any]] {
        try await waitForLog(message: "notification", count: count, timeout: timeout)
    }

    public func send(_ bytes: [UInt8]) throws -> RawHTTPResponse {
        try RawHTTPClient.exchange(host: "127.0.0.1", port: port, bytes: bytes)
    }

    public func send(fixture request: RawHTTPRequest) throws -> RawHTTPResponse {
        try send(request.serialized(host: "127.0.0.1:\(port)", target: request.target))
    }

    /// SIGTERM, then the exit status once it has exited.
    @discardableResult
    public func terminate(timeout: Duration = .seconds(30)) async throws -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        return try await waitForExit(timeout: timeout)
    }

    /// SIGTERM without waiting: for a `defer`, which cannot await. The end-to-end suites' trait
    /// (`DaemonProcess.stopAll`) waits for the exit before the next test starts.
    public func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    public func killHard() async throws {
        kill(process.processIdentifier, SIGKILL)
        try await waitForExit(timeout: .seconds(30))
    }

    @discardableResult
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else { throw HarnessError("daemon did not exit within \(timeout)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        // The pipe can still hold the last lines when the process is gone; read them all.
        while !output.ended && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        return process.terminationStatus
    }

    /// Stops every daemon started since the last call: SIGTERM, then SIGKILL for one still
    /// running after `timeout`. The end-to-end suites call it after each test.
    public static func stopAll(timeout: Duration = .seconds(30)) async {
        let daemons = started.withLock { list in
            defer { list.removeAll() }
            return list
        }
        for daemon in daemons where daemon.process.isRunning {
            daemon.stop()
            if (try? await daemon.waitForExit(timeout: timeout)) == nil { try? await daemon.killHard() }
        }
    }

    public var queueNew: URL { directory.appendingPathComponent("state/queue/new") }
    public var queueTmp: URL { directory.appendingPathComponent("state/queue/tmp") }

    public func queueFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: queueNew, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Waits until `new/` holds exactly `count` files.
    public func waitForQueue(count: Int, timeout: Duration = .seconds(20)) async throws {
        do {
            try await waitUntil(timeout: timeout, "\(count) files in new/") {
                (try? self.queueFiles().count) == count
            }
        } catch is WaitTimeout {
            throw HarnessError("queue has \((try? queueFiles().count) ?? -1) files, expected \(count)")
        }
    }

    /// Bytes the daemon has read through read(2)-like calls (/proc/PID/io `rchar`).
    public func bytesRead() -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/io", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("rchar:") }
        return line.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    /// The admin listener's port, from its "admin listening" log line.
    public func adminPort() async throws -> Int {
        let line = try await waitForLog(message: "admin listening")[0]
        guard let port = line["port"] as? Int else { throw HarnessError("no port in \(line)") }
        return port
    }

    /// `GET path` on the admin listener: status and body.
    public func admin(_ path: String) async throws -> RawHTTPResponse {
        try RawHTTPClient.exchange(
            host: "127.0.0.1", port: try await adminPort(),
            bytes: Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
    }

    /// Sockets the daemon has open (listeners, accepted connections, its notify socket).
    public func socketCount() -> Int {
        let fdDir = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
        return entries.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\($0)"))?.hasPrefix("socket:") == true
        }.count
    }

    /// The inodes of the sockets the daemon has open. A socket that appears after a snapshot
    /// is one it opened or accepted since, whatever other sockets closed meanwhile (which a
    /// plain count cannot tell).
    public func socketInodes() -> Set<String> {
        let fdDir = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
        return Set(
            entries.compactMap { entry -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(entry)"),
                    target.hasPrefix("socket:[")
                else { return nil }
                return target
            })
    }

    /// The TCP ports the daemon listens on (public and admin listeners), from /proc/net/tcp{,6}:
    /// the listening sockets whose inodes are among the daemon's open files.
    public func listeningPorts() -> Set<Int> {
        let fdDir = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
        let inodes = Set(
            entries.compactMap { entry -> String? in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\(entry)"),
                    target.hasPrefix("socket:[")
                else { return nil }
                return String(target.dropFirst(8).dropLast())
            })
        var ports = Set<Int>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = (try? String(contentsOfFile: table, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n").dropFirst() {
                let columns = line.split(separator: " ", omittingEmptySubsequences: true)
                // sl, local_address, rem_address, st (0A = LISTEN), …, inode at index 9.
                guard columns.count > 9, columns[3] == "0A", inodes.contains(String(columns[9])),
                    let port = columns[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) })
                else { continue }
                ports.insert(port)
            }
        }
        return ports
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A plain TCP connection to the daemon, for tests that control every byte and every pause.
public func connectLoopback(port: Int) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard rc == 0 else {
        close(fd)
        throw HarnessError("connect to 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    }
    return fd
}

public struct HarnessError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The test's end of $NOTIFY_SOCKET: a datagram socket systemd would own. Reads never block:
/// the socket is read with MSG_DONTWAIT between task sleeps.
public final class NotifySocket: @unchecked Sendable {
    public let path: String
    public let fd: Int32

    public init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { throw HarnessError("bind(\(path)) failed: \(String(cString: strerror(errno)))") }
    }

    /// The next datagram if one is waiting, else nil at once.
    public func receiveNow() -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }

    /// Whether a datagram is waiting.
    public var hasPending: Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) >= 0
    }

    /// Every datagram that arrives within `duration`. Only for a test that must let time pass
    /// (counting watchdog pings over a period); to wait for something, use `receive(until:)`.
    public func receiveAll(for duration: Duration) async throws -> [String] {
        var messages: [String] = []
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            while let message = receiveNow() { messages.append(message) }
            try await Task.sleep(for: .milliseconds(20))
        }
        while let message = receiveNow() { messages.append(message) }
        return messages
    }

    /// Datagrams until one satisfies `predicate`, all of them in order. Throws (with what did
    /// arrive) if none does within `timeout`.
    public func receive(until predicate: (String) -> Bool, timeout: Duration = .seconds(20)) async throws -> [String] {
        var messages: [String] = []
        let deadline = ContinuousClock.now + timeout
        while true {
            while let message = receiveNow() {
                messages.append(message)
                if predicate(message) { return messages }
            }
            guard ContinuousClock.now < deadline else {
                throw HarnessError("no matching notify message within \(timeout); got \(messages)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

/// One fixture: the exact request bytes and what the daemon must do with them.
public struct Fixture: CustomStringConvertible, @unchecked Sendable {
    public let name: String
    public let provider: String
    public let request: RawHTTPRequest
    public let expect: [String: Any]

    public var description: String { "\(provider)/\(name)" }
    public var expectedStatus: Int { expect["http_status"] as? Int ?? -1 }
    public var expectedAck: String? { expect["ack"] as? String }
    public var isAccepted: Bool { (expect["outcome"] as? String) == "accepted" }
    public var isConflict: Bool { (expect["outcome"] as? String) == "conflict" }
    /// Accepted and conflicting versions are both committed, ACKed and filed as an event.
    public var filesEvent: Bool { isAccepted || isConflict }
    /// The configuration a fixture is meant for: nil for the test config (test merchants
    /// accepted), "production" for one that refuses them.
    public var profile: String? { expect["profile"] as? String }

    /// The fixtures for the test config, in file-name order per provider.
    public static func all() throws -> [Fixture] {
        try every().filter { $0.profile == nil }
    }

    public static func every() throws -> [Fixture] {
        var fixtures: [Fixture] = []
        let root = DaemonProcess.fixtures
        for provider in ["smartro", "tomatopay", "innopay"] {
            let dir = root.appendingPathComponent(provider)
            let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".http") }
                .sorted()
            for file in files {
                let name = String(file.dropLast(5))
                let bytes = Array(try Data(contentsOf: dir.appendingPathComponent(file)))
                let expectData = try Data(contentsOf: dir.appendingPathComponent(name + ".expect.json"))
                let expect = try JSONSerialization.jsonObject(with: expectData) as! [String: Any]
                fixtures.append(
                    Fixture(name: name, provider: provider, request: try RawHTTPRequest(parsing: bytes), expect: expect)
                )
            }
        }
        return fixtures
    }
}

/// A value behind a lock that closures can share (a `Mutex` itself cannot be captured).
public final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { mutex = Mutex(value) }

    public func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        mutex.withLock { body(&$0) }
    }
}

/// One kept-alive connection that sends requests one after another, as a busy PG or a load
/// generator would; much cheaper per request than a connection each.
public final class KeepAliveConnection {
    public let fd: Int32
    private var pending: [UInt8] = []

    public init(port: Int) throws {
        fd = try connectLoopback(port: port)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends `request` (which must not say `Connection: close`) and returns the status code.
    public func exchange(_ request: [UInt8]) throws -> Int {
        var offset = 0
        while offset < request.count {
            let n = request[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw HarnessError("send failed: \(String(cString: strerror(errno)))") }
            offset += n
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            if let end = pending.firstRange(of: [13, 10, 13, 10] as [UInt8]) {
                let head = String(decoding: pending[..<end.lowerBound], as: UTF8.self)
                let length =
                    head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                    .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                if pending.count >= end.upperBound + length {
                    pending.removeFirst(end.upperBound + length)
                    let status = head.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? -1
                    return status
                }
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw HarnessError("connection closed while waiting for a response") }
            pending += buffer[..<n]
        }
    }
}
