import Foundation
import Logging
import PGNotiCore
import TOMLKit

/// A configuration problem, always naming the key so `check-config` can point at the line.
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

public struct SmartroSettings: Sendable {
    public var enabled = true
    public var charset = TextCharset.cp949
    public var signAlgorithm = SmartroSignAlgorithm.either
    /// MID → merchant key. Kept out of every description and log line.
    public var merchantKeys: [String: String] = [:]
}

public struct TomatoPaySettings: Sendable {
    public var enabled = true
    public var charset = TextCharset.cp949
    public var ackBody = "OK"
}

public struct InnopaySettings: Sendable {
    public var enabled = true
    public var charset = TextCharset.cp949
}

public struct Config: Sendable {
    public var listen = ListenAddress(host: "127.0.0.1", port: 8080)
    public var database = "/var/lib/pgnoti/pgnoti.sqlite"
    public var queue = "/var/lib/pgnoti/queue"
    public var logLevel = Logger.Level.info
    public var maxBodyBytes = 64 * 1024
    public var rejectedKeep = 10_000
    public var smartro = SmartroSettings()
    public var tomatopay = TomatoPaySettings()
    public var innopay = InnopaySettings()
    /// True only for the embedded defaults: test keys, state under ./var.
    public var sandbox = false

    public init() {}

    /// Smartro's published test merchant (WEBLink manual v5.2 §4.4). The manual's table wraps
    /// the key over three lines; Base64 has no spaces.
    public static let smartroTestMID = "SMTPAY001m"
    public static let smartroTestKey =
        "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="

    /// What `pgnoti serve` runs on with no config at all: loopback only, state under ./var.
    public static func sandbox(directory: String = "./var") -> Config {
        var config = Config()
        config.sandbox = true
        config.database = directory + "/pgnoti.sqlite"
        config.queue = directory + "/queue"
        config.smartro.merchantKeys = [smartroTestMID: smartroTestKey]
        return config
    }

    public var providers: [any PaymentProvider] {
        var list: [any PaymentProvider] = []
        if smartro.enabled {
            list.append(
                Smartro(
                    merchantKeys: smartro.merchantKeys, signAlgorithm: smartro.signAlgorithm,
                    defaultCharset: smartro.charset))
        }
        if tomatopay.enabled { list.append(TomatoPay(ackBody: tomatopay.ackBody, defaultCharset: tomatopay.charset)) }
        if innopay.enabled { list.append(Innopay(defaultCharset: innopay.charset)) }
        return list
    }
}

/// Reads `pgnoti.toml`. Pure apart from the two callbacks, so every rule is testable.
public struct ConfigLoader {
    public var environment: [String: String]
    public var readFile: (String) throws -> String
    public var fileExists: (String) -> Bool

