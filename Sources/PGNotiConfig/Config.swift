import Foundation
import Logging
import PGNotiCore

/// A configuration problem, always naming the key so `check-config` can point at the line.
/// The problem text never quotes a secret.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public let key: String
    public let problem: String
    public init(_ key: String, _ problem: String) {
        self.key = key
        self.problem = problem
    }
    public var description: String { "\(key): \(problem)" }
}

public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:80`.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct Config: Sendable {
    public var listen = ListenAddress(host: "127.0.0.1", port: 8080)
    /// nil turns the admin listener off.
    public var adminListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9759)
    /// The SQLite file; with a PostgreSQL database, its URL with the password as `***`.
    public var database = "/var/lib/pgnoti/pgnoti.sqlite"
    /// Set when `database` is a `postgresql://` URL: the ledger and the delivery queue are shared
    /// by every host, and there is no queue directory.
    public var postgres: PostgresSettings?
    public var queue = "/var/lib/pgnoti/queue"
    public var logLevel = Logger.Level.info
    public var maxBodyBytes = 64 * 1024
    public var rejectedKeep = 10_000
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    public var trustedProxies: [CIDR] = []
    public var limits = Limits()
    /// `/readyz` fails while the database's or the queue's file system has less free space.
    public var minFreeBytes = 64 * 1024 * 1024
    /// Raw bodies and personal fields older than this are purged daily; nil (the default) keeps
    /// everything. How long payment records must be kept is the merchant's legal decision.
    public var retentionSeconds: Double?
    /// Each notify PG's table, by PG (reached through `config.smartro` and the like, which each
    /// settings file declares).
    var notifyPGs: [ProviderID: any NotifyPGSettings] = [:]
    public var toss = TossSettings()
    public var payup = PayupSettings()
    public var forward = ForwardConfig()
    /// True only for the embedded defaults: test keys, state under ./var.
    public var sandbox = false
    /// Things the loader decided that an operator should hear once (a credential ignored
    /// because a `*_file` key names the secret); logged at start and reload, and printed by
    /// `check-config`.
    public var notes: [String] = []
    /// Every secret file the configuration names by a `*_file` key.
    public var secretFiles: [SecretFile] = []
    /// Secret files a command that needs no secret could not read; a command that does need one
    /// (quarantine release) refuses with these. Always empty when secrets are required.
    public var unreadableSecrets: [ConfigError] = []

    public init() {}

    public static var smartroTestMID: String { SmartroSettings.testMID }
    public static var smartroTestKey: String { SmartroSettings.testKey }

    /// What `pgnoti serve` runs on with no config at all: loopback only, state under ./var, every
    /// PG enabled, test merchants accepted.
    public static func sandbox(directory: String = "./var") -> Config {
        var config = Config()
        config.sandbox = true
        config.database = directory + "/pgnoti.sqlite"
        config.queue = directory + "/queue"
        for id in ProviderID.tableConfigured {
            if let settings = id.settingsType { config.notifyPGs[id] = settings.sandbox }
        }
        config.toss.enabled = true
        config.payup.enabled = true
        return config
    }

    /// A PG's authentication; none for the sources, which have no URL of theirs to
    /// authenticate (`ProviderID.postsNotifications`).
    public func auth(for provider: ProviderID) -> ProviderAuth {
        notifyPGs[provider]?.auth ?? ProviderAuth()
    }

    /// The enabled PGs that post to a public URL and sign nothing: each needs authentication
    /// the operator configures. Asked of the providers themselves.
    public var unsignedNotifyPGs: [ProviderID] {
        providers.filter { $0.id.postsNotifications && !type(of: $0).signsNotifications }.map(\.id)
    }

    public var providers: [any PaymentProvider] {
        var list = ProviderID.tableConfigured.compactMap { notifyPGs[$0] }.filter(\.enabled).map { $0.makeProvider() }
        if toss.enabled { list.append(TossPayments()) }
        if payup.enabled { list.append(Payup()) }
        return list
    }

    /// Things worth a warning at every start: they are allowed, but an operator should know.
    public var warnings: [String] {
        var out: [String] = []
        for id in unsignedNotifyPGs where !sandbox && !auth(for: id).hasTransportAuthentication {
            out.append(
                "\(id.rawValue) runs unauthenticated (allow_unauthenticated = true): anyone who knows the URL can post a payment"
            )
        }
        if providers.isEmpty {
            out.append(
                "no PG is enabled: every notify URL answers 404 until one of the tables \(ProviderID.tableConfigured.map { "[\($0.rawValue)]" }.joined(separator: ", ")) is configured"
            )
        }
        return out
    }
}

