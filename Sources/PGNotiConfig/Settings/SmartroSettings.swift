import Foundation
import PGNotiCore

public struct SmartroSettings: NotifyPGSettings {
    static let id = ProviderID.smartro
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var signAlgorithm = SmartroSignAlgorithm.either
    /// MID → merchant key(s). `SecretValues` keeps them out of every description and log line.
    public var merchantKeys: [String: SecretValues] = [:]
    public var auth = ProviderAuth()

    public init() {}

    /// Smartro's published test merchant (WEBLink manual v5.2 §4.4). The manual's table wraps
    /// the key over three lines; Base64 has no spaces.
    public static let testMID = "SMTPAY001m"
    public static let testKey =
        "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="

    static var sandbox: SmartroSettings {
        var smartro = SmartroSettings()
        smartro.enabled = true
        smartro.merchantKeys = [testMID: SecretValues([testKey])]
        return smartro
    }

    func makeProvider() -> any PaymentProvider {
        Smartro(merchantKeys: merchantKeys, signAlgorithm: signAlgorithm, charset: charset)
    }

    static func parse(
        _ table: TableReader, _ loader: ConfigLoader, _ report: inout ConfigLoader.SecretReport
    ) throws(ConfigError) -> SmartroSettings {
        try loader.parseSmartro(table, &report)
    }
}

extension Smartro: TableConfigured {
    static var settings: any NotifyPGSettings.Type { SmartroSettings.self }
}

extension Config {
    public var smartro: SmartroSettings {
        get { self[pg: SmartroSettings.self] }
        set { self[pg: SmartroSettings.self] = newValue }
    }
}

extension ConfigLoader {
    public static let smartroKeysCredential = "smartro-merchant-keys"

    /// `[smartro]`: the merchant keys (inline, `merchant_keys_file`, or the credential), the
    /// algorithm, and the authentication every PG table shares.
    func parseSmartro(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> SmartroSettings {
        var smartro = SmartroSettings()
        try table.allow(
            Self.authKeys.union(["enabled", "charset", "sign_algorithm", "merchant_keys", "merchant_keys_file"]))
        smartro.enabled = try table.bool("enabled") ?? true
        smartro.charset = try table.charsetSetting("charset") ?? .cp949
        if let algorithm = try table.string("sign_algorithm") {
            guard let parsed = SmartroSignAlgorithm(rawValue: algorithm) else {
                throw ConfigError("smartro.sign_algorithm", "expected md5, sha256 or either")
            }
            smartro.signAlgorithm = parsed
        }
        var keys: [String: [String]] = [:]
        if let table = try table.table("merchant_keys") {
            for mid in table.table.keys { keys[mid, default: []] += try table.secrets(mid) }
        }
        let enabled = smartro.enabled
        let fileKey = "smartro.merchant_keys_file"
        if let file = try table.string("merchant_keys_file") {
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
        smartro.merchantKeys = keys.mapValues { SecretValues(Self.unique($0)) }
        smartro.auth = try parseAuth(table, provider: .smartro, enabled: enabled, &report)
        if enabled && secretsRequired {
            if smartro.merchantKeys.isEmpty {
                throw ConfigError(
                    "smartro.merchant_keys",
                    "Smartro is enabled but no merchant key is configured (merchant_keys, merchant_keys_file or the \(Self.smartroKeysCredential) credential); set enabled = false until you have one"
                )
            }
            // A listed MID without its key can never be accepted: every post fails SignValue.
            let missing = (smartro.auth.merchants ?? []).filter { smartro.merchantKeys[$0] == nil }
            if !missing.isEmpty {
                throw ConfigError(
                    "smartro.merchants",
                    "\(missing.sorted().joined(separator: ", ")) has no merchant key (merchant_keys, merchant_keys_file or the \(Self.smartroKeysCredential) credential): every notification for it would be refused"
                )
            }
        }
        return smartro
    }
}
