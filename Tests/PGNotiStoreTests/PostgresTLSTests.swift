import Foundation
import Logging
import PGNotiConfig
import PGNotiPostgres
import PGNotiTestSupport
import PostgresNIO
import Testing

/// `sslmode` as the README promises it, against a server with TLS on and a CA of its own:
/// `verify-full` checks the certificate (against `database_ca_file` or the system's roots) and
/// the name; `require` encrypts and checks nothing.
@Suite(
    .enabled(
        if: Engine.postgresURL != nil,
        "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL TLS tests are skipped"))
struct PostgresTLSTests {
    let logger = Logger(label: "t")

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Support/postgres.sh").path
    }

    /// Whether a session opened on `url` is encrypted; throws when it cannot be opened.
    func encrypted(_ url: String, caFile: String?) async throws -> Bool {
        let connection = try await PostgresSession(url: try PostgresURL(parsing: url), caFile: caFile)
            .connect(logger: logger)
        defer { Task { try? await connection.close() } }
        var ssl = false
        for try await value in try await connection.query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger
        ).decode(Bool.self) { ssl = value }
        return ssl
    }

    @Test func verifyFullChecksTheCertificateAndTheNameAndRequireChecksNothing() async throws {
        try await PostgresServer.with(tls: true) { server in
            let ca = try #require(server.caFile)
            let port = try #require(URLComponents(string: server.url)?.port)
            let byName = "postgresql://postgres@localhost:\(port)/pgnoti_test"
            #expect(try await encrypted(byName + "?sslmode=verify-full", caFile: ca), "the CA file's roots")
            await #expect(throws: (any Error).self, "the system's roots do not know the test CA") {
                _ = try await encrypted(byName + "?sslmode=verify-full", caFile: nil)
            }
            await #expect(throws: (any Error).self, "the certificate names localhost, not 127.0.0.1") {
                _ = try await encrypted(
                    "postgresql://postgres@127.0.0.1:\(port)/pgnoti_test?sslmode=verify-full", caFile: ca)
            }
            #expect(try await encrypted(byName + "?sslmode=require", caFile: nil), "encrypted, nothing checked")
            #expect(try await encrypted(byName + "?sslmode=disable", caFile: nil) == false)
        }
    }
}
