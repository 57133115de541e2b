import Foundation

/// The normalized JSON document a consumer reads from `<queue>/new/`. Schema v1 is a contract:
/// fields may be added, never renamed or retyped.
public struct Event: Sendable, Equatable, Codable {
    public static let schemaV1 = "pgnoti.event.v1"

    public var schema: String
    public var id: String
    public var provider: ProviderID
    public var kind: EventKind
    public var merchantID: String
    public var tid: String
    public var state: String
    public var originalTID: String?
    public var cancelTID: String?
    public var orderID: String?
    public var amount: Int?
    public var currency: String
    public var payMethod: String?
    public var resultCode: String?
    public var resultMessage: String?
    public var approvedAt: String?
    public var canceledAt: String?
    public var goodsName: String?
    public var card: CardDetails?
    public var bank: BankDetails?
    public var virtualAccount: VirtualAccount?
    public var cashReceipt: CashReceipt?
    public var buyer: Buyer?
    public var goods: [GoodsItem]?
    public var delivery: Delivery?
    public var verifiedBy: String?
    public var receivedAt: String
    /// Every field as decoded, keyed by the name the PG used; repeated names become arrays.
    public var raw: [String: RawValue]

    public enum RawValue: Sendable, Equatable, Codable {
        case one(String)
        case many([String])

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let many = try? container.decode([String].self) {
                self = .many(many)
            } else {
                self = .one(try container.decode(String.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .one(let value): try container.encode(value)
            case .many(let values): try container.encode(values)
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case schema, id, provider, kind
        case merchantID = "merchant_id"
        case tid, state
        case originalTID = "original_tid"
        case cancelTID = "cancel_tid"
        case orderID = "order_id"
        case amount, currency
        case payMethod = "pay_method"
        case resultCode = "result_code"
        case resultMessage = "result_message"
        case approvedAt = "approved_at"
        case canceledAt = "canceled_at"
        case goodsName = "goods_name"
        case card, bank
        case virtualAccount = "virtual_account"
        case cashReceipt = "cash_receipt"
        case buyer, goods
        case delivery
        case verifiedBy = "verified_by"
        case receivedAt = "received_at"
        case raw
    }

    // Absent values are written as explicit nulls so consumers see one stable shape.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(schema, forKey: .schema)
        try c.encode(id, forKey: .id)
        try c.encode(provider, forKey: .provider)
        try c.encode(kind, forKey: .kind)
        try c.encode(merchantID, forKey: .merchantID)
        try c.encode(tid, forKey: .tid)
        try c.encode(state, forKey: .state)
        try c.encode(originalTID, forKey: .originalTID)
        try c.encode(cancelTID, forKey: .cancelTID)
        try c.encode(orderID, forKey: .orderID)
        try c.encode(amount, forKey: .amount)
        try c.encode(currency, forKey: .currency)
        try c.encode(payMethod, forKey: .payMethod)
        try c.encode(resultCode, forKey: .resultCode)
        try c.encode(resultMessage, forKey: .resultMessage)
        try c.encode(approvedAt, forKey: .approvedAt)
        try c.encode(canceledAt, forKey: .canceledAt)
        try c.encode(goodsName, forKey: .goodsName)
        try c.encode(card, forKey: .card)
        try c.encode(bank, forKey: .bank)
        try c.encode(virtualAccount, forKey: .virtualAccount)
        try c.encode(cashReceipt, forKey: .cashReceipt)
        try c.encode(buyer, forKey: .buyer)
        try c.encode(goods, forKey: .goods)
        try c.encode(delivery, forKey: .delivery)
        try c.encode(verifiedBy, forKey: .verifiedBy)
        try c.encode(receivedAt, forKey: .receivedAt)
        try c.encode(raw, forKey: .raw)
    }

    public init(notification n: PaymentNotification, receivedAt: Date) {
        schema = Event.schemaV1
        id = EventID.derive(provider: n.provider, merchantID: n.merchantID, tid: n.tid, state: n.state)
        provider = n.provider
        kind = n.kind
        merchantID = n.merchantID
        tid = n.tid
        state = n.state
        originalTID = n.originalTID
        cancelTID = n.cancelTID
        orderID = n.orderID
        amount = n.amount
        currency = "KRW"
        payMethod = n.payMethod
        resultCode = n.resultCode
        resultMessage = n.resultMessage
        approvedAt = n.approvedAt
        canceledAt = n.canceledAt
        goodsName = n.goodsName
        card = n.card
        bank = n.bank
        virtualAccount = n.virtualAccount
        cashReceipt = n.cashReceipt
        buyer = n.buyer.isEmpty ? nil : n.buyer
        goods = n.goods.isEmpty ? nil : n.goods
        delivery = (n.delivery?.isEmpty ?? true) ? nil : n.delivery
        verifiedBy = n.verifiedBy
        self.receivedAt = KoreanTime.iso8601(receivedAt)
        var raw: [String: RawValue] = [:]
        for field in n.rawFields {
            raw[field.name] = field.values.count == 1 ? .one(field.values[0]) : .many(field.values)
        }
        self.raw = raw
    }

    /// Stable bytes: sorted keys, so the same event always files as the same document.
    public func jsonBytes() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}

public enum EventID {
    /// Derived from the dedup key alone, so a replayed or re-filed event keeps its id and a
    /// consumer can deduplicate on it too.
    public static func derive(provider: ProviderID, merchantID: String, tid: String, state: String) -> String {
        let key = [provider.rawValue, merchantID, tid, state].joined(separator: "\u{1F}")
        return String(Digest.hex(Digest.sha256(Array(key.utf8))).prefix(32))
    }
}

public enum QueueFileName {
    /// `<microseconds since epoch, 17 digits>-<event id>.json`: lexical order is arrival order,
    /// so a consumer listing `new/` sees an approval before its cancel.
    public static func make(receivedAt: Date, eventID: String) -> String {
        let micros = max(0, Int64((receivedAt.timeIntervalSince1970 * 1_000_000).rounded(.down)))
        let digits = String(micros)
        return String(repeating: "0", count: max(0, 17 - digits.count)) + digits + "-" + eventID + ".json"
    }
}
