/// What a notification means, independent of which PG sent it.
public enum EventKind: String, Sendable, Codable, CaseIterable {
    case paymentApproved = "payment.approved"
    case paymentCanceled = "payment.canceled"
    case paymentPartiallyCanceled = "payment.partially_canceled"
    case paymentFailed = "payment.failed"
    case vbankIssued = "vbank.issued"
    case vbankDeposited = "vbank.deposited"
}

public struct CardDetails: Sendable, Equatable, Codable {
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

    enum CodingKeys: String, CodingKey {
        case issuerCode = "issuer_code"
        case issuerName = "issuer_name"
        case acquirerCode = "acquirer_code"
        case acquirerName = "acquirer_name"
        case number
        case installmentMonths = "installment_months"
        case approvalNumber = "approval_number"
    }
}

public struct BankDetails: Sendable, Equatable, Codable {
    public var code: String?
    public var name: String?
    public init(code: String? = nil, name: String? = nil) {
        self.code = code
        self.name = name
    }
}

public struct VirtualAccount: Sendable, Equatable, Codable {
    public var bankCode: String?
    public var bankName: String?
    public var accountNumber: String?
    public init(bankCode: String? = nil, bankName: String? = nil, accountNumber: String? = nil) {
        self.bankCode = bankCode
        self.bankName = bankName
        self.accountNumber = accountNumber
    }
    enum CodingKeys: String, CodingKey {
        case bankCode = "bank_code"
        case bankName = "bank_name"
        case accountNumber = "account_number"
    }
}

public struct CashReceipt: Sendable, Equatable, Codable {
    /// 1 = income deduction (소득공제), 2 = proof of expense (지출증빙), as the PGs number them.
    public var type: String?
    public var approvalNumber: String?
    public var supplyAmount: Int?
    public var vat: Int?
    public init(type: String? = nil, approvalNumber: String? = nil, supplyAmount: Int? = nil, vat: Int? = nil) {
        self.type = type
        self.approvalNumber = approvalNumber
        self.supplyAmount = supplyAmount
        self.vat = vat
    }
    enum CodingKeys: String, CodingKey {
        case type
        case approvalNumber = "approval_number"
        case supplyAmount = "supply_amount"
        case vat
    }
}

public struct Buyer: Sendable, Equatable, Codable {
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
    enum CodingKeys: String, CodingKey {
        case name, email, phone
        case userID = "user_id"
    }
}

public struct GoodsItem: Sendable, Equatable, Codable {
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
    enum CodingKeys: String, CodingKey {
        case code, name
        case unitAmount = "unit_amount"
        case quantity
        case totalAmount = "total_amount"
    }
}

public struct Delivery: Sendable, Equatable, Codable {
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
    enum CodingKeys: String, CodingKey {
        case zipCode = "zip_code"
        case address
        case addressDetail = "address_detail"
        case recipientName = "recipient_name"
        case recipientPhone = "recipient_phone"
        case comment
    }
}

/// One PG notification after parsing and verification: the provider-neutral facts plus the
/// decoded fields exactly as they arrived.
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
    public var amount: Int?
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
        amount: Int? = nil, payMethod: String? = nil, resultCode: String? = nil,
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

    /// What a PG retry must repeat to count as the same notification. A retry that changes the
    /// amount or the result under the same (TID, state) is a conflict an operator must see.
    public var fingerprint: String {
        "amount=\(amount.map(String.init) ?? "-");result=\(resultCode ?? "-")"
    }
}
