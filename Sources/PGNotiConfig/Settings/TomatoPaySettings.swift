import Foundation
import PGNotiCore

public struct TomatoPaySettings: NotifyPGSettings {
    static let id = ProviderID.tomatopay
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var ackBody = "OK"
    public var auth = ProviderAuth()

    public init() {}

    static var sandbox: TomatoPaySettings {
        var tomatopay = TomatoPaySettings()
        tomatopay.enabled = true
        // TomatoPay publishes no test merchant; the fixtures' MID stands in for one.
        tomatopay.auth.extraTestMerchants = ["tomato001m"]
        return tomatopay
    }

    func makeProvider() -> any PaymentProvider { TomatoPay(ackBody: ackBody, charset: charset) }

    static func parse(
        _ table: TableReader, _ loader: ConfigLoader, _ report: inout ConfigLoader.SecretReport
    ) throws(ConfigError) -> TomatoPaySettings {
        try loader.parseTomatoPay(table, &report)
    }
}

extension TomatoPay: TableConfigured {
    static var settings: any NotifyPGSettings.Type { TomatoPaySettings.self }
}

extension Config {
    public var tomatopay: TomatoPaySettings {
        get { self[pg: TomatoPaySettings.self] }
        set { self[pg: TomatoPaySettings.self] = newValue }
    }
}

extension ConfigLoader {
    /// `[tomatopay]`: its ACK body and the authentication every PG table shares.
    func parseTomatoPay(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> TomatoPaySettings {
        var tomatopay = TomatoPaySettings()
        try table.allow(Self.authKeys.union(["enabled", "charset", "ack_body"]))
        tomatopay.enabled = try table.bool("enabled") ?? true
        tomatopay.charset = try table.charsetSetting("charset") ?? .cp949
        if let ack = try table.string("ack_body") {
            guard !ack.isEmpty, ack.count <= 64, !ack.contains(where: \.isNewline) else {
                throw ConfigError("tomatopay.ack_body", "must be 1 to 64 characters on one line")
            }
            tomatopay.ackBody = ack
        }
        tomatopay.auth = try parseAuth(table, provider: .tomatopay, enabled: tomatopay.enabled, &report)
        return tomatopay
    }
}
