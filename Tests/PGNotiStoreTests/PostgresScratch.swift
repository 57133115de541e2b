import Foundation
import Logging
import PGNotiConfig
import PGNotiPostgres
@_spi(Testing) import PGNotiStore
import PostgresNIO
import Testing

/// Databases made for one test on the server `PGNOTI_TEST_DATABASE_URL` names, dropped after.
enum PostgresScratch {
    static let logger = Logger(label: "pgnoti.tests.postgres")

    static func withDatabase<R>(_ body: (PostgresSession) async throws -> R) async throws -> R {
        let base = try PostgresURL(parsing: try #require(Engine.postgresURL))
        let name = "pgnoti_t_" + UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: "")
        try await admin(base, "CREATE DATABASE \(name)")
        var url = base
        url.database = name
        do {
            let result = try await body(PostgresSession(url: url))
            try await admin(base, "DROP DATABASE \(name) WITH (FORCE)")
            return result
        } catch {
            try? await admin(base, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Runs one statement on the server's own database (DDL cannot take binds).
    static func admin(_ url: PostgresURL, _ sql: String) async throws {
        let connection = try await PostgresSession(url: url).connect(logger: logger)
        defer { Task { try? await connection.close() } }
        try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}
