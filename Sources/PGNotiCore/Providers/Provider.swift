/// Why a request was refused. Each reason is a short stable code for logs, metrics and the
/// quarantine; `detail` says which field or check, never a secret. Which HTTP status a reason
/// gets is the server's business, not the core's.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, Codable, CaseIterable {
        case missingField = "missing_field"
        case invalidField = "invalid_field"
        case signatureMissing = "signature_missing"
        case signatureMismatch = "signature_mismatch"
        case unknownMerchant = "unknown_merchant"
        case unsupportedMediaType = "unsupported_media_type"
        case unsupportedCharset = "unsupported_charset"
        case bodyTooLarge = "body_too_large"
        /// The URL lacked the provider's path secret, or carried a wrong one.
        case pathSecretMismatch = "path_secret_mismatch"
        /// The client address is outside the provider's `allow_sources`.
        case sourceNotAllowed = "source_not_allowed"
        /// The MID is not in the provider's `merchants` list.
        case merchantNotAccepted = "merchant_not_accepted"
        /// A state that contradicts the result code (a signed approval re-posted as a cancel).
        case stateMismatch = "state_mismatch"
        /// A PG's published test merchant reached a production receiver.
        case testMerchant = "test_merchant"
        /// Sandbox mode takes only the PGs' test merchants: behind a reverse proxy every peer is
        /// loopback, so anything else could be a forged payment.
        case testMerchantOnly = "test_merchant_only"
        /// The client sent more than `requests_per_second_per_source` allows.
        case rateLimited = "rate_limited"
        /// Released from quarantine for a PG that is no longer enabled.
        case providerDisabled = "provider_disabled"
    }

    public let reason: Reason
    public let detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }

    public static func missing(_ key: FieldKey) -> Rejection {
        Rejection(.missingField, "required field \(key.spellings[0]) is absent or empty")
    }
}

/// A PG's published test merchant, with the manual section that lists it, so the list can be
/// checked against its source.
public struct TestMerchant: Sendable, Equatable {
    public let merchantID: String
    public let source: String

    public init(_ merchantID: String, source: String) {
        self.merchantID = merchantID
        self.source = source
    }
}

/// One PG: how its form reads, how it is verified, what it must answer. Implementations are
/// pure: fields in, notification or rejection out.
///
/// Reading and verifying are two steps on purpose. A body that reads as a notification but
/// fails verification (a wrong merchant key, say) is what an operator may want to release once
/// the key is fixed, so the quarantine keeps it longer than a body that never read at all.
public protocol PaymentProvider: Sendable {
    var id: ProviderID { get }
    /// The exact body the PG reads as "stored, stop retrying".
    var ackBody: String { get }
    /// How the body is decoded when the request declares no charset.
    var charset: CharsetSetting { get }
    /// The merchants the PG publishes for testing; their notifications are never real payments.
    static var publishedTestMerchants: [TestMerchant] { get }
    /// True when the PG signs its notifications (Smartro's SignValue), so `verify` authenticates
    /// them. A PG that signs nothing needs a path secret or an allowlist instead; the
    /// configuration asks each provider rather than keeping a list.
    static var signsNotifications: Bool { get }
    /// Decodes a submitted body into fields. The PGs that post forms share one reading; a source
    /// whose bodies are not forms (a Toss file row, a Payup result) brings its own, so that raw
    /// fields, lossy-field flags and the quarantine work the same for every door.
    func fields(from body: [UInt8], contentType: String?) throws(Rejection) -> Fields
    /// Reads the fields into a notification, checking only their shape.
    func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification
    /// Checks what a forger could have changed: signatures and consistency. Returns the scheme
    /// that verified the notification (`nil` when the PG signs nothing).
    func verify(_ notification: PaymentNotification, _ fields: Fields) throws(Rejection) -> String?
}

extension PaymentProvider {
    public static var publishedTestMerchants: [TestMerchant] { [] }
    public static var signsNotifications: Bool { false }

    public func fields(from body: [UInt8], contentType: String?) throws(Rejection) -> Fields {
        try Fields.decoding(body, contentType: contentType, charset: charset)
    }

    public func verify(_ notification: PaymentNotification, _ fields: Fields) throws(Rejection) -> String? { nil }
}

extension Fields {
    func required(_ key: FieldKey) throws(Rejection) -> String {
        guard let value = self[key] else { throw Rejection.missing(key) }
        return value
    }

    /// KRW amounts are integers; PGs sometimes pad or add thousands separators.
    func amount(_ key: FieldKey) throws(Rejection) -> Int? {
        guard let text = self[key] else { return nil }
        let digits = text.filter { $0 != "," }
        guard let value = Int(digits), value >= 0 else {
            throw Rejection(.invalidField, "\(key.spellings[0]) is not a whole number of won")
        }
        return value
    }

    func integer(_ key: FieldKey) -> Int? { self[key].flatMap { Int($0) } }
}
