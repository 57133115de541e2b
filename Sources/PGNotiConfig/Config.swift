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

/// How a provider's notifications are authenticated beyond what the PG itself signs.
public struct ProviderAuth: Sendable, Equatable {
    /// The URL is `/notify/<provider>/<secret>` when set; any value of the set is accepted.
    public var pathSecrets = SecretValues([])
    /// Client addresses (after `trusted_proxies`) the PG posts from; empty accepts any.
    public var allowSources: [CIDR] = []
    /// MIDs accepted; nil accepts any.
    public var merchants: Set<String>?
    /// Runs an unsigned PG without a path secret or allowlist, knowingly.
    public var allowUnauthenticated = false
    /// Accepts the PG's published test merchants outside sandbox mode.
    public var acceptTestMerchants = false
    /// Test merchants beyond the ones the PG publishes.
    public var extraTestMerchants: Set<String> = []

    public init() {}

    /// Authenticated by something the operator configured (the PG's own signature aside).
    public var hasTransportAuthentication: Bool { !pathSecrets.isEmpty || !allowSources.isEmpty }
}

public struct SmartroSettings: Sendable {
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var signAlgorithm = SmartroSignAlgorithm.either
    /// MID → merchant key(s). `SecretValues` keeps them out of every description and log line.
    public var merchantKeys: [String: SecretValues] = [:]
    public var auth = ProviderAuth()
}

public struct TomatoPaySettings: Sendable {
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var ackBody = "OK"
    public var auth = ProviderAuth()
}

public struct InnopaySettings: Sendable {
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var auth = ProviderAuth()
}

/// `[toss]`: TossPayments transaction files, dropped into an inbox by Toss's FTP push or pulled
/// over HTTP. Toss signs nothing: the inbox's file permissions and the pull's key are the trust.
public struct TossSettings: Sendable, Equatable {
    public var enabled = false
    /// Where the FTP server drops `<mid>_AUTH_<yyyymmdd>.dat` / `_REV_` files; nil: no watching
    /// (files come by `pgnoti toss import` or the pull).
    public var inbox: String?
    /// A file is taken once its size and modification time have not changed for this long (or
    /// at once when it was renamed into the inbox).
    public var stableSeconds = 10.0
    /// How often the inbox is looked at besides inotify's wake-ups.
    public var pollSeconds = 2.0
    /// A day's file is final (moved to `inbox/done/`) this many minutes after the following
    /// midnight, KST: Toss pushes the previous day in full at 00:05. A file's last line without
    /// its newline is taken only once its day is over and the file unchanged this long.
    public var finalAfterMinutes = 60
    /// The pull: `mertid`, the MertKey's file, the download URL, and an optional schedule.
    public var merchantID: String?
    public var mertKeyPath: String?
    public var pullURL = "https://pgweb.tosspayments.com/pg/wmp/outerpage/trxdown.jsp"
    /// Pull today's (and until it is final, yesterday's) TRX and REV every this many minutes;
    /// nil: the daemon does not pull.
    public var pullIntervalMinutes: Int?
    public var pullTimeoutSeconds = 30.0

    public init() {}
}

/// `[payup]`: the durable Payup key-in client that runs inside the daemon, on the admin listener.
public struct PayupSettings: Sendable, Equatable {
    public var enabled = false
    /// `https://api.testpayup.co.kr` (development) or `https://api.payup.co.kr` (production).
    public var baseURL = "https://api.testpayup.co.kr"
    public var merchantID: String?
    /// The apiCertKey's file (`api_cert_key_file`, else the payup-api-cert-key credential).
    public var apiCertKeyPath: String?
    /// The bearer token the merchant's app presents (`client_token_file`, else the
    /// payup-client-token credential).
    public var clientTokenPath: String?
    public var timeoutSeconds = 30.0

    public init() {}

    /// The client runs only with everything it needs.
    public var clientConfigured: Bool {
        enabled && merchantID != nil && apiCertKeyPath != nil && clientTokenPath != nil
    }
}