    public static let credentialName = "smartro-merchant-keys"

    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        readFile: @escaping (String) throws -> String = { try String(contentsOfFile: $0, encoding: .utf8) },
        fileExists: @escaping (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }
    ) {
        self.environment = environment
        self.readFile = readFile
        self.fileExists = fileExists
    }

    public func load(path: String) throws(ConfigError) -> Config {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError("config", "cannot read \(path): \(error.localizedDescription)")
        }
        return try parse(text)
    }

    public func parse(_ text: String) throws(ConfigError) -> Config {
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw ConfigError("config", "not valid TOML: \(error.description) at line \(error.source.begin.line)")
        } catch {
            throw ConfigError("config", "not valid TOML: \(error)")
        }
        var config = Config()
        let reader = TableReader(table: table, path: "")
        try reader.allow([
            "listen", "database", "queue", "log_level", "max_body_bytes", "rejected_keep",
            "smartro", "tomatopay", "innopay",
        ])
        if let listen = try reader.string("listen") {
            guard let address = ListenAddress(parsing: listen) else {
                throw ConfigError("listen", "expected HOST:PORT, got \"\(listen)\"")
            }
            config.listen = address
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

        if let smartro = try reader.table("smartro") {
            try smartro.allow(["enabled", "charset", "sign_algorithm", "merchant_keys", "merchant_keys_file"])
            config.smartro.enabled = try smartro.bool("enabled") ?? true
            config.smartro.charset = try smartro.charset("charset") ?? .cp949
            if let algorithm = try smartro.string("sign_algorithm") {
                guard let parsed = SmartroSignAlgorithm(rawValue: algorithm) else {
                    throw ConfigError("smartro.sign_algorithm", "expected md5, sha256 or either")
                }
                config.smartro.signAlgorithm = parsed
            }
            if let keys = try smartro.table("merchant_keys") {
                for mid in keys.table.keys {
                    guard let key = try keys.string(mid), !key.isEmpty else { continue }
                    config.smartro.merchantKeys[mid] = key
                }
            }
            if let file = try smartro.string("merchant_keys_file") {
                let keys = try readKeyFile(file, key: "smartro.merchant_keys_file")
                config.smartro.merchantKeys.merge(keys) { _, fromFile in fromFile }
            }
        }
        // systemd's LoadCredential= puts secrets in $CREDENTIALS_DIRECTORY, outside the config.
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            let path = directory + "/" + Self.credentialName
            if fileExists(path) {
                let keys = try readKeyFile(path, key: "credential \(Self.credentialName)")
                config.smartro.merchantKeys.merge(keys) { _, fromCredential in fromCredential }
            }
        }
        if config.smartro.enabled && config.smartro.merchantKeys.isEmpty {
            throw ConfigError(
                "smartro.merchant_keys",
                "Smartro is enabled but no merchant key is configured (merchant_keys, merchant_keys_file or the \(Self.credentialName) credential)"
            )
        }

        if let tomato = try reader.table("tomatopay") {
            try tomato.allow(["enabled", "charset", "ack_body"])
            config.tomatopay.enabled = try tomato.bool("enabled") ?? true
            config.tomatopay.charset = try tomato.charset("charset") ?? .cp949
            if let ack = try tomato.string("ack_body") {
                guard !ack.isEmpty, ack.count <= 64, !ack.contains(where: \.isNewline) else {
                    throw ConfigError("tomatopay.ack_body", "must be 1 to 64 characters on one line")
                }
                config.tomatopay.ackBody = ack
            }
        }
        if let inno = try reader.table("innopay") {
            try inno.allow(["enabled", "charset"])
            config.innopay.enabled = try inno.bool("enabled") ?? true
            config.innopay.charset = try inno.charset("charset") ?? .cp949
        }
        return config
    }

    /// One `MID=KEY` per line; `#` starts a comment. Base64 keys end in `=`, so only the first
    /// `=` separates.
    func readKeyFile(_ path: String, key: String) throws(ConfigError) -> [String: String] {
        let text: String
        do { text = try readFile(path) } catch {
            throw ConfigError(key, "cannot read \(path): \(error.localizedDescription)")
        }
        var keys: [String: String] = [:]
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
            keys[mid] = secret
        }
        return keys
    }
}

/// Typed access to one TOML table that reports the full dotted key on every error.
struct TableReader {
    let table: TOMLTable
    let path: String

    func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func allow(_ keys: Set<String>) throws(ConfigError) {
        for key in table.keys where !keys.contains(key) {
            throw ConfigError(name(key), "unknown key (expected one of: \(keys.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let string = value.string else { throw ConfigError(name(key), "expected a string") }
        return string
    }

    func int(_ key: String) throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let int = value.int else { throw ConfigError(name(key), "expected an integer") }
        return int
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let bool = value.bool else { throw ConfigError(name(key), "expected true or false") }
        return bool
    }

    func table(_ key: String) throws(ConfigError) -> TableReader? {
        guard let value = table[key] else { return nil }
        guard let sub = value.table else { throw ConfigError(name(key), "expected a table [\(name(key))]") }
        return TableReader(table: sub, path: name(key))
    }

    func charset(_ key: String) throws(ConfigError) -> TextCharset? {
        guard let label = try string(key) else { return nil }
        guard let charset = TextCharset(label: label) else {
            throw ConfigError(name(key), "unknown charset \"\(label)\" (use cp949/euc-kr or utf-8)")
        }
        return charset
    }
}
