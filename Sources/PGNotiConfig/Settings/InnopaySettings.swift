import Foundation
import PGNotiCore

public struct InnopaySettings: NotifyPGSettings {
    static let id = ProviderID.innopay
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var auth = ProviderAuth()

    public init() {}

    static var sandbox: InnopaySettings {
        var innopay = InnopaySettings()
        innopay.enabled = true
        return innopay
    }

    func makeProvider() -> any PaymentProvider { Innopay(charset: charset) }

    static func parse(
        _ table: TableReader, _ loader: ConfigLoader, _ report: inout ConfigLoader.SecretReport
    ) throws(ConfigError) -> InnopaySettings {
        try loader.parseInnopay(table, &report)
    }
}

extension Innopay: TableConfigured {
    static var settings: any NotifyPGSettings.Type { InnopaySettings.self }
}

extension Config {
    public var innopay: InnopaySettings {
        get { self[pg: InnopaySettings.self] }
        set { self[pg: InnopaySettings.self] = newValue }
    }
}

extension ConfigLoader {
    /// `[innopay]`: the authentication every PG table shares.
    func parseInnopay(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> InnopaySettings {
        var innopay = InnopaySettings()
        try table.allow(Self.authKeys.union(["enabled", "charset"]))
        innopay.enabled = try table.bool("enabled") ?? true
        innopay.charset = try table.charsetSetting("charset") ?? .cp949
        innopay.auth = try parseAuth(table, provider: .innopay, enabled: innopay.enabled, &report)
        return innopay
    }
}
