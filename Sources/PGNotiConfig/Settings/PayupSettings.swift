import Foundation
import PGNotiCore

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

extension ConfigLoader {
    static let payupAPIKeyCredential = "payup-api-cert-key"
    static let payupClientTokenCredential = "payup-client-token"

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
}
