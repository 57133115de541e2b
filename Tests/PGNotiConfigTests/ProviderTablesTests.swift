import PGNotiCore
import Testing

@testable import PGNotiConfig

/// Each notify PG is configured by its own table, reached from `ProviderID` alone: no list of PGs
/// in the loader that a new PG would have to join.
@Suite struct ProviderTablesTests {
    @Test func everyPGThatPostsNotificationsHasItsOwnTable() {
        #expect(ProviderID.tableConfigured == ProviderID.allCases.filter(\.postsNotifications))
        for id in ProviderID.tableConfigured {
            #expect(id.settingsType?.id == id, "\(id)")
        }
    }

    @Test func eachTableIsReadIntoItsPGAndOnlyThere() throws {
        let config = try ConfigLoader(environment: [:], readFile: { _ in "" }, fileExists: { _ in false }).parse(
            """
            [tomatopay]
            ack_body = "SUCCESS"
            allow_sources = ["127.0.0.1"]
            """)
        #expect(config.providers.map(\.id) == [.tomatopay])
        #expect(config.providers.first?.ackBody == "SUCCESS")
        #expect(config.auth(for: .tomatopay).allowSources.count == 1)
        #expect(config.auth(for: .innopay).allowSources.isEmpty)
    }

    @Test func theSandboxEnablesEveryPGWithItsTestMerchants() {
        let sandbox = Config.sandbox()
        for id in ProviderID.allCases {
            #expect(sandbox.providers.contains { $0.id == id }, "\(id)")
        }
        #expect(sandbox.smartro.merchantKeys[SmartroSettings.testMID] != nil)
        #expect(sandbox.tomatopay.auth.extraTestMerchants == ["tomato001m"])
    }
}
