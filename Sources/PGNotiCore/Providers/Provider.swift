/// Why a request was refused. Each reason is a short stable code for logs and metrics; `detail`
/// says which field or check, never a secret.
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
    }

    public let reason: Reason
    public let detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// 403 for authenticity failures, 415 for the wrong media type, 413 for an oversized body,
    /// 400 for everything malformed.
    /// None of them is the ACK, so the PG keeps retrying while an operator fixes the cause.
    public var httpStatus: Int {
        switch reason {
        case .signatureMissing, .signatureMismatch, .unknownMerchant: 403
        case .unsupportedMediaType: 415
        case .bodyTooLarge: 413
        case .missingField, .invalidField, .unsupportedCharset: 400
        }
    }

    public var description: String { "\(reason.rawValue): \(detail)" }

    public static func missing(_ key: FieldKey) -> Rejection {
        Rejection(.missingField, "required field \(key.spellings[0]) is absent or empty")
    }
}

/// One PG: how its form reads, what it must answer. Implementations are pure: fields in,
/// notification or rejection out.
public protocol PaymentProvider: Sendable {
    var id: ProviderID { get }
    /// The exact body the PG reads as "stored, stop retrying".
    var ackBody: String { get }
    /// Used when the request declares no charset.
    var defaultCharset: TextCharset { get }
    func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification
}

extension Fields {
    func required(_ key: FieldKey) throws(Rejection) -> String {
        guard let value = self[key] else { throw Rejection.missing(key) }
        return value
    }

    /// KRW amounts are integers; PGs sometimes pad or add thousands separators.
    func amount(_ key: FieldKey) throws(Rejection) -> Int? {
        guard let text = self[key] else { return nil }
        let digits = text.replacingOccurrences(of: ",", with: "")
        guard let value = Int(digits), value >= 0 else {
            throw Rejection(.invalidField, "\(key.spellings[0]) is not a whole number of won")
        }
        return value
    }

    func integer(_ key: FieldKey) -> Int? { self[key].flatMap { Int($0) } }
}
