import Foundation
import PGNotiCore

public struct InnopaySettings: Sendable {
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var auth = ProviderAuth()
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
