/// What a notification means, independent of which PG sent it.
public enum EventKind: String, Sendable, Codable, CaseIterable {
    case paymentApproved = "payment.approved"
    case paymentCanceled = "payment.canceled"
    case paymentPartiallyCanceled = "payment.partially_canceled"
    case paymentFailed = "payment.failed"
    case vbankIssued = "vbank.issued"
    case vbankDeposited = "vbank.deposited"
    case cashReceiptIssued = "cash_receipt.issued"
    case cashReceiptCanceled = "cash_receipt.canceled"
    case cashReceiptFailed = "cash_receipt.failed"
    case refundFailed = "refund.failed"
    /// The outcome is not known: a request whose answer was lost (Payup timeout).
    case paymentUnknown = "payment.unknown"
    /// A second version of a stored notification with a different amount or result.
    case notificationConflict = "notification.conflict"

    public var isCancel: Bool { self == .paymentCanceled || self == .paymentPartiallyCanceled }
}

/// The nested objects of an event. Members are written in sorted order, as the whole event is.
protocol EventObject {
    func write(to json: inout JSONWriter)
}

public struct CardDetails: Sendable, Equatable, EventObject {
    public var issuerCode: String?
    public var issuerName: String?
    public var acquirerCode: String?
    public var acquirerName: String?
    /// As the PG sent it: PGs mask the middle digits before they post.
    public var number: String?
    public var installmentMonths: Int?
    public var approvalNumber: String?

    public init(
        issuerCode: String? = nil, issuerName: String? = nil, acquirerCode: String? = nil,
        acquirerName: String? = nil, number: String? = nil, installmentMonths: Int? = nil,
        approvalNumber: String? = nil
    ) {
        self.issuerCode = issuerCode
        self.issuerName = issuerName
        self.acquirerCode = acquirerCode
        self.acquirerName = acquirerName
        self.number = number
        self.installmentMonths = installmentMonths
        self.approvalNumber = approvalNumber
    }

    // Absent members are left out inside nested objects (the top level writes explicit nulls).
    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("acquirer_code", acquirerCode)
        json.optional("acquirer_name", acquirerName)
        json.optional("approval_number", approvalNumber)
        json.optional("installment_months", installmentMonths)
        json.optional("issuer_code", issuerCode)
        json.optional("issuer_name", issuerName)
        json.optional("number", number)
        json.endObject()
    }
}

public struct BankDetails: Sendable, Equatable, EventObject {
    public var code: String?
    public var name: String?
    public init(code: String? = nil, name: String? = nil) {
        self.code = code
        self.name = name
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("code", code)
        json.optional("name", name)
        json.endObject()
    }
}

public struct VirtualAccount: Sendable, Equatable, EventObject {
    public var bankCode: String?
    public var bankName: String?
    public var accountNumber: String?
    public init(bankCode: String? = nil, bankName: String? = nil, accountNumber: String? = nil) {
        self.bankCode = bankCode
        self.bankName = bankName
        self.accountNumber = accountNumber
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("account_number", accountNumber)
        json.optional("bank_code", bankCode)
        json.optional("bank_name", bankName)
        json.endObject()
    }
}

public struct CashReceipt: Sendable, Equatable, EventObject {
    /// 1 = income deduction (소득공제), 2 = proof of expense (지출증빙), as the PGs number them.
    public var type: String?
    public var approvalNumber: String?
    /// Smartro RcptCcNo: set when the receipt itself was canceled.
    public var cancelNumber: String?
    public var supplyAmount: Int?
    public var vat: Int?
    public init(
        type: String? = nil, approvalNumber: String? = nil, cancelNumber: String? = nil, supplyAmount: Int? = nil,
        vat: Int? = nil
    ) {
        self.type = type
        self.approvalNumber = approvalNumber
        self.cancelNumber = cancelNumber
        self.supplyAmount = supplyAmount
        self.vat = vat
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("approval_number", approvalNumber)
        json.optional("cancel_number", cancelNumber)
        json.optional("supply_amount", supplyAmount)
        json.optional("type", type)
        json.optional("vat", vat)
        json.endObject()
    }
}

public struct Buyer: Sendable, Equatable, EventObject {
    public var name: String?
    public var email: String?
    public var phone: String?
    public var userID: String?
    public init(name: String? = nil, email: String? = nil, phone: String? = nil, userID: String? = nil) {
        self.name = name
        self.email = email
        self.phone = phone
        self.userID = userID
    }
    var isEmpty: Bool { name == nil && email == nil && phone == nil && userID == nil }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("email", email)
        json.optional("name", name)
        json.optional("phone", phone)
        json.optional("user_id", userID)
        json.endObject()
    }
}

public struct GoodsItem: Sendable, Equatable, EventObject {
    public var code: String?
    public var name: String?
    public var unitAmount: Int?
    public var quantity: Int?
    public var totalAmount: Int?
    public init(
        code: String? = nil, name: String? = nil, unitAmount: Int? = nil, quantity: Int? = nil, totalAmount: Int? = nil
    ) {
        self.code = code
        self.name = name
        self.unitAmount = unitAmount
        self.quantity = quantity
        self.totalAmount = totalAmount
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("code", code)
        json.optional("name", name)
        json.optional("quantity", quantity)
        json.optional("total_amount", totalAmount)
        json.optional("unit_amount", unitAmount)
        json.endObject()
    }
}

