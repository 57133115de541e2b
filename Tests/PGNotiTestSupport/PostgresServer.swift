import Foundation

/// A PostgreSQL server of a test's own, from `Tests/Support/postgres.sh`: one to stop and start
/// under a daemon, or one with TLS and a CA of its own. Loopback, trust authentication.
public struct PostgresServer: Sendable {
    public let url: String
    public let dataDirectory: String
    /// The CA that signed the server's certificate (`start-tls` only).
    public let caFile: String?

    static var script: String {
        DaemonProcess.packageRoot.appendingPathComponent("Tests/Support/postgres.sh").path
    }

    /// Starts one and runs `body` with it; stops and removes it however `body` ends.
    public static func with<R>(tls: Bool = false, _ body: (PostgresServer) async throws -> R) async throws -> R {
        let server = try await start(tls: tls)
        let outcome: Result<R, any Error>
        do { outcome = .success(try await body(server)) } catch { outcome = .failure(error) }
        _ = try? await runProcess(URL(fileURLWithPath: "/bin/bash"), [script, "stop", server.dataDirectory])
        return try outcome.get()
    }

    /// Reads the `export NAME=value` lines `postgres.sh start` prints.
    static func start(tls: Bool) async throws -> PostgresServer {
        let started = try await runProcess(URL(fileURLWithPath: "/bin/bash"), [script, tls ? "start-tls" : "start"])
        guard started.status == 0 else { throw HarnessError("postgres.sh start: \(started.stderr)") }
        var values: [String: String] = [:]
        for line in started.stdout.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { values[String(pair[0])] = String(pair[1]) }
        }
        guard let url = values["PGNOTI_TEST_DATABASE_URL"], let data = values["PGNOTI_TEST_PGDATA"] else {
            throw HarnessError("postgres.sh start printed no URL: \(started.stdout)")
        }
        return PostgresServer(url: url, dataDirectory: data, caFile: values["PGNOTI_TEST_CA_FILE"])
    }

    /// Stops the server, keeping its data (a database that went down).
    public func stopServer() async throws { try await run("stop-server") }

    /// Starts it again on the same port and data.
    public func startServer() async throws { try await run("start-server") }

    private func run(_ command: String) async throws {
        let run = try await runProcess(URL(fileURLWithPath: "/bin/bash"), [Self.script, command, dataDirectory])
        guard run.status == 0 else { throw HarnessError("postgres.sh \(command): \(run.stderr)") }
    }
}
