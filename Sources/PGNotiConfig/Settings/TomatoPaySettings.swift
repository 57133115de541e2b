import Foundation
import PGNotiCore

public struct TomatoPaySettings: Sendable {
    public var enabled = false
    public var charset = CharsetSetting.cp949
    public var ackBody = "OK"
    public var auth = ProviderAuth()
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