public struct Delivery: Sendable, Equatable, EventObject {
    public var zipCode: String?
    public var address: String?
    public var addressDetail: String?
    public var recipientName: String?
    public var recipientPhone: String?
    public var comment: String?
    public init(
        zipCode: String? = nil, address: String? = nil, addressDetail: String? = nil,
        recipientName: String? = nil, recipientPhone: String? = nil, comment: String? = nil
    ) {
        self.zipCode = zipCode
        self.address = address
        self.addressDetail = addressDetail
        self.recipientName = recipientName
        self.recipientPhone = recipientPhone
        self.comment = comment
    }
    var isEmpty: Bool {
        [zipCode, address, addressDetail, recipientName, recipientPhone, comment].allSatisfy { $0 == nil }
    }

    func write(to json: inout JSONWriter) {
        json.beginObject()
        json.optional("address", address)
        json.optional("address_detail", addressDetail)
        json.optional("comment", comment)
        json.optional("recipient_name", recipientName)
        json.optional("recipient_phone", recipientPhone)
        json.optional("zip_code", zipCode)
        json.endObject()
    }
}

extension JSONWriter {
    mutating func optional(_ name: String, _ value: String?) {
        if let value { member(name, value) }
    }

    mutating func optional(_ name: String, _ value: Int?) {
        if let value { member(name, value) }
    }

    mutating func object(_ name: String, _ value: (some EventObject)?) {
        key(name)
        if let value { value.write(to: &self) } else { null() }
    }
}

/// One PG notification after parsing: the provider-neutral facts plus the decoded fields
/// exactly as they arrived.
public struct PaymentNotification: Sendable, Equatable {
    public var provider: ProviderID
    public var merchantID: String
    public var tid: String
    /// The PG's own state code, part of the dedup key (Smartro StateCd, Innopay status …).
    public var state: String
    public var kind: EventKind
    public var originalTID: String?
    public var cancelTID: String?
    public var orderID: String?
    /// KRW; for a cancel, the amount the PG reports as canceled.
    public var amount: Int?
    /// For a cancel, the amount that was asked for, when the PG reports it apart from `amount`.
    public var requestedAmount: Int?
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
    public var buyer: Buyer
    public var goods: [GoodsItem]
    public var delivery: Delivery?
    /// Which signature scheme verified this notification, when the PG signs at all.
    public var verifiedBy: String?
    public var rawFields: [DecodedField]

    public init(
        provider: ProviderID, merchantID: String, tid: String, state: String, kind: EventKind,
        originalTID: String? = nil, cancelTID: String? = nil, orderID: String? = nil,
        amount: Int? = nil, requestedAmount: Int? = nil, payMethod: String? = nil, resultCode: String? = nil,
        resultMessage: String? = nil, approvedAt: String? = nil, canceledAt: String? = nil,
        goodsName: String? = nil, card: CardDetails? = nil, bank: BankDetails? = nil,
        virtualAccount: VirtualAccount? = nil, cashReceipt: CashReceipt? = nil,
        buyer: Buyer = Buyer(), goods: [GoodsItem] = [], delivery: Delivery? = nil,
        verifiedBy: String? = nil, rawFields: [DecodedField] = []
    ) {
        self.provider = provider
        self.merchantID = merchantID
        self.tid = tid
        self.state = state
        self.kind = kind
        self.originalTID = originalTID
        self.cancelTID = cancelTID
        self.orderID = orderID
        self.amount = amount
        self.requestedAmount = requestedAmount
        self.payMethod = payMethod
        self.resultCode = resultCode
        self.resultMessage = resultMessage
        self.approvedAt = approvedAt
        self.canceledAt = canceledAt
        self.goodsName = goodsName
        self.card = card
        self.bank = bank
        self.virtualAccount = virtualAccount
        self.cashReceipt = cashReceipt
        self.buyer = buyer
        self.goods = goods
        self.delivery = delivery
        self.verifiedBy = verifiedBy
        self.rawFields = rawFields
    }

    /// The dedup key: one event per (provider, merchant, transaction, state).
    public var key: NotificationKey {
        NotificationKey(provider: provider, merchantID: merchantID, tid: tid, state: state)
    }

    /// What a PG retry must repeat to count as the same notification. A retry that changes the
    /// amount or the result under the same (TID, state) is a conflict an operator must see.
    public var fingerprint: String {
        Self.fingerprint(amount: amount, resultCode: resultCode)
    }

    public static func fingerprint(amount: Int?, resultCode: String?) -> String {
        "amount=\(amount.map(String.init) ?? "-");result=\(resultCode ?? "-")"
    }
}

/// The dedup key of a notification.
public struct NotificationKey: Sendable, Hashable {
    public var provider: ProviderID
    public var merchantID: String
    public var tid: String
    public var state: String

    public init(provider: ProviderID, merchantID: String, tid: String, state: String) {
        self.provider = provider
        self.merchantID = merchantID
        self.tid = tid
        self.state = state
    }
}
