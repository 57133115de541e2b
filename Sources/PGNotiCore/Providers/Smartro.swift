/// Smartro WEBLink "결제 데이터 URL 통보" (manual v5.2 §6.4–6.6, field list §6.4, ReturnURL §3.2).
public struct Smartro: PaymentProvider {
    public let id = ProviderID.smartro
    /// §6.5: HTTP 200 and the string "OK", nothing else, or Smartro resends.
    public let ackBody = "OK"
    public let defaultCharset: TextCharset
    /// Merchant key per MID. Never printed: `description` of this type hides it.
    let merchantKeys: [String: String]
    let signAlgorithm: SmartroSignAlgorithm

    public init(
        merchantKeys: [String: String], signAlgorithm: SmartroSignAlgorithm = .either,
        defaultCharset: TextCharset = .cp949
    ) {
        self.merchantKeys = merchantKeys
        self.signAlgorithm = signAlgorithm
        self.defaultCharset = defaultCharset
    }

    static let mid: FieldKey = "MID"
    static let tid: FieldKey = "TID"
    static let otid: FieldKey = "OTID"
    static let resultCode: FieldKey = "ResultCode"
    static let resultMsg: FieldKey = "ResultMsg"
    static let signValue: FieldKey = "SignValue"
    static let payMethod: FieldKey = "PayMethod"
    static let amt: FieldKey = "Amt"
    /// §6.4 says `Name`; the ReturnURL post (§3.2) says `BuyerName`.
    static let buyerName = FieldKey("Name", "BuyerName")

    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        let mid = try fields.required(Self.mid)
        let tid = try fields.required(Self.tid)
        let resultCode = try fields.required(Self.resultCode)
        let algorithm = try verifySignature(fields, mid: mid, tid: tid, resultCode: resultCode)

        let payMethod = fields[Self.payMethod]?.uppercased()
        let state = try Self.state(fields, resultCode: resultCode, payMethod: payMethod)
        let otid = fields[Self.otid]
        let isPartial = otid != nil && otid != tid
        let kind: EventKind =
            switch state {
            case "0": payMethod == "VBANK" && resultCode == "4110" ? .vbankDeposited : .paymentApproved
            case "1": .paymentCanceled
            case "2": isPartial ? .paymentPartiallyCanceled : .paymentCanceled
            case "3": .vbankIssued
            default: .paymentFailed
            }
        let authDate = KoreanTime.fromCompact(fields["AuthDate"])
        let isCancel = kind == .paymentCanceled || kind == .paymentPartiallyCanceled

        var notification = PaymentNotification(
            provider: id, merchantID: mid, tid: tid, state: state, kind: kind,
            originalTID: isPartial ? otid : nil, orderID: fields[.orderID],
            amount: try fields.amount(Self.amt), payMethod: payMethod, resultCode: resultCode,
            resultMessage: fields[Self.resultMsg],
            approvedAt: isCancel ? nil : authDate, canceledAt: isCancel ? authDate : nil,
            goodsName: fields["GoodsName"],
            buyer: Buyer(
                name: fields[Self.buyerName], email: fields["BuyerEmail"], phone: fields["BuyerTel"],
                userID: fields[.mallUserID]),
            rawFields: fields.all)
        // FnCd/FnName name the card company for cards and the bank for virtual accounts (§6.4 #15-16).
        switch payMethod {
        case "VBANK":
            notification.virtualAccount = VirtualAccount(
                bankCode: fields[.fnCd], bankName: fields["VbankName"] ?? fields[.fnName],
                accountNumber: fields["VbankNum"])
        case "BANK":
            notification.bank = BankDetails(
                code: fields["BankCode"] ?? fields[.fnCd],
                name: fields["BankName"] ?? fields[.fnName])
        default:
            if payMethod == "CARD" || fields.contains(.fnCd) || fields.contains("pinNo") {
                notification.card = CardDetails(
                    issuerCode: fields[.fnCd], issuerName: fields[.fnName],
                    acquirerCode: fields["AcquCardCode"], number: fields["pinNo"],
                    installmentMonths: fields.integer("CardQuota"), approvalNumber: fields["AuthCode"])
            }
        }
        if let type = fields["ReceiptType"], type != "0" {
            notification.cashReceipt = CashReceipt(type: type, approvalNumber: fields["RcptAppNo"])
        }
        notification.verifiedBy = "signvalue-\(algorithm.rawValue)"
        return notification
    }

    private func verifySignature(_ fields: Fields, mid: String, tid: String, resultCode: String) throws(Rejection)
        -> SmartroSignAlgorithm
    {
        guard let key = merchantKeys[mid] else {
            throw Rejection(.unknownMerchant, "no merchant key configured for MID \(mid)")
        }
        guard let signValue = fields[Self.signValue] else {
            throw Rejection(.signatureMissing, "SignValue is absent")
        }
        guard
            let matched = SmartroSignature.verify(
                signValue: signValue, tid: tid, resultCode: resultCode,
                merchantKey: key, allowed: signAlgorithm)
        else {
            throw Rejection(
                .signatureMismatch, "SignValue does not match TID, ResultCode and the merchant key for MID \(mid)")
        }
        return matched
    }

    /// StateCd is only sent to the RetryURL (§6.4 note); a ReturnURL-style post carries none, so
    /// the state follows from the result code (§7) and the pay method.
    static func state(_ fields: Fields, resultCode: String, payMethod: String?) throws(Rejection) -> String {
        if let stateCd = fields[.stateCd] {
            guard ["0", "1", "2", "3"].contains(stateCd) else {
                throw Rejection(.invalidField, "StateCd must be 0, 1, 2 or 3")
            }
            return stateCd
        }
        switch resultCode {
        case "4100": return "3"  // 가상계좌발급성공
        case "3001", "4000", "4110", "A000", "7001": return "0"  // card, transfer, deposit, phone, cash receipt
        case "2001", "2211": return "2"  // 취소 성공, 환불 요청 성공
        default:
            // A failed attempt is still a fact worth one event; its own state keeps it apart
            // from a later success under the same TID.
            return "F"
        }
    }
}
