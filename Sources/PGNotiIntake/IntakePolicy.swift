import PGNotiConfig
import PGNotiCore

/// The part of the configuration the intake decides with: which PGs are enabled, how each is
/// authenticated, and whether this is the sandbox. A reload swaps the whole policy at once.
public struct IntakePolicy: Sendable {
    public let providers: [ProviderID: any PaymentProvider]
    public let auth: [ProviderID: ProviderAuth]
    public let sandbox: Bool

    public init(providers: [any PaymentProvider], auth: [ProviderID: ProviderAuth] = [:], sandbox: Bool = false) {
        self.providers = Dictionary(providers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.auth = auth
        self.sandbox = sandbox
    }

    public init(config: Config) {
        var auth: [ProviderID: ProviderAuth] = [:]
        for id in ProviderID.allCases { auth[id] = config.auth(for: id) }
        self.init(providers: config.providers, auth: auth, sandbox: config.sandbox)
    }

    public func isEnabled(_ id: ProviderID) -> Bool { providers[id] != nil }

    public func auth(for id: ProviderID) -> ProviderAuth { auth[id] ?? ProviderAuth() }

    /// True when the URL of `id` must carry a path secret.
    public func requiresPathSecret(_ id: ProviderID) -> Bool { !auth(for: id).pathSecrets.isEmpty }

    /// A PG's published test merchant, or one the operator added.
    public func isTestMerchant(_ merchantID: String, provider: any PaymentProvider) -> Bool {
        type(of: provider).publishedTestMerchants.contains { $0.merchantID == merchantID }
            || auth(for: provider.id).extraTestMerchants.contains(merchantID)
    }
}
