import Foundation
import Logging
import NIOCore
import NIOSSL
import PGNotiConfig
import PGNotiStore
import PostgresNIO

/// How pgnoti's sessions are opened: TLS as `sslmode` says, and the settings that make an ACK
/// safe put in the startup packet, so they hold whatever the server's defaults and whatever a
/// pooler in between does.
public struct PostgresSession: Sendable {
    public var url: PostgresURL
    /// `database_ca_file`: the PEM roots `verify-full` checks against instead of the system's.
    public var caFile: String?
    /// How long a transaction may sit idle holding keys before the server ends it: a host cut off
    /// mid-transaction must not hold a key another host needs.
    public var idleInTransactionTimeout: Duration = .seconds(10)
    /// How long a statement waits for a row lock another host holds.
    public var lockTimeout: Duration = .seconds(4)
    public var connectTimeout: Duration = .seconds(5)
    /// `database_pool_size`: the writer's session and the readers'.
    public var poolSize = 4

    public init(url: PostgresURL, caFile: String? = nil, poolSize: Int = 4) {
        self.url = url
        self.caFile = caFile
        self.poolSize = poolSize
    }

    public struct Unsafe: Error, CustomStringConvertible {
        public var description: String
    }

    /// The startup parameters. `synchronous_commit = on`: a COMMIT returns only once the WAL
    /// is flushed (and, with a synchronous standby, replicated), so an ACK after it is safe.
    /// No `statement_timeout`: a COMMIT is never cancelled.
    var startupParameters: [(String, String)] {
        [
            ("synchronous_commit", "on"),
            ("idle_in_transaction_session_timeout", "\(Int(idleInTransactionTimeout.components.seconds * 1000))"),
            ("lock_timeout", "\(Int(lockTimeout.components.seconds * 1000))"),
            ("application_name", "pgnoti"),
            // The server notices a host that vanished mid-transaction (a partition without a
            // reset) in about 25 s, and ends its session, releasing its keys.
            ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "3"),
        ]
    }

    func configuration() throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch url.sslMode {
        case .disable:
            tls = .disable
        case .require:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .none
            tls = .require(try NIOSSLContext(configuration: settings))
        case .verifyFull:
            var settings = TLSConfiguration.makeClientConfiguration()
            settings.certificateVerification = .fullVerification
            if let caFile { settings.trustRoots = .file(caFile) }
            tls = .require(try NIOSSLContext(configuration: settings))
        }
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password?.withValues { $0.first },
            database: url.database, tls: tls)
        configuration.options.additionalStartupParameters = startupParameters
        configuration.options.connectTimeout = .seconds(Int64(connectTimeout.components.seconds))
        if url.sslMode == .verifyFull { configuration.options.tlsServerName = url.host }
        return configuration
    }

    /// Opens a session and checks that the server took `synchronous_commit = on`.
    public func connect(id: Int = 0, logger: Logger) async throws -> PostgresConnection {
        let connection = try await PostgresConnection.connect(configuration: configuration(), id: id, logger: logger)
        let rows = try await connection.query("SHOW synchronous_commit", logger: logger)
        var setting = "?"
        for try await value in rows.decode(String.self) { setting = value }
        guard setting == "on" else {
            try? await connection.close()
            throw Unsafe(
                description:
                    "PostgreSQL session has synchronous_commit = \(setting), not on: an ACK could precede a durable commit"
            )
        }
        return connection
    }
}

extension PostgresSession {
    /// The session a configuration's `database` URL (and its `database_ca_file`) describes.
    public init(settings: PostgresSettings) {
        self.init(url: settings.url, caFile: settings.caFile, poolSize: settings.poolSize)
    }
}

extension PostgresSession {
    /// What `check-config` reports about the database.
    public enum Probe: Sendable, Equatable {
        /// Connected; the schema version, nil before any pgnoti migrated it.
        case reachable(schema: Int?, binaryKnows: Int)
        case unreachable(reason: String)
    }

    /// Connects once, reads the schema version without migrating, and disconnects.
    public func probe(logger: Logger) async -> Probe {
        do {
            return try await withTimeout(connectTimeout + .seconds(2)) {
                let connection = try await connect(logger: logger)
                defer { Task { try? await connection.close() } }
                let tables = try await connection.query(
                    "SELECT to_regclass('pgnoti_schema') IS NOT NULL", logger: logger)
                var exists = false
                for try await value in tables.decode(Bool.self) { exists = value }
                let found = exists ? try await PostgresSchema.version(connection, logger: logger)?.version : nil
                return .reachable(schema: found, binaryKnows: PostgresSchema.current)
            }
        } catch {
            return .unreachable(reason: PostgresFailure.describe(error))
        }
    }
}