/// `[forward]`: how `pgnoti forward` delivers the queue to the merchant's app. The daemon
/// itself never reads the secret; the forwarder does, when it starts.
public struct ForwardConfig: Sendable, Equatable {
    /// The app's webhook endpoint.
    public var url: String?
    /// Where the signing secret is: `secret_file`, else the `forward-secret` credential.
    public var secretPath: String?
    public var timeoutSeconds = 10.0
    public var concurrency = 4
    public var giveUpAfterHours = 72.0
    public var keepDoneDays = 7.0
    /// The first retry's delay; each later one is three times longer, up to four hours.
    public var retryInitialSeconds = 5.0

    public init() {}
}

/// Bounds on what a client can make the daemon do. Every one has a default; see README "Limits".
public struct Limits: Sendable, Equatable {
    /// Time a connection has to deliver a complete request (head and body) once it starts one.
    public var readTimeoutSeconds = 10
    /// Connections over this are closed as soon as they are accepted.
    public var maxConnections = 4096
    public var maxHeaderBytes = 16 * 1024
    /// Per client address; 0 turns the limit off, so a PG's retry storm is never refused by default.
    public var requestsPerSecondPerSource = 0
    /// Requests a client may send at once above the rate.
    public var burstPerSource = 10
    /// Stored bytes of refused requests; never-parsed garbage is evicted first.
    public var quarantineMaxBytes = 256 * 1024 * 1024
    public var quarantineKeepDays = 30
    /// On SIGTERM, requests still being read after this are cut (unACKed) and the daemon exits.
    /// Below the unit's TimeoutStopSec (30 s), so systemd never has to kill it.
    public var shutdownGraceSeconds = 20

    public init() {}
}

public struct Config: Sendable {
    public var listen = ListenAddress(host: "127.0.0.1", port: 8080)
    /// nil turns the admin listener off.
    public var adminListen: ListenAddress? = ListenAddress(host: "127.0.0.1", port: 9759)
    public var database = "/var/lib/pgnoti/pgnoti.sqlite"
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
    public var smartro = SmartroSettings()
    public var tomatopay = TomatoPaySettings()
    public var innopay = InnopaySettings()
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

    /// Smartro's published test merchant (WEBLink manual v5.2 §4.4). The manual's table wraps
    /// the key over three lines; Base64 has no spaces.
    public static let smartroTestMID = "SMTPAY001m"
    public static let smartroTestKey =
        "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="

    /// What `pgnoti serve` runs on with no config at all: loopback only, state under ./var, every
    /// PG enabled, test merchants accepted.
    public static func sandbox(directory: String = "./var") -> Config {
        var config = Config()
        config.sandbox = true
        config.database = directory + "/pgnoti.sqlite"
        config.queue = directory + "/queue"
        config.smartro.enabled = true
        config.smartro.merchantKeys = [smartroTestMID: SecretValues([smartroTestKey])]
        config.tomatopay.enabled = true
        // TomatoPay publishes no test merchant; the fixtures' MID stands in for one.
        config.tomatopay.auth.extraTestMerchants = ["tomato001m"]
        config.innopay.enabled = true
        config.toss.enabled = true
        config.payup.enabled = true
        return config
    }

    public func auth(for provider: ProviderID) -> ProviderAuth {
        switch provider {
        case .smartro: smartro.auth
        case .tomatopay: tomatopay.auth
        case .innopay: innopay.auth
        // No URL of theirs exists to authenticate (ProviderID.postsNotifications).
        case .toss, .payup: ProviderAuth()
        }
    }

    public var providers: [any PaymentProvider] {
        var list: [any PaymentProvider] = []
        if smartro.enabled {
            list.append(
                Smartro(
                    merchantKeys: smartro.merchantKeys, signAlgorithm: smartro.signAlgorithm, charset: smartro.charset))
        }
        if tomatopay.enabled { list.append(TomatoPay(ackBody: tomatopay.ackBody, charset: tomatopay.charset)) }
        if innopay.enabled { list.append(Innopay(charset: innopay.charset)) }
        if toss.enabled { list.append(TossPayments()) }
        if payup.enabled { list.append(Payup()) }
        return list
    }

