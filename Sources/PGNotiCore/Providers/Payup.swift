import Foundation

/// Payup card key-in API ("카드결제 구인증 API 규격서" v1.3). Payup notifies nobody: the result
/// of an approval (§2.1) or a cancel (§2.2) exists only in the HTTP response to the request. So
/// pgnoti's own Payup client submits one JSON document per call outcome, and this reads it:
///
/// ```
/// {"operation": "approve"|"cancel", "intent_id": "<pgnoti id>", "merchant_id": "...",
///  "order_number": "..." (approve), "amount": "..." (approve), "timestamp": "yyyyMMddHHmmss",
///  "transaction_id": "..." (cancel: the payment being canceled),
///  "outcome": "response"|"unknown", "response": {...as Payup answered...}, "error": "..." (unknown)}
/// ```
///
/// The response is signed by nothing but the TLS connection the client made, so there is
/// nothing to verify here.
public struct Payup: PaymentProvider {
    public let id = ProviderID.payup
    /// The client is ours and reads the intake's result, not an ACK.
    public let ackBody = ""
    /// §2.0: "문자 인코딩은 모두 UTF-8".
    public let charset = CharsetSetting.fixed(.utf8)

    public init() {}

    /// The content type of the client's documents.
    public static let mediaType = "application/vnd.pgnoti.payup+json"

    /// The request members of §2.1 that carry card data. A response should never echo them, but
    /// whatever the client is handed, they never become a field: fields reach the ledger, the
    /// quarantine, the event's `raw` object and debug logs. Compared as `FieldKey.normalize`d.
    static let cardData: Set<String> = ["cardno", "cardpw", "expiremonth", "expireyear", "birthday"]

    static let operation: FieldKey = "operation"
    static let intentID: FieldKey = "intent_id"
    static let merchantID: FieldKey = "merchant_id"
    static let orderNumber: FieldKey = "order_number"
    static let amount: FieldKey = "amount"
    static let transactionID: FieldKey = "transaction_id"
    static let outcome: FieldKey = "outcome"
    static let error: FieldKey = "error"
    static let responseCode: FieldKey = "response.responseCode"
    static let responseMsg: FieldKey = "response.responseMsg"
    static let responseTransactionID: FieldKey = "response.transactionId"
    static let responseAmount: FieldKey = "response.amount"
    static let authDateTime: FieldKey = "response.authDateTime"
    static let cancelDateTime: FieldKey = "response.cancelDateTime"
    static let cardName: FieldKey = "response.cardName"
    static let authNumber: FieldKey = "response.authNumber"

    /// §3.1 "성공".
    static let success = "0000"

    /// The members of Payup's answer the manual documents (§2.1 and §2.2 "응답 전문구성"). Only
    /// these are kept, stored or relayed: an answer that echoes card data (`cardNo`) or carries
    /// anything else undocumented loses it before it reaches the ledger, a log or the app.
    public static let documentedAnswer: Set<String> = [
        "responseCode", "responseMsg", "transactionId", "authDateTime", "authNumber", "orderNumber", "amount",
        "cardName", "kakaoResultCode", "noinf", "taxAmount", "vatAmount", "freeAmount", "cancelDateTime",
    ]

    /// `answer` with only its documented members. Pure.
    public static func documented(_ answer: [String: Any]) -> [String: Any] {
        answer.filter { documentedAnswer.contains($0.key) }
    }

    /// What an answer says happened, as far as it can be read.
    public enum AnswerOutcome: Sendable, Equatable {
        /// `responseCode` 0000.
        case success
        /// Any other code: Payup refused it.
        case declined(code: String)
        /// No usable `responseCode` (missing, null, empty, not text): nothing is known, and the
        /// payment may or may not have gone through.
        case unclassifiable
    }

    public static func classify(_ answer: [String: Any]) -> AnswerOutcome {
        // §2.0: every member is a string; a number would have lost the code's leading zeros.
        guard let text = answer["responseCode"] as? String else { return .unclassifiable }
        let code = text.trimmingCharacters(in: .whitespaces)
        guard !code.isEmpty else { return .unclassifiable }
        return code == success ? .success : .declined(code: code)
    }

