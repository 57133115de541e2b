import Foundation

/// The normalized JSON document a consumer reads from `<queue>/new/`. Schema v1 is a contract:
/// fields may be added, never renamed or retyped.
///
/// Every top-level member is always present (`null` when unknown), in sorted key order, so the
/// same event always files as the same bytes.
public struct Event: Sendable, Equatable {
    public static let schemaV1 = "pgnoti.event.v1"

    public var id: String
    public var notification: PaymentNotification
    public var kind: EventKind
    /// When pgnoti first received the notification (kept across a quarantine release).
    public var receivedAt: Date
    /// True for a PG's published test merchant, and for everything a sandbox files.
    public var isTest: Bool
    /// Filed by `pgnoti serve` without a configuration (sandbox mode): never a real payment.
    public var isSandbox = false
    /// The charset the body was decoded with.
    public var charset: TextCharset?
    /// Fields whose bytes were not valid in `charset`.
    public var lossyFields: [String]
    /// Set on `notification.conflict` events.
    public var conflict: Conflict?

    /// The two versions behind a `notification.conflict` event.
    public struct Conflict: Sendable, Equatable {
        /// The id of the event filed for the stored version.
        public var conflictsWith: String
        public var storedAmount: Int?
        public var storedResultCode: String?

        public init(conflictsWith: String, storedAmount: Int?, storedResultCode: String?) {
            self.conflictsWith = conflictsWith
            self.storedAmount = storedAmount
            self.storedResultCode = storedResultCode
        }
    }

    public init(
        notification: PaymentNotification, receivedAt: Date, isTest: Bool = false, charset: TextCharset? = nil,
        lossyFields: [String] = []
    ) {
        self.id = EventID.derive(notification.key)
        self.notification = notification
        self.kind = notification.kind
        self.receivedAt = receivedAt
        self.isTest = isTest
        self.charset = charset
        self.lossyFields = lossyFields
    }

    /// The event for a version of `notification` that contradicts the one stored as `storedEventID`.
    public func asConflict(with storedEventID: String, storedAmount: Int?, storedResultCode: String?) -> Event {
        var event = self
        event.id = EventID.derive(notification.key, fingerprint: notification.fingerprint)
        event.kind = .notificationConflict
        event.conflict = Conflict(
            conflictsWith: storedEventID, storedAmount: storedAmount, storedResultCode: storedResultCode)
        return event
    }

    /// Raw fields that carry personal data no consumer needs in clear: Smartro's BuyerAuthNum is
    /// part of a resident registration number (§6.4 #21).
    static let maskedRawFields: Set<String> = ["buyerauthnum"]

    public func jsonBytes() -> [UInt8] {
        let n = notification
        var json = JSONWriter(capacity: 2048)
        json.beginObject()
        json.member("amount", n.amount)
        json.member("approved_at", n.approvedAt)
        json.object("bank", n.bank)
        json.object("buyer", n.buyer.isEmpty ? nil : n.buyer)
        json.member("cancel_tid", n.cancelTID)
        json.member("canceled_at", n.canceledAt)
        json.object("card", n.card)
        json.object("cash_receipt", n.cashReceipt)
        json.member("charset", charset?.label)
        json.key("conflict")
        if let conflict {
            json.beginObject()
            json.key("received")
            json.beginObject()
            json.member("amount", n.amount)
            json.member("result_code", n.resultCode)
            json.endObject()
            json.key("stored")
            json.beginObject()
            json.member("amount", conflict.storedAmount)
            json.member("result_code", conflict.storedResultCode)
            json.endObject()
            json.endObject()
        } else {
            json.null()
        }
        json.member("conflicts_with", conflict?.conflictsWith)
        json.member("currency", "KRW")
        json.object("delivery", (n.delivery?.isEmpty ?? true) ? nil : n.delivery)
        json.key("goods")
        if n.goods.isEmpty {
            json.null()
        } else {
            json.beginArray()
            for item in n.goods { item.write(to: &json) }
            json.endArray()
        }
        json.member("goods_name", n.goodsName)
        json.member("id", id)
        json.member("kind", kind.rawValue)
        json.member("lossy_fields", strings: lossyFields)
        json.member("merchant_id", n.merchantID)
        json.member("order_id", n.orderID)
        json.member("original_tid", n.originalTID)
        json.member("pay_method", n.payMethod)
        json.member("provider", n.provider.rawValue)
        json.member("purged", false)
        json.key("raw")
        writeRaw(n.rawFields, to: &json)
        json.member("received_at", KoreanTime.iso8601(receivedAt))
        json.member("requested_amount", n.requestedAmount)
        json.member("result_code", n.resultCode)
        json.member("result_message", n.resultMessage)
        json.member("sandbox", isSandbox)
        json.member("schema", Self.schemaV1)
        json.member("state", n.state)
        json.member("test", isTest)
        json.member("tid", n.tid)
        json.member("verified_by", n.verifiedBy)
        json.object("virtual_account", n.virtualAccount)
        json.endObject()
        return json.bytes
    }

