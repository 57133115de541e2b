import Foundation
import PGNotiCore
import Testing

@testable import PGNotiConfig

/// `database` as a SQLite path or a PostgreSQL URL, and where the password comes from.
@Suite struct DatabaseConfigTests {
    static func load(_ text: String, files: [String: String] = [:], env: [String: String] = [:]) throws -> Config {
        try inMemoryLoader(files: files, env: env).parse(text)
    }

    @Test func aPathIsSQLiteAsBefore() throws {
        let config = try Self.load(#"database = "/srv/pgnoti.sqlite""#)
        #expect(config.database == "/srv/pgnoti.sqlite" && config.postgres == nil)
    }

    @Test func aURLIsPostgreSQLWithItsPartsAndDefaults() throws {
        for scheme in ["postgresql", "postgres"] {
            let config = try Self.load(#"database = "\#(scheme)://pgnoti@db.internal:6432/ledger""#)
            let url = try #require(config.postgres?.url)
            #expect(url.user == "pgnoti" && url.host == "db.internal" && url.port == 6432 && url.database == "ledger")
            #expect(url.sslMode == .verifyFull, "a host off loopback is checked by default")
            #expect(config.postgres?.poolSize == 4)
        }
        let local = try #require(try Self.load(#"database = "postgresql://pgnoti@127.0.0.1/ledger""#).postgres)
        #expect(local.url.sslMode == .disable && local.url.port == 5432)
        let asked = try #require(
            try Self.load(#"database = "postgresql://pgnoti@127.0.0.1/ledger?sslmode=require""#).postgres)
        #expect(asked.url.sslMode == .require)
    }

    @Test func theForwardLeaseDefaultsTo15SecondsAndMustOutlastOneAttemptAndAHalf() throws {
        let url = #"database = "postgresql://pgnoti@127.0.0.1/ledger""#
        #expect(try Self.load(url).forward.leaseSeconds == 15)
        #expect(try Self.load(url + "\n[forward]\nlease_seconds = 30\ntimeout_seconds = 20").forward.leaseSeconds == 30)
        #expect {
            try Self.load(url + "\n[forward]\ntimeout_seconds = 20")
        } throws: { error in
            let error = error as? ConfigError
            return error?.key == "forward.lease_seconds" && "\(error!)".contains("1.5 × forward.timeout_seconds")
        }
        // One host has no lease: a long timeout stays allowed with SQLite.
        #expect(
            try Self.load(#"database = "/srv/pgnoti.sqlite""# + "\n[forward]\ntimeout_seconds = 60").forward
                .timeoutSeconds == 60)
    }

    @Test func thePasswordIsNeverShown() throws {
        let config = try Self.load(#"database = "postgresql://pgnoti:s3cr3t-pw@db.internal/ledger""#)
        #expect(config.database == "postgresql://pgnoti:***@db.internal:5432/ledger")
        #expect(!"\(config.postgres!)".contains("s3cr3t-pw"))
        #expect(!"\(config.postgres!.url)".contains("s3cr3t-pw"))
        #expect(config.postgres?.url.password?.matches("s3cr3t-pw") == true)
    }

    @Test func thePasswordComesFromItsFileOrTheCredential() throws {
        let fromFile = try Self.load(
            """
            database = "postgresql://pgnoti@db.internal/ledger"
            database_password_file = "/etc/pgnoti/db-password"
            """, files: ["/etc/pgnoti/db-password": "from-file\n"])
        #expect(fromFile.postgres?.url.password?.matches("from-file") == true)
        #expect(
            fromFile.secretFiles.contains(SecretFile(key: "database_password_file", path: "/etc/pgnoti/db-password")))

        let fromCredential = try Self.load(
            #"database = "postgresql://pgnoti@db.internal/ledger""#,
            files: ["/run/creds/database-password": "from-credential"], env: ["CREDENTIALS_DIRECTORY": "/run/creds"])
        #expect(fromCredential.postgres?.url.password?.matches("from-credential") == true)
    }

    @Test func aPasswordGivenTwiceIsRefused() {
        #expect(throws: ConfigError.self) {
            try Self.load(
                """
                database = "postgresql://pgnoti:inline@db.internal/ledger"
                database_password_file = "/p"
                """, files: ["/p": "other"])
        }
    }

    @Test func aQueueWithAPostgreSQLDatabaseIsRefusedSayingWhy() {
        do {
            _ = try Self.load(
                """
                database = "postgresql://pgnoti@db.internal/ledger"
                queue = "/var/lib/pgnoti/queue"
                """)
            Issue.record("accepted a queue")
        } catch let error as ConfigError {
            #expect(error.key == "queue" && error.description.contains("delivered from the database"))
        } catch { Issue.record("\(error)") }
    }

    @Test func badURLsAndKeysThatNeedAURLAreRefusedByName() {
        for (text, key) in [
            (#"database = "postgresql://db.internal/ledger""#, "database"),
            (#"database = "postgresql://pgnoti@db.internal/""#, "database"),
            (#"database = "postgresql://pgnoti@db.internal/ledger?sslmode=prefer""#, "database"),
            ("database = \"/srv/p.sqlite\"\ndatabase_pool_size = 8", "database_pool_size"),
            ("database = \"postgresql://u@db/l\"\ndatabase_pool_size = 1", "database_pool_size"),
            ("database = \"postgresql://u@127.0.0.1/l\"\ndatabase_ca_file = \"/ca.pem\"", "database_ca_file"),
        ] {
            do {
                _ = try Self.load(text)
                Issue.record("accepted: \(text)")
            } catch let error as ConfigError {
                #expect(error.key == key, "\(text): \(error)")
            } catch { Issue.record("\(error)") }
        }
    }
}