    /// Things worth a warning at every start: they are allowed, but an operator should know.
    public var warnings: [String] {
        var out: [String] = []
        for (id, enabled, auth) in [
            (ProviderID.tomatopay, tomatopay.enabled, tomatopay.auth), (.innopay, innopay.enabled, innopay.auth),
        ] where enabled && !sandbox && !auth.hasTransportAuthentication {
            out.append(
                "\(id.rawValue) runs unauthenticated (allow_unauthenticated = true): anyone who knows the URL can post a payment"
            )
        }
        if providers.isEmpty {
            out.append(
                "no PG is enabled: every notify URL answers 404 until a [smartro], [tomatopay] or [innopay] table is configured"
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

    public static let smartroKeysCredential = "smartro-merchant-keys"
    public static func pathSecretCredential(_ provider: ProviderID) -> String { "\(provider.rawValue)-path-secret" }

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
        try reader.allow([
            "listen", "admin_listen", "database", "queue", "log_level", "max_body_bytes", "rejected_keep",
            "trusted_proxies", "limits", "min_free_bytes", "retention", "smartro", "tomatopay", "innopay",
            "forward", "toss", "payup",
        ])
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
        if let database = try reader.string("database") { config.database = database }
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

        if let smartro = try reader.table("smartro") {
            try smartro.allow(
                Self.authKeys.union(["enabled", "charset", "sign_algorithm", "merchant_keys", "merchant_keys_file"]))
            config.smartro.enabled = try smartro.bool("enabled") ?? true
            config.smartro.charset = try smartro.charsetSetting("charset") ?? .cp949
            if let algorithm = try smartro.string("sign_algorithm") {
                guard let parsed = SmartroSignAlgorithm(rawValue: algorithm) else {
                    throw ConfigError("smartro.sign_algorithm", "expected md5, sha256 or either")
                }
                config.smartro.signAlgorithm = parsed
            }
            var keys: [String: [String]] = [:]
            if let table = try smartro.table("merchant_keys") {
                for mid in table.table.keys { keys[mid, default: []] += try table.secrets(mid) }
            }
            let enabled = config.smartro.enabled
            let fileKey = "smartro.merchant_keys_file"
            if let file = try smartro.string("merchant_keys_file") {
                report.files.append(SecretFile(key: fileKey, path: file))
                if let fromFile = try deferrable(
                    &report, { () throws(ConfigError) in try readKeyFile(file, key: fileKey) })
                {
                    if fromFile.isEmpty && enabled && secretsRequired {
                        throw ConfigError(
                            fileKey,
                            "\(file) holds no merchant key: add one MID=KEY line per merchant, or set enabled = false until you have one"
                        )
                    }
                    for (mid, values) in fromFile { keys[mid, default: []] += values }
                }
                noteIgnoredCredential(Self.smartroKeysCredential, because: fileKey, file: file, &report)
            } else if let path = credentialPath(Self.smartroKeysCredential) {
                // systemd's LoadCredential= puts secrets in $CREDENTIALS_DIRECTORY, outside the config.
                let name = "credential \(Self.smartroKeysCredential)"
                if let fromCredential = try deferrable(
                    &report, { () throws(ConfigError) in try readKeyFile(path, key: name) })
                {
                    for (mid, values) in fromCredential { keys[mid, default: []] += values }
                }
            }
            config.smartro.merchantKeys = keys.mapValues { SecretValues(Self.unique($0)) }
            config.smartro.auth = try parseAuth(smartro, provider: .smartro, enabled: enabled, &report)
            if enabled && secretsRequired {
                if config.smartro.merchantKeys.isEmpty {
                    throw ConfigError(
                        "smartro.merchant_keys",
                        "Smartro is enabled but no merchant key is configured (merchant_keys, merchant_keys_file or the \(Self.smartroKeysCredential) credential); set enabled = false until you have one"
                    )
                }
                // A listed MID without its key can never be accepted: every post fails SignValue.
                let missing = (config.smartro.auth.merchants ?? []).filter { config.smartro.merchantKeys[$0] == nil }
                if !missing.isEmpty {
                    throw ConfigError(
                        "smartro.merchants",
                        "\(missing.sorted().joined(separator: ", ")) has no merchant key (merchant_keys, merchant_keys_file or the \(Self.smartroKeysCredential) credential): every notification for it would be refused"
                    )
                }
            }
        }
        if let tomato = try reader.table("tomatopay") {
            try tomato.allow(Self.authKeys.union(["enabled", "charset", "ack_body"]))
            config.tomatopay.enabled = try tomato.bool("enabled") ?? true
            config.tomatopay.charset = try tomato.charsetSetting("charset") ?? .cp949
            if let ack = try tomato.string("ack_body") {
                guard !ack.isEmpty, ack.count <= 64, !ack.contains(where: \.isNewline) else {
                    throw ConfigError("tomatopay.ack_body", "must be 1 to 64 characters on one line")
                }
                config.tomatopay.ackBody = ack
            }
            config.tomatopay.auth = try parseAuth(
                tomato, provider: .tomatopay, enabled: config.tomatopay.enabled, &report)
        }
        if let inno = try reader.table("innopay") {
            try inno.allow(Self.authKeys.union(["enabled", "charset"]))
            config.innopay.enabled = try inno.bool("enabled") ?? true
            config.innopay.charset = try inno.charsetSetting("charset") ?? .cp949
            config.innopay.auth = try parseAuth(inno, provider: .innopay, enabled: config.innopay.enabled, &report)
        }
        if let forward = try reader.table("forward") { config.forward = try parseForward(forward, &report) }
        if let toss = try reader.table("toss") { config.toss = try parseToss(toss, &report) }
        if let payup = try reader.table("payup") { config.payup = try parsePayup(payup, &report) }
        if secretsRequired { try requireAuthentication(config) }
        try requireLoopbackAdmin(config)
        config.notes = report.notes
        config.secretFiles = report.files
        config.unreadableSecrets = report.unreadable
        return config
    }

    /// What reading the secrets found, gathered while the tables are parsed.
    struct SecretReport {
        var notes: [String] = []
        var files: [SecretFile] = []
        var unreadable: [ConfigError] = []
    }

    /// A secret read that stops the load only when secrets are required; otherwise its failure
    /// is kept for the command that turns out to need it.
    func deferrable<T>(_ report: inout SecretReport, _ read: () throws(ConfigError) -> T) throws(ConfigError) -> T? {
        do {
            return try read()
        } catch {
            guard !secretsRequired else { throw error }
            report.unreadable.append(error)
            return nil
        }
    }

    /// A `*_file` key wins over the credential of the same secret: systemd copies credentials
    /// when the unit starts and never on reload, so only a file the daemon reads itself can be
    /// rotated by `systemctl reload`. Said once, so an operator who still fills the credential
    /// knows it is not used.
    func noteIgnoredCredential(_ credential: String, because key: String, file: String, _ report: inout SecretReport) {
        guard let path = credentialPath(credential),
            URL(fileURLWithPath: path).standardizedFileURL.path != URL(fileURLWithPath: file).standardizedFileURL.path
        else { return }
        report.notes.append(
            "\(key) is set, so the \(credential) credential is ignored: the daemon reads \(file) itself, and a reload re-reads it"
        )
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

    public static let forwardSecretCredential = "forward-secret"
    static let tossMertKeyCredential = "toss-mert-key"
    static let payupAPIKeyCredential = "payup-api-cert-key"
    static let payupClientTokenCredential = "payup-client-token"

    func parseToss(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> TossSettings {
        try table.allow([
            "enabled", "inbox", "stable_seconds", "poll_seconds", "final_after_minutes", "merchant_id",
            "mert_key_file", "pull_url", "pull_interval_minutes", "pull_timeout_seconds",
        ])
        var toss = TossSettings()
        toss.enabled = try table.bool("enabled") ?? true
        toss.inbox = try table.string("inbox")
        if let v = try table.double("stable_seconds") {
            guard (0...3600).contains(v) else { throw ConfigError("toss.stable_seconds", "must be 0 to 3600") }
            toss.stableSeconds = v
        }
        if let v = try table.double("poll_seconds") {
            guard (0.05...600).contains(v) else { throw ConfigError("toss.poll_seconds", "must be 0.05 to 600") }
            toss.pollSeconds = v
        }
        if let v = try table.int("final_after_minutes") {
            guard (0...1440).contains(v) else { throw ConfigError("toss.final_after_minutes", "must be 0 to 1440") }
            toss.finalAfterMinutes = v
        }
        toss.merchantID = try table.string("merchant_id")
        toss.mertKeyPath = try secretFile(
            table, "mert_key_file", credential: Self.tossMertKeyCredential, &report)
        if let url = try table.httpURL("pull_url", expected: "an http(s) URL without a query", allowQuery: false) {
            toss.pullURL = url
        }
        if let v = try table.int("pull_interval_minutes") {
            guard (1...1440).contains(v) else {
                throw ConfigError("toss.pull_interval_minutes", "must be 1 to 1440 (leave it out to not pull)")
            }
            guard toss.merchantID != nil, toss.mertKeyPath != nil else {
                throw ConfigError(
                    "toss.pull_interval_minutes",
                    "the pull needs toss.merchant_id and the MertKey (toss.mert_key_file or the \(Self.tossMertKeyCredential) credential)"
                )
            }
            toss.pullIntervalMinutes = v
        }
        if let v = try table.double("pull_timeout_seconds") {
            guard (1...600).contains(v) else { throw ConfigError("toss.pull_timeout_seconds", "must be 1 to 600") }
            toss.pullTimeoutSeconds = v
        }
        return toss
    }

    func parsePayup(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> PayupSettings {
        try table.allow([
            "enabled", "base_url", "merchant_id", "api_cert_key_file", "client_token_file", "timeout_seconds",
        ])
        var payup = PayupSettings()
        payup.enabled = try table.bool("enabled") ?? true
        if let url = try table.httpURL(
            "base_url", expected: "https://api.payup.co.kr or https://api.testpayup.co.kr")
        {
            payup.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
        }
        payup.merchantID = try table.string("merchant_id")
        payup.apiCertKeyPath = try secretFile(
            table, "api_cert_key_file", credential: Self.payupAPIKeyCredential, &report)
        payup.clientTokenPath = try secretFile(
            table, "client_token_file", credential: Self.payupClientTokenCredential, &report)
        if let v = try table.double("timeout_seconds") {
            guard (1...300).contains(v) else { throw ConfigError("payup.timeout_seconds", "must be 1 to 300") }
            payup.timeoutSeconds = v
        }
        return payup
    }

    /// The text at `path`, or standard input for `-`. A failure names the file, under `key`.
    func readFileOrStdin(_ path: String, key: String) throws(ConfigError) -> String {
        do {
            return path == "-"
                ? (String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) ?? "")
                : try readFile(path)
        } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
    }

    /// A one-line secret (a key, a token) from its file: surrounding whitespace and the newline
    /// are trimmed; `-` reads stdin. Errors name the file, never the content.
    public func readSecret(_ path: String, key: String) throws(ConfigError) -> SecretValues {
        let text = try readFileOrStdin(path, key: key)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty, !trimmed.contains(where: \.isNewline) else {
            throw ConfigError(key, "\(path) must hold one line with the secret")
        }
        return SecretValues([trimmed])
    }

    /// The forwarder's signing secret, from `path` (the `--secret-file` flag) or where the
    /// configuration says. The error names the source, never the content.
    public func forwardSecret(_ forward: ForwardConfig, path override: String? = nil) throws(ConfigError)
        -> WebhookSecret
    {
        let key = override != nil ? "--secret-file" : "forward.secret_file"
        guard let path = override ?? forward.secretPath else {
            throw ConfigError(
                "forward.secret_file",
                "no signing secret: set forward.secret_file, pass --secret-file, or load the \(Self.forwardSecretCredential) credential"
            )
        }
        let text = try readFileOrStdin(path, key: key)
        do {
            return try WebhookSecret(text)
        } catch {
            throw ConfigError(key, "\(path): \(error)")
        }
    }

    /// The file a one-value secret is read from: the `*_file` key when set (and then the
    /// credential is ignored, with a note), else the credential.
    func secretFile(
        _ table: TableReader, _ key: String, credential: String, _ report: inout SecretReport
    ) throws(ConfigError) -> String? {
        guard let file = try table.string(key) else { return credentialPath(credential) }
        report.files.append(SecretFile(key: table.name(key), path: file))
        noteIgnoredCredential(credential, because: table.name(key), file: file, &report)
        return file
    }

    func parseForward(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> ForwardConfig {
        try table.allow([
            "url", "secret_file", "timeout_seconds", "concurrency", "give_up_after_hours", "keep_done_days",
            "retry_initial_seconds",
        ])
        var forward = ForwardConfig()
        forward.url = try table.httpURL("url", expected: "an http:// or https:// URL")
        forward.secretPath = try secretFile(
            table, "secret_file", credential: Self.forwardSecretCredential, &report)
        func positive(_ key: String, _ range: ClosedRange<Double>) throws(ConfigError) -> Double? {
            guard let value = try table.double(key) else { return nil }
            guard range.contains(value) else {
                throw ConfigError("forward.\(key)", "must be between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        if let v = try positive("timeout_seconds", 0.1...600) { forward.timeoutSeconds = v }
        if let v = try table.int("concurrency") {
            guard (1...256).contains(v) else { throw ConfigError("forward.concurrency", "must be between 1 and 256") }
            forward.concurrency = v
        }
        if let v = try positive("give_up_after_hours", 0.0001...8760) { forward.giveUpAfterHours = v }
        if let v = try positive("keep_done_days", 0...3650) { forward.keepDoneDays = v }
        if let v = try positive("retry_initial_seconds", 0.01...3600) { forward.retryInitialSeconds = v }
        return forward
    }

    /// The same rules for a configuration built in code (sandbox aside): an unsigned PG needs a
    /// path secret or an allowlist unless the operator says otherwise in so many words.
    public func requireAuthentication(_ config: Config) throws(ConfigError) {
        guard !config.sandbox else { return }
        for (id, enabled, auth) in [
            (ProviderID.tomatopay, config.tomatopay.enabled, config.tomatopay.auth),
            (.innopay, config.innopay.enabled, config.innopay.auth),
        ] where enabled && !auth.hasTransportAuthentication && !auth.allowUnauthenticated {
            throw ConfigError(
                id.rawValue,
                "\(id.rawValue) signs nothing, so it needs path_secret (or path_secret_file, or the \(Self.pathSecretCredential(id)) credential) or allow_sources; set allow_unauthenticated = true to run it without either, or enabled = false"
            )
        }
    }

    static let authKeys: Set<String> = [
        "path_secret", "path_secret_file", "allow_sources", "merchants", "allow_unauthenticated",
        "accept_test_merchants", "test_merchants",
    ]

    func parseAuth(
        _ table: TableReader, provider: ProviderID, enabled: Bool, _ report: inout SecretReport
    ) throws(ConfigError) -> ProviderAuth {
        var auth = ProviderAuth()
        var secrets = try table.secrets("path_secret")
        let credential = Self.pathSecretCredential(provider)
        let fileKey = table.name("path_secret_file")
        if let file = try table.string("path_secret_file") {
            report.files.append(SecretFile(key: fileKey, path: file))
            if let lines = try deferrable(
                &report, { () throws(ConfigError) in try readSecretLines(file, key: fileKey) })
            {
                // tmpfiles.d creates the shipped secret files empty: an empty one named here is a
                // secret not yet written, not "no secret wanted".
                if lines.isEmpty && enabled && secretsRequired {
                    throw ConfigError(
                        fileKey,
                        "\(file) is empty: write the path secret into it, or remove path_secret_file to rely on allow_sources alone"
                    )
                }
                secrets += lines
            }
            noteIgnoredCredential(credential, because: fileKey, file: file, &report)
        } else if let path = credentialPath(credential) {
            let name = "credential \(credential)"
            secrets += try deferrable(&report, { () throws(ConfigError) in try readSecretLines(path, key: name) }) ?? []
        }
        for (index, secret) in secrets.enumerated() {
            let key = "\(table.name("path_secret"))[\(index)]"
            guard secret.utf8.count >= 16 else {
                throw ConfigError(
                    key, "a path secret must be at least 16 characters (it is the only thing that keeps forgers out)")
            }
            guard secret.utf8.allSatisfy(Self.isUnreservedURLByte) else {
                throw ConfigError(
                    key, "a path secret may contain only A-Z a-z 0-9 - . _ ~ (it becomes part of the URL)")
            }
        }
        auth.pathSecrets = SecretValues(Self.unique(secrets))
        auth.allowSources = try table.cidrs("allow_sources") ?? []
        if let merchants = try table.strings("merchants") { auth.merchants = Set(merchants) }
        auth.allowUnauthenticated = try table.bool("allow_unauthenticated") ?? false
        auth.acceptTestMerchants = try table.bool("accept_test_merchants") ?? false
        auth.extraTestMerchants = Set(try table.strings("test_merchants") ?? [])
        return auth
    }

    func parseLimits(_ table: TableReader) throws(ConfigError) -> Limits {
        try table.allow([
            "read_timeout_seconds", "max_connections", "max_header_bytes", "requests_per_second_per_source",
            "burst_per_source", "quarantine_max_bytes", "quarantine_keep_days", "shutdown_grace_seconds",
        ])
        var limits = Limits()
        func bounded(_ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let value = try table.int(key) else { return nil }
            guard range.contains(value) else {
                throw ConfigError(table.name(key), "must be between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        if let v = try bounded("read_timeout_seconds", 1...600) { limits.readTimeoutSeconds = v }
        if let v = try bounded("max_connections", 1...1_000_000) { limits.maxConnections = v }
        if let v = try bounded("max_header_bytes", 1024...(1 << 20)) { limits.maxHeaderBytes = v }
        if let v = try bounded("requests_per_second_per_source", 0...1_000_000) {
            limits.requestsPerSecondPerSource = v
        }
        if let v = try bounded("burst_per_source", 1...1_000_000) { limits.burstPerSource = v }
        if let v = try bounded("quarantine_max_bytes", 1024 * 1024...(1 << 40)) { limits.quarantineMaxBytes = v }
        if let v = try bounded("quarantine_keep_days", 1...3650) { limits.quarantineKeepDays = v }
        // Below the shipped unit's TimeoutStopSec=30s with room to close the ledger, so systemd
        // never has to SIGKILL a daemon that is still finishing commits.
        if let v = try bounded("shutdown_grace_seconds", 1...25) { limits.shutdownGraceSeconds = v }
        return limits
    }

    static func isUnreservedURLByte(_ b: UInt8) -> Bool {
        (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b)
            || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "~")
    }

    static func unique(_ values: [String]) -> [String] {
        var seen = Set<String>()
        return values.filter { seen.insert($0).inserted }
    }

    func credentialPath(_ name: String) -> String? {
        let fromSystemd = environment["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
        guard let directory = fromSystemd ?? credentialSourceDirectory else { return nil }
        let path = directory + "/" + name
        return fileExists(path) ? path : nil
    }

    /// One `MID=KEY` per line; `#` starts a comment; a MID may appear twice while its key is
    /// rotated. Base64 keys end in `=`, so only the first `=` separates.
    func readKeyFile(_ path: String, key: String) throws(ConfigError) -> [String: [String]] {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
        var keys: [String: [String]] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError(key, "\(path) line \(number + 1): expected MID=KEY")
            }
            let mid = line[..<eq].trimmingCharacters(in: .whitespaces)
            let secret = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !mid.isEmpty, !secret.isEmpty else {
                throw ConfigError(key, "\(path) line \(number + 1): expected MID=KEY")
            }
            keys[mid, default: []].append(secret)
        }
        return keys
    }

    /// One secret per line, `#` comments and blank lines skipped, surrounding whitespace trimmed.
    func readSecretLines(_ path: String, key: String) throws(ConfigError) -> [String] {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError(key, "cannot read \(path): \(Self.describe(error))")
        }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    }
}