/// Reads `pgnoti.toml`. Pure apart from the two callbacks, so every rule is testable.
public struct ConfigLoader {
    public var environment: [String: String]
    public var readFile: (String) throws -> String
    public var fileExists: (String) -> Bool
    /// False for operator commands that read the ledger and need no secret: a secret file they
    /// cannot read, or a PG left without one, does not stop them (see `Config.unreadableSecrets`).
    /// `serve`, `check-config` and anything that verifies require every secret.
    public var secretsRequired = true
    /// Where systemd credentials are looked up when `$CREDENTIALS_DIRECTORY` is not set: the
    /// shipped units load each credential from the file of the same name beside the config
    /// (`/etc/pgnoti/smartro-merchant-keys`), so a shell on the host sees what the daemon gets.
    public var credentialSourceDirectory: String?

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        readFile: @escaping (String) throws -> String = { try TextFile.read($0) },
        fileExists: @escaping (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) {
        self.environment = environment
        self.readFile = readFile
        self.fileExists = fileExists
    }

    public func load(path: String) throws(ConfigError) -> Config {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError("config", "cannot read \(path): \(Self.describe(error))")
        }
        var loader = self
        if loader.credentialSourceDirectory == nil {
            let directory = (path as NSString).deletingLastPathComponent
            loader.credentialSourceDirectory = directory.isEmpty ? "." : directory
        }
        return try loader.parse(text)
    }

    /// A read failure in plain words: ours already are; Foundation's are made readable.
    static func describe(_ error: any Error) -> String {
        if let error = error as? FileReadError { return error.problem }
        return error.localizedDescription
    }

    public func parse(_ text: String) throws(ConfigError) -> Config {
        let reader = try TableReader(parsing: text)
        var config = Config()
        var report = SecretReport()
        try reader.allow(
            Set(
                [
                    "listen", "admin_listen", "database", "database_password_file", "database_ca_file",
                    "database_pool_size", "queue", "log_level", "max_body_bytes", "rejected_keep",
                    "trusted_proxies", "limits", "min_free_bytes", "retention", "forward", "toss", "payup",
                ] + ProviderID.tableConfigured.map(\.rawValue)))
        if let free = try reader.int("min_free_bytes") {
            guard free >= 0 else { throw ConfigError("min_free_bytes", "must not be negative") }
            config.minFreeBytes = free
        }
        if let retention = try reader.string("retention") {
            if retention != "off" {
                guard let seconds = TimeSpec.span(retention), seconds >= 86_400 else {
                    throw ConfigError(
                        "retention",
                        "expected a span of at least a day, in days (\"400d\"), or \"off\"")
                }
                config.retentionSeconds = seconds
            }
        }
        if let listen = try reader.string("listen") {
            guard let address = ListenAddress(parsing: listen) else {
                throw ConfigError("listen", "expected HOST:PORT, got \"\(listen)\"")
            }
            config.listen = address
        }
        if let admin = try reader.string("admin_listen") {
            if admin == "off" || admin.isEmpty {
                config.adminListen = nil
            } else {
                guard let address = ListenAddress(parsing: admin) else {
                    throw ConfigError("admin_listen", "expected HOST:PORT or \"off\", got \"\(admin)\"")
                }
                config.adminListen = address
            }
        }
        try parseDatabase(reader, &config, &report)
        if let queue = try reader.string("queue") { config.queue = queue }
        if let level = try reader.string("log_level") {
            guard let parsed = Logger.Level(rawValue: level) else {
                throw ConfigError(
                    "log_level", "expected one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            config.logLevel = parsed
        }
        if let max = try reader.int("max_body_bytes") {
            guard (1024...(1 << 20)).contains(max) else {
                throw ConfigError("max_body_bytes", "must be between 1024 and 1048576")
            }
            config.maxBodyBytes = max
        }
        if let keep = try reader.int("rejected_keep") {
            guard keep >= 0 else { throw ConfigError("rejected_keep", "must not be negative") }
            config.rejectedKeep = keep
        }
        config.trustedProxies = try reader.cidrs("trusted_proxies") ?? []
        if let limits = try reader.table("limits") { config.limits = try parseLimits(limits) }

        for id in ProviderID.tableConfigured {
            guard let settings = id.settingsType, let table = try reader.table(id.rawValue) else { continue }
            config.notifyPGs[id] = try settings.parse(table, self, &report)
        }
        if let forward = try reader.table("forward") { config.forward = try parseForward(forward, &report) }
        if let toss = try reader.table("toss") { config.toss = try parseToss(toss, &report) }
        if let payup = try reader.table("payup") { config.payup = try parsePayup(payup, &report) }
        if secretsRequired { try requireAuthentication(config) }
        try requireLoopbackAdmin(config)
        try requireRenewableLease(config)
        config.notes = report.notes
        config.secretFiles = report.files
        config.unreadableSecrets = report.unreadable
        return config
    }

    /// The Payup client takes card data on the admin listener; a bearer token guards it, and a
    /// loopback address keeps it off the network, as the merchant's app runs on this host.
    func requireLoopbackAdmin(_ config: Config) throws(ConfigError) {
        guard config.payup.clientConfigured, let admin = config.adminListen else { return }
        let host = admin.host.lowercased()
        guard host == "localhost" || host == "::1" || host.hasPrefix("127.") else {
            throw ConfigError(
                "admin_listen",
                "the Payup client ([payup]) serves /payup/approve and /payup/cancel on the admin listener, so it must be a loopback address (127.0.0.1:9759 or [::1]:9759), not \(admin)"
            )
        }
    }

    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }
}
