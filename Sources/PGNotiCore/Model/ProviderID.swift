/// The payment gateways pgnoti speaks to. The raw value is the URL path segment
/// (`/notify/{provider}`) and the `provider` field of every event.
public enum ProviderID: String, Sendable, Codable, CaseIterable, Hashable {
    case smartro
    case tomatopay
    case innopay
}
