import Foundation
import PGNotiCore

/// `postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?sslmode=disable|require|verify-full]`
/// (`postgres://` too), read without touching the network. Pure.
///
/// The password never appears in `description` or `redacted`: where the URL is shown, it is
/// `***`.
public struct PostgresURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, Equatable {
        case disable
        /// Encrypts, but checks neither the certificate nor the name.
        case require
        /// Checks the certificate against the trust store (or `database_ca_file`) and the name.
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: SecretValues?
    public var host: String
    public var port: Int
    public var database: String
    /// What the URL asked for; nil when it did not say.
    public var requestedSSLMode: SSLMode?

    /// Without `sslmode`: `verify-full` for a host that is not loopback, `disable` for loopback
    /// (where there is no network to protect).
    public var sslMode: SSLMode {
        requestedSSLMode ?? (isLoopback ? .disable : .verifyFull)
    }

    public var isLoopback: Bool {
        let h = host.lowercased()
        return h == "localhost" || h == "::1" || h == "[::1]" || h.hasPrefix("127.")
    }

    /// The URL as it may be shown: the password, if any, as `***`.
    public var redacted: String {
        let credentials = user.isEmpty ? "" : user + (password == nil ? "" : ":***") + "@"
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let query = requestedSSLMode.map { "?sslmode=\($0.rawValue)" } ?? ""
        return "postgresql://\(credentials)\(hostPart):\(port)/\(database)\(query)"
    }

    public var description: String { redacted }

    /// Whether `text` is meant as a PostgreSQL URL rather than a SQLite path.
    public static func isURL(_ text: String) -> Bool {
        text.hasPrefix("postgresql://") || text.hasPrefix("postgres://")
    }

    public struct ParseError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Reads the URL. Errors say what is wrong without repeating the URL (it may hold a password).
    public init(parsing text: String) throws(ParseError) {
        guard Self.isURL(text) else {
            throw ParseError(description: "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME")
        }
        guard let components = URLComponents(string: text), let host = components.host, !host.isEmpty else {
            throw ParseError(description: "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME: no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw ParseError(description: "expected postgresql://USER@HOST/DBNAME: no user")
        }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else {
            throw ParseError(description: "expected postgresql://USER@HOST/DBNAME: no database name")
        }
        var mode: SSLMode?
        for item in components.queryItems ?? [] {
            guard item.name == "sslmode" else {
                throw ParseError(description: "unknown parameter \"\(item.name)\" (only sslmode is read)")
            }
            guard let value = item.value, let parsed = SSLMode(rawValue: value) else {
                throw ParseError(description: "sslmode must be disable, require or verify-full")
            }
            mode = parsed
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw ParseError(description: "port must be between 1 and 65535")
        }
        self.user = user.removingPercentEncoding ?? user
        self.password = components.password.map { SecretValues([$0.removingPercentEncoding ?? $0]) }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port ?? 5432
        self.database = database.removingPercentEncoding ?? database
        self.requestedSSLMode = mode
    }
}