    /// Every field as decoded, keyed by the name the PG used and sorted; repeated names become arrays.
    private func writeRaw(_ fields: [DecodedField], to json: inout JSONWriter) {
        json.beginObject()
        for field in fields.sorted(by: { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }) {
            let masked = Self.maskedRawFields.contains(FieldKey.normalize(field.name))
            let values = masked ? field.values.map { $0.isEmpty ? $0 : Masking.secret($0) } : field.values
            if values.count == 1 {
                json.member(field.name, values[0])
            } else {
                json.member(field.name, strings: values)
            }
        }
        json.endObject()
    }
}

extension Event {
    /// Members of a v1 document that carry personal data (names, phones, e-mails, addresses,
    /// recipients, the decoded request) or the request itself; a purge empties them.
    static let personalMembers: Set<String> = ["buyer", "delivery", "raw"]

    /// The document a purge leaves: every v1 member kept, so a consumer that reads `test`,
    /// `currency` or `verified_by` reads them as before, with the personal members null (`raw`
    /// an empty object) and `purged: true`. Nil when `stored` is not a JSON object. Pure.
    public static func purgedDocument(from stored: [UInt8]) -> [UInt8]? {
        guard
            let object = try? JSONSerialization.jsonObject(with: Data(stored), options: [.fragmentsAllowed])
                as? [String: Any]
        else { return nil }
        var document = object
        for member in personalMembers where document[member] != nil { document[member] = NSNull() }
        document["raw"] = [String: Any]()
        document["purged"] = true
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return nil }
        return Array(data)
    }
}

extension Event {
    /// What a ledger's columns still say about an event whose stored document cannot be read.
    public struct LedgerFacts: Sendable, Equatable {
        public var eventID: String
        public var provider: String
        public var kind: String?
        public var merchantID: String
        public var orderID: String?
        public var tid: String
        public var state: String
        public var amount: Int?
        public var resultCode: String?
        public var receivedAt: Date

        public init(
            eventID: String, provider: String, kind: String?, merchantID: String, orderID: String?, tid: String,
            state: String, amount: Int?, resultCode: String?, receivedAt: Date
        ) {
            self.eventID = eventID
            self.provider = provider
            self.kind = kind
            self.merchantID = merchantID
            self.orderID = orderID
            self.tid = tid
            self.state = state
            self.amount = amount
            self.resultCode = resultCode
            self.receivedAt = receivedAt
        }
    }

    /// The document a purge leaves for a stored one, or, for a row without a readable stored
    /// document (none of pgnoti's own), the facts the ledger's columns still hold. Pure.
    public static func purgedDocument(from stored: [UInt8]?, facts: LedgerFacts) -> [UInt8] {
        if let stored, let document = purgedDocument(from: stored) { return document }
        var json = JSONWriter()
        json.beginObject()
        json.member("amount", facts.amount)
        json.member("id", facts.eventID)
        json.member("kind", facts.kind)
        json.member("merchant_id", facts.merchantID)
        json.member("order_id", facts.orderID)
        json.member("provider", facts.provider)
        json.member("purged", true)
        json.member("received_at", KoreanTime.iso8601(facts.receivedAt))
        json.member("result_code", facts.resultCode)
        json.member("schema", Event.schemaV1)
        json.member("state", facts.state)
        json.member("tid", facts.tid)
        json.endObject()
        return json.bytes
    }
}

public enum EventID {
    /// Derived from the dedup key alone, so a replayed or re-filed event keeps its id and a
    /// consumer can deduplicate on it too. A conflict's id also covers the version it carries.
    public static func derive(_ key: NotificationKey, fingerprint: String? = nil) -> String {
        var parts = [key.provider.rawValue, key.merchantID, key.tid, key.state]
        if let fingerprint { parts.append(fingerprint) }
        let text = parts.joined(separator: "\u{1F}")
        return String(Digest.hex(Digest.sha256(Array(text.utf8))).prefix(32))
    }
}
