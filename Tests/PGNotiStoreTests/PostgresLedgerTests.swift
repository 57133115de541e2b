import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiPostgres
@_spi(Testing) import PGNotiStore
import PostgresNIO
import Testing

/// What only a shared PostgreSQL ledger has to show: two hosts on one database.
@Suite(
    .enabled(
        if: Engine.postgresURL != nil,
        "PGNOTI_TEST_DATABASE_URL is not set: the PostgreSQL ledger's own tests are skipped"))
struct PostgresLedgerTests {
    let logger = Logger(label: "t")

    @Test func twoHostsRacingTheSameKeysAcceptEachOnce() async throws {
        try await PostgresScratch.withDatabase { session in
            let hostA = try await PostgresLedger.open(session, logger: logger)
            let hostB = try await PostgresLedger.open(session, logger: logger)
            // Each key posted to both hosts (a PG retry through the load balancer), all at once.
            let outcomes = try await withThrowingTaskGroup(of: (String, RecordOutcome).self) { group in
                for key in 0..<60 {
                    let entry = makeEntry(tid: "T\(key)")
                    group.addTask { ("T\(key)", try await hostA.record(entry)) }
                    group.addTask { ("T\(key)", try await hostB.record(entry)) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (tid, results) in Dictionary(grouping: outcomes, by: \.0) {
                #expect(results.filter { $0.1.acceptedID != nil }.count == 1, "\(tid)")
                #expect(results.filter { if case .duplicate = $0.1 { true } else { false } }.count == 1, "\(tid)")
            }
            let counts = try await hostA.counts()
            #expect(counts.notifications == 60 && counts.outbox == 60)
            try await hostA.close()
            try await hostB.close()
        }
    }

    @Test func twoHostsFilingConflictsForOneKeyKeepTheCap() async throws {
        try await PostgresScratch.withDatabase { session in
            let hostA = try await PostgresLedger.open(session, logger: logger)
            let hostB = try await PostgresLedger.open(session, logger: logger)
            _ = try await hostA.record(makeEntry(tid: "T1", amount: 1))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for amount in 2..<40 {
                    let host = amount.isMultiple(of: 2) ? hostA : hostB
                    group.addTask { _ = try await host.record(makeEntry(tid: "T1", amount: amount)) }
                }
                try await group.waitForAll()
            }
            #expect(try await hostA.counts().conflicts == LedgerRules.maximumConflictsPerKey)
            try await hostA.close()
            try await hostB.close()
        }
    }

    @Test func twoDaemonsStartingAtOnceMigrateOnce() async throws {
        try await PostgresScratch.withDatabase { session in
            async let a = PostgresLedger.open(session, logger: logger)
            async let b = PostgresLedger.open(session, logger: logger)
            let (hostA, hostB) = try await (a, b)
            let connection = try await session.connect(logger: logger)
            // One row per migration: none ran twice.
            let rows = try await connection.query(
                "SELECT count(*)::int, count(DISTINCT version)::int FROM pgnoti_schema", logger: logger)
            for try await (n, distinct) in rows.decode((Int, Int).self) {
                #expect(n == PostgresLedger.schemaVersion && distinct == n)
            }
            try await connection.close()
            try await hostA.close()
            try await hostB.close()
        }
    }

    @Test func aSchemaThatNeedsANewerBinaryIsRefusedNamingBothVersions() async throws {
        try await PostgresScratch.withDatabase { session in
            try await PostgresLedger.open(session, logger: logger).close()
            let connection = try await session.connect(logger: logger)
            try await connection.query(
                "INSERT INTO pgnoti_schema (version, oldest_usable_by, migrated_at) VALUES (7, 5, now())",
                logger: logger)
            try await connection.close()
            do {
                try await PostgresLedger.open(session, logger: logger).close()
                Issue.record("opened a schema that needs a newer binary")
            } catch {
                let message = "\(error)"
                #expect(
                    message.contains("schema 7") && message.contains("schema 5")
                        && message.contains("knows \(PostgresLedger.schemaVersion)"))
            }
        }
    }

    @Test func sessionsCommitSynchronouslyWhateverTheServersDefault() async throws {
        try await PostgresScratch.withDatabase { session in
            let admin = try await session.connect(logger: logger)
            try await admin.query(
                PostgresQuery(unsafeSQL: "ALTER DATABASE \(session.url.database) SET synchronous_commit = off"),
                logger: logger)
            try await admin.close()
            let connection = try await session.connect(logger: logger)
            let rows = try await connection.query("SHOW synchronous_commit", logger: logger)
            for try await value in rows.decode(String.self) { #expect(value == "on") }
            let timeouts = try await connection.query(
                "SELECT current_setting('idle_in_transaction_session_timeout'), current_setting('lock_timeout'), current_setting('statement_timeout')",
                logger: logger)
            for try await (idle, lock, statement) in timeouts.decode((String, String, String).self) {
                #expect(idle == "10s" && lock == "4s")
                #expect(statement == "0", "no statement_timeout: a COMMIT is never cancelled")
            }
            try await connection.close()
        }
    }
}
