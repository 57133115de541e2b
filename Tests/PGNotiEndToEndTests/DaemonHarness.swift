import Foundation
import PGNotiConfig
import PGNotiCore
import PGNotiRawHTTP
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The real `pgnoti` binary, started as systemd would start it, on a loopback port.
final class DaemonProcess: @unchecked Sendable {
    let directory: URL
    let process = Process()
    let notifySocket: NotifySocket
    private let output = Shared(Data())
    private let outputEnded = Shared(false)
    private(set) var port = 0

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    static var fixtures: URL { packageRoot.appendingPathComponent("fixtures") }

    /// The binary SwiftPM built next to this test bundle (override with PGNOTI_BIN).
    static var binary: URL {
        if let explicit = ProcessInfo.processInfo.environment["PGNOTI_BIN"] { return URL(fileURLWithPath: explicit) }
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("pgnoti")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) { return besideTests }
        return packageRoot.appendingPathComponent(".build/debug/pgnoti")
    }

    static func makeDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-e2e-\(name)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The PGs' tables of a test config: every PG enabled, the unsigned ones allowed from
    /// loopback only, the PGs' published test merchants (which the fixtures use) accepted.
    static func providerTables(directory: URL) -> String {
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
    static func writeConfig(
        in directory: URL, top: String = "", providers: String? = nil, extra: String = "", logLevel: String = "info"
    ) throws -> URL {
        let config = """
            listen = "127.0.0.1:0"
            admin_listen = "127.0.0.1:0"
            database = "\(directory.path)/state/pgnoti.sqlite"
            queue = "\(directory.path)/state/queue"
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

    init(directory: URL, arguments: [String]? = nil, environment: [String: String] = [:]) throws {
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
        let lines = output
        let ended = outputEnded
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                ended.withLock { $0 = true }
                return
            }
            lines.withLock { $0.append(data) }
        }
        try process.run()
    }

    /// Starts and waits for READY=1; the port comes from the READY status line.
    static func start(_ directory: URL, arguments: [String]? = nil, environment: [String: String] = [:]) throws
        -> DaemonProcess
    {
        let daemon = try DaemonProcess(directory: directory, arguments: arguments, environment: environment)
        try daemon.waitUntilReady()
        return daemon
    }

    func waitUntilReady(timeout: TimeInterval = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message = notifySocket.receive(timeoutMilliseconds: 200) {
                if message.contains("READY=1") {
                    if let range = message.range(of: "listening on port ") {
                        port = Int(message[range.upperBound...].prefix { $0.isNumber }) ?? 0
                    }
                    return
                }
            }
            if !process.isRunning {
                throw HarnessError("daemon exited with \(process.terminationStatus) before READY=1:\n\(logText)")
            }
        }
        throw HarnessError("no READY=1 within \(timeout)s:\n\(logText)")
    }

    var logText: String { output.withLock { String(decoding: $0, as: UTF8.self) } }
    var logLines: [String] { logText.split(separator: "\n").map(String.init) }

    /// Log lines as JSON objects (the daemon writes nothing else to stdout).
    var logObjects: [[String: Any]] {
        logLines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// The log objects matching `predicate`, once there are at least `count` of them or
    /// `timeout` has passed. A line reaches the pipe a moment after its HTTP response,
    /// so reading the log right after a send races the daemon.
    func waitForLog(
        count: Int = 1, timeout: TimeInterval = 10, where predicate: ([String: Any]) -> Bool
    ) -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let found = logObjects.filter(predicate)
            if found.count >= count || Date() >= deadline { return found }
            usleep(20_000)
        }
    }

    /// The per-request lines (`"msg": "notification"`), waiting for `count` of them.
    func notificationLines(count: Int) -> [[String: Any]] {
        waitForLog(count: count) { $0["msg"] as? String == "notification" }
    }

    func send(_ bytes: [UInt8]) throws -> RawHTTPResponse {
        try RawHTTPClient.exchange(host: "127.0.0.1", port: port, bytes: bytes)
    }

    func send(fixture request: RawHTTPRequest) throws -> RawHTTPResponse {
        try send(request.serialized(host: "127.0.0.1:\(port)", target: request.target))
    }

    @discardableResult
    func terminate(timeout: TimeInterval = 30) throws -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        return try waitForExit(timeout: timeout)
    }

    func killHard() throws {
        kill(process.processIdentifier, SIGKILL)
        _ = try waitForExit(timeout: 30)
    }

    func waitForExit(timeout: TimeInterval) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        guard !process.isRunning else { throw HarnessError("daemon did not exit within \(timeout)s") }
        // The pipe can still hold the last lines when the process is gone; read them all.
        while !outputEnded.withLock({ $0 }) && Date() < deadline { usleep(10_000) }
        return process.terminationStatus
    }

    var queueNew: URL { directory.appendingPathComponent("state/queue/new") }
    var queueTmp: URL { directory.appendingPathComponent("state/queue/tmp") }

    func queueFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: queueNew, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Bytes the daemon has read through read(2)-like calls (/proc/PID/io `rchar`).
    func bytesRead() -> Int {
        let text = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/io", encoding: .utf8)) ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("rchar:") }
        return line.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces)) } ?? 0
    }

    /// The admin listener's port, from its "admin listening" log line.
    func adminPort() throws -> Int {
        let line = try #require(waitForLog { $0["msg"] as? String == "admin listening" }.first)
        return try #require(line["port"] as? Int)
    }

    /// `GET path` on the admin listener: status and body.
    func admin(_ path: String) throws -> RawHTTPResponse {
        try RawHTTPClient.exchange(
            host: "127.0.0.1", port: try adminPort(),
            bytes: Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
    }

    /// Sockets the daemon has open (listeners, accepted connections, its notify socket).
    func socketCount() -> Int {
        let fdDir = "/proc/\(process.processIdentifier)/fd"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []
        return entries.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDir)/\($0)"))?.hasPrefix("socket:") == true
        }.count
    }

    /// The inodes of the sockets the daemon has open. A socket that appears after a snapshot
    /// is one it opened or accepted since, whatever other sockets closed meanwhile (which a
    /// plain count cannot tell).
    func socketInodes() -> Set<String> {
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
    func listeningPorts() -> Set<Int> {
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
func connectLoopback(port: Int) throws -> Int32 {
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

/// Polls `condition` until it holds, failing with `what` after `timeout`.
func waitFor(_ what: String, timeout: TimeInterval = 20, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while try !condition() {
        guard Date() < deadline else { throw HarnessError("timed out waiting for \(what)") }
        usleep(10_000)
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The test's end of $NOTIFY_SOCKET: a datagram socket systemd would own.
final class NotifySocket: @unchecked Sendable {
    let path: String
    let fd: Int32

    init(path: String) throws {
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

    func receive(timeoutMilliseconds: Int32) -> String? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, timeoutMilliseconds) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }

    /// Every datagram that arrives within `duration`.
    func receiveAll(for duration: TimeInterval) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(duration)
        while Date() < deadline {
            if let message = receive(timeoutMilliseconds: 50) { messages.append(message) }
        }
        return messages
    }

    /// Datagrams until one satisfies `predicate` or `timeout` passes; all of them, in order.
    func receive(until predicate: (String) -> Bool, timeout: TimeInterval = 20) -> [String] {
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let message = receive(timeoutMilliseconds: 100) {
                messages.append(message)
                if predicate(message) { break }
            }
        }
        return messages
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

/// One fixture: the exact request bytes and what the daemon must do with them.
struct Fixture: CustomStringConvertible {
    let name: String
    let provider: String
    let request: RawHTTPRequest
    let expect: [String: Any]

    var description: String { "\(provider)/\(name)" }
    var expectedStatus: Int { expect["http_status"] as? Int ?? -1 }
    var expectedAck: String? { expect["ack"] as? String }
    var isAccepted: Bool { (expect["outcome"] as? String) == "accepted" }
    var isConflict: Bool { (expect["outcome"] as? String) == "conflict" }
    /// Accepted and conflicting versions are both committed, ACKed and filed as an event.
    var filesEvent: Bool { isAccepted || isConflict }
    /// The configuration a fixture is meant for: nil for the test config (test merchants
    /// accepted), "production" for one that refuses them.
    var profile: String? { expect["profile"] as? String }

    /// The fixtures for the test config, in file-name order per provider.
    static func all() throws -> [Fixture] {
        try every().filter { $0.profile == nil }
    }

    static func every() throws -> [Fixture] {
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
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<R: Sendable>(_ body: (inout Value) -> R) -> R {
        mutex.withLock { body(&$0) }
    }
}

/// One kept-alive connection that sends requests one after another, as a busy PG or a load
/// generator would; much cheaper per request than a connection each.
final class KeepAliveConnection {
    let fd: Int32
    private var pending: [UInt8] = []

    init(port: Int) throws {
        fd = try connectLoopback(port: port)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends `request` (which must not say `Connection: close`) and returns the status code.
    func exchange(_ request: [UInt8]) throws -> Int {
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

/// Every end-to-end suite is nested here, so they run one after another: each starts real
/// daemons, several of them load both cores, and timing assertions (read deadlines, shutdown)
/// must not compete with another suite's flood.
@Suite(.serialized) enum EndToEnd {}