    /// Scalar members of the document by their own names, scalar members of `response` as
    /// `response.<name>`; numbers and booleans as their JSON text. Nested objects and arrays
    /// are left out. Sorted by name, since a JSON object has no order to keep.
    public func fields(from body: [UInt8], contentType: String?) throws(Rejection) -> Fields {
        let declared = ContentType(contentType ?? "")
        guard declared.mediaType == Self.mediaType else {
            throw Rejection(
                .unsupportedMediaType,
                "Content-Type \(declared.mediaType.isEmpty ? "(none)" : declared.mediaType) is not \(Self.mediaType)")
        }
        if let label = declared.charsetLabel, TextCharset(label: label) != .utf8 {
            throw Rejection(.unsupportedCharset, "charset \(label): a Payup document is UTF-8 JSON")
        }
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body), options: .fragmentsAllowed) else {
            throw Rejection(.invalidField, "the Payup document is not JSON")
        }
        guard let object = parsed as? [String: Any] else {
            throw Rejection(.invalidField, "the Payup document is not a JSON object")
        }
        var pairs = Self.scalars(object, prefix: "")
        if let response = object["response"] as? [String: Any] {
            pairs += Self.scalars(response, prefix: "response.")
        }
        return Fields(FormBody(pairs: pairs), charset: .utf8)
    }

    private static func scalars(_ object: [String: Any], prefix: String) -> [FormPair] {
        var pairs: [FormPair] = []
        for (name, value) in object.sorted(by: { $0.key < $1.key })
        where !cardData.contains(FieldKey.normalize(name)) {
            let text: String
            switch value {
            case let string as String: text = string
            case let flag as Bool: text = flag ? "true" : "false"
            case let number as NSNumber: text = number.stringValue
            default: continue
            }
            pairs.append(FormPair(name: Array((prefix + name).utf8), value: Array(text.utf8)))
        }
        return pairs
    }

    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        let operation = try fields.required(Self.operation)
        guard operation == "approve" || operation == "cancel" else {
            throw Rejection(.invalidField, "operation must be approve or cancel")
        }
        let isApprove = operation == "approve"
        let intentID = try fields.required(Self.intentID)
        let merchantID = try fields.required(Self.merchantID)
        let orderNumber: String?
        let requestedAmount: Int?
        let canceledTID: String?
        if isApprove {
            orderNumber = try fields.required(Self.orderNumber)
            guard let amount = try fields.amount(Self.amount) else { throw Rejection.missing(Self.amount) }
            requestedAmount = amount
            canceledTID = nil
        } else {
            orderNumber = fields[Self.orderNumber]
            requestedAmount = nil
            canceledTID = try fields.required(Self.transactionID)
        }
        // Without a transaction ID of Payup's, an approval is known by its order number.
        let fallbackTID = canceledTID ?? "order:\(orderNumber ?? "")"

        var notification = PaymentNotification(
            provider: id, merchantID: merchantID, tid: fallbackTID, state: "", kind: .paymentUnknown,
            orderID: orderNumber, amount: requestedAmount, payMethod: "CARD", rawFields: fields.all)
        switch try fields.required(Self.outcome) {
        case "unknown":
            // The request may or may not have reached Payup: every such attempt is its own event.
            notification.state = "unknown:\(intentID)"
            notification.resultMessage = fields[Self.error]
        case "response":
            let code = try fields.required(Self.responseCode)
            notification.resultCode = code
            notification.resultMessage = fields[Self.responseMsg]
            switch (code == Self.success, isApprove) {
            case (true, true):
                notification.kind = .paymentApproved
                notification.tid = try fields.required(Self.responseTransactionID)
                notification.state = "approved"
                notification.amount = try fields.amount(Self.responseAmount) ?? requestedAmount
                notification.approvedAt = KoreanTime.fromCompact(fields[Self.authDateTime])
                notification.card = CardDetails(
                    issuerName: fields[Self.cardName], approvalNumber: fields[Self.authNumber])
            case (true, false):
                notification.kind = .paymentCanceled
                notification.state = "canceled"
                notification.canceledAt = KoreanTime.fromCompact(fields[Self.cancelDateTime])
            case (false, _):
                // A refused call is a fact, and a retry with a new intent may succeed: each
                // failed attempt keeps its own key.
                notification.kind = .paymentFailed
                notification.tid = fields[Self.responseTransactionID] ?? fallbackTID
                notification.state = "failed:\(intentID)"
            }
        default:
            throw Rejection(.invalidField, "outcome must be response or unknown")
        }
        return notification
    }
}
