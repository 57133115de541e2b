/// The payment gateways pgnoti speaks to. The raw value is the URL path segment
/// (`/notify/{provider}`) and the `provider` field of every event.
public enum ProviderID: String, Sendable, Codable, CaseIterable, Hashable {
    case smartro
    case tomatopay
    case innopay
    /// TossPayments transaction files (FTP push or HTTP pull), read by pgnoti itself.
    case toss
    /// Payup key-in API results, recorded by pgnoti's own Payup client.
    case payup

    /// Whether the PG posts notifications to a URL of ours. Toss rows and Payup results come in
    /// through other doors, so a `/notify/toss` URL would only be a way to forge them.
    public var postsNotifications: Bool {
        switch self {
        case .smartro, .tomatopay, .innopay: true
        case .toss, .payup: false
        }
    }

    /// The provider that reads this PG's notifications.
    public var providerType: any PaymentProvider.Type {
        switch self {
        case .smartro: Smartro.self
        case .tomatopay: TomatoPay.self
        case .innopay: Innopay.self
        case .toss: TossPayments.self
        case .payup: Payup.self
        }
    }
}
