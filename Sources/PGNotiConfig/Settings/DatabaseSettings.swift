import Foundation
import PGNotiCore

/// A PostgreSQL `database`: the URL (its password, wherever it came from, never shown), the CA
/// that `verify-full` checks against, and the pool size.
public struct PostgresSettings: Sendable, Equatable {
    public var url: PostgresURL
    /// `database_ca_file`: PEM roots for `verify-full` instead of the system trust store.
    public var caFile: String?
    /// `database_pool_size`: sessions per daemon, the group-commit writer's included.
    public var poolSize = 4
}

extension ConfigLoader {
    public static let databasePasswordCredential = "database-password"

    /// `database` (a SQLite path, or a `postgresql://` URL) and the keys that only a URL takes.
    /// With a URL, `config.database` keeps the URL with its password as `***`, so that every
    /// place that shows the database shows no password.
    func parseDatabase(_ reader: TableReader, _ config: inout Config, _ report: inout SecretReport)
        throws(ConfigError)
    {
        let postgresOnly = ["database_password_file", "database_ca_file", "database_pool_size"]
        guard let database = try reader.string("database"), PostgresURL.isURL(database) else {
            if let database = try reader.string("database") { config.database = database }
            for key in postgresOnly where reader.table[key] != nil {
                throw ConfigError(key, "only a PostgreSQL database (database = \"postgresql://…\") takes it")
            }
            return
        }
        var url: PostgresURL
        do { url = try PostgresURL(parsing: database) } catch {
            throw ConfigError("database", error.description)
        }
        if reader.table["queue"] != nil {
            throw ConfigError(
                "queue",
                "has no meaning with a PostgreSQL database: events are delivered from the database, because no directory is shared between the hosts; remove the key"
            )
        }
        let passwordFile: String?
        if let file = try reader.string("database_password_file") {
            report.files.append(SecretFile(key: "database_password_file", path: file))
            noteIgnoredCredential(
                Self.databasePasswordCredential, because: "database_password_file", file: file, &report)
            passwordFile = file
        } else {
            passwordFile = credentialPath(Self.databasePasswordCredential)
        }
        if let passwordFile {
            guard url.password == nil else {
                throw ConfigError(
                    "database",
                    "the URL carries a password and \(passwordFile) holds one too; keep it in the file only (a URL shows in ps and in logs)"
                )
            }
            let key =
                passwordFile == credentialPath(Self.databasePasswordCredential)
                ? "credential \(Self.databasePasswordCredential)" : "database_password_file"
            url.password = try deferrable(&report, { () throws(ConfigError) in try readSecret(passwordFile, key: key) })
        }
        var settings = PostgresSettings(url: url)
        if let ca = try reader.string("database_ca_file") {
            guard url.sslMode == .verifyFull else {
                throw ConfigError(
                    "database_ca_file",
                    "is read only with sslmode=verify-full; the URL's sslmode is \(url.sslMode.rawValue)")
            }
            report.files.append(SecretFile(key: "database_ca_file", path: ca))
            settings.caFile = ca
        }
        if let size = try reader.int("database_pool_size") {
            guard (2...64).contains(size) else {
                throw ConfigError("database_pool_size", "must be between 2 and 64 (the writer and at least one reader)")
            }
            settings.poolSize = size
        }
        config.postgres = settings
        config.database = url.redacted
    }
}
