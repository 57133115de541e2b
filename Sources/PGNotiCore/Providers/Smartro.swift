/// Smartro WEBLink "결제 데이터 URL 통보" (manual v5.2 §6.4–6.6, field list §6.4, ReturnURL §3.2,
/// result codes §7).
public struct Smartro: PaymentProvider {
    /// SignValue (§6.4), checked with the merchant key.
    public static let signsNotifications = true

    public let id = ProviderID.smartro
    /// §6.5: HTTP 200 and the string "OK", nothing else, or Smartro resends.
    public let ackBody = "OK"
    public let charset: CharsetSetting
    /// Merchant keys per MID; two at once while a key is being rotated. `SecretValues` keeps
    /// them out of every description.
    let merchantKeys: [String: SecretValues]
    let signAlgorithm: SmartroSignAlgorithm

    public init(
        merchantKeys: [String: SecretValues], signAlgorithm: SmartroSignAlgorithm = .either,
        charset: CharsetSetting = .cp949
    ) {
        self.merchantKeys = merchantKeys
        self.signAlgorithm = signAlgorithm
        self.charset = charset
    }

    /// §4.4 "가맹점 테스트 계정 안내".
    public static let publishedTestMerchants = [
        TestMerchant("SMTPAY001m", source: "Smartro WEBLink manual v5.2 §4.4"),
        TestMerchant("SMTPAY002m", source: "Smartro WEBLink manual v5.2 §4.4"),
        TestMerchant("ECTEST001m", source: "Smartro WEBLink manual v5.2 §4.4"),
        TestMerchant("SMTSUB001m", source: "Smartro WEBLink manual v5.2 §4.4"),
        // The sub-mall MIDs listed beside SMTSUB001m, used in DivideInfo (§4.4, §6.1 examples).
        TestMerchant("SMTSUB002m", source: "Smartro WEBLink manual v5.2 §4.4 서브몰 MID"),
        TestMerchant("SMTSUB003m", source: "Smartro WEBLink manual v5.2 §4.4 서브몰 MID"),
        TestMerchant("SMTSUB004m", source: "Smartro WEBLink manual v5.2 §4.4 서브몰 MID"),
    ]

    static let mid: FieldKey = "MID"
    static let tid: FieldKey = "TID"
    static let otid: FieldKey = "OTID"
    static let resultCode: FieldKey = "ResultCode"
    static let resultMsg: FieldKey = "ResultMsg"
    static let signValue: FieldKey = "SignValue"
    static let payMethod: FieldKey = "PayMethod"
    static let amt: FieldKey = "Amt"
    static let fnCd = FieldKey("FnCd", "fn_cd")
    static let fnName = FieldKey("FnName", "fn_name")
    static let mallUserID = FieldKey("MallUserID", "mallUserID")
    /// §6.4 says `Name`; the ReturnURL post (§3.2) says `BuyerName`.
    static let buyerName = FieldKey("Name", "BuyerName")

    // §7 result codes, by what they mean for the payment.
    /// Approval successes: card 3001 (§7.1), transfer 4000 (§7.2), virtual-account deposit 4110
    /// (§7.3), cellphone A000 (§7.4), Toss TS10 (§7.13), Kakao KP00 (§7.14).
    static let approvalSuccess: Set<String> = ["3001", "4000", "4110", "A000", "TS10", "KP00"]
    /// Cancel and refund successes: cancel 2001 (§7.6), already canceled 2013 (§7.6 note: may be
    /// treated as a normal cancel), transfer refund 2211 (§7.7), Toss refund TS20 (§7.13).
    static let cancelSuccess: Set<String> = ["2001", "2013", "2211", "TS20"]
    /// Virtual account issued (§7.3).
    static let vbankIssued = "4100"
    /// §7 lists no codes for the gift card (CLGIFT); Smartro's codes follow the scheme in which a
    /// gift-card success is 0000. Anything else on a gift card stays a failure, so an unknown code
    /// never ships goods.
    static let giftCardSuccess = "0000"

    static func isCashReceiptCode(_ code: String) -> Bool { code.count == 4 && code.hasPrefix("70") }

    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        let mid = try fields.required(Self.mid)
        let tid = try fields.required(Self.tid)
        let resultCode = try fields.required(Self.resultCode)
        let payMethod = fields[Self.payMethod]?.uppercased()
        let stateCd = try Self.stateCd(fields)
        let otid = fields[Self.otid]
        let isPartial = otid != nil && otid != tid

        let state: String
        let kind: EventKind
        if Self.isCashReceiptCode(resultCode) {
            // §6.6: a cash receipt may be notified beside the approval of a transfer or virtual
            // account, under the same TID and StateCd. It is a fact of its own, kept apart.
            let canceled = fields["RcptCcNo"] != nil || stateCd == "1" || stateCd == "2"
            if resultCode != "7001" {
                (state, kind) = ("cash_receipt:F", .cashReceiptFailed)
            } else if canceled {
                (state, kind) = ("cash_receipt:\(stateCd ?? "2")", .cashReceiptCanceled)
            } else {
                (state, kind) = ("cash_receipt:\(stateCd ?? "0")", .cashReceiptIssued)
            }
        } else {
            let base = stateCd ?? Self.derivedState(resultCode: resultCode, payMethod: payMethod)
            kind = Self.kind(state: base, resultCode: resultCode, payMethod: payMethod, isPartial: isPartial)
            // A failure is a fact of its own, as a derived one (`F`) already is: a cancel that
            // failed (2002) and then went through (2001) under the same TID and StateCd is two
            // events, not a conflict between them.
            state = stateCd != nil && kind == .paymentFailed ? "\(base):F" : base
        }
        let authDate = KoreanTime.fromCompact(fields["AuthDate"])
        let isCancel = kind.isCancel || kind == .cashReceiptCanceled

        var notification = PaymentNotification(
            provider: id, merchantID: mid, tid: tid, state: state, kind: kind,
            originalTID: isPartial ? otid : nil, orderID: fields[.orderID],
            amount: try fields.amount(Self.amt), payMethod: payMethod, resultCode: resultCode,
            resultMessage: fields[Self.resultMsg],
            approvedAt: isCancel ? nil : authDate, canceledAt: isCancel ? authDate : nil,
            goodsName: fields["GoodsName"],
            buyer: Buyer(
                name: fields[Self.buyerName], email: fields["BuyerEmail"], phone: fields["BuyerTel"],
                userID: fields[Self.mallUserID]),
            rawFields: fields.all)
        // FnCd/FnName name the card company for cards and the bank for virtual accounts (§6.4 #15-16).
        switch payMethod {
        case "VBANK":
            notification.virtualAccount = VirtualAccount(
                bankCode: fields[Self.fnCd], bankName: fields["VbankName"] ?? fields[Self.fnName],
                accountNumber: fields["VbankNum"])
        case "BANK":
            notification.bank = BankDetails(
                code: fields["BankCode"] ?? fields[Self.fnCd],
                name: fields["BankName"] ?? fields[Self.fnName])
        default:
            // Easy-pay and gift-card posts send FnCd empty; only a value means a card.
            if payMethod == "CARD" || fields[Self.fnCd] != nil || fields["pinNo"] != nil {
                notification.card = CardDetails(
                    issuerCode: fields[Self.fnCd], issuerName: fields[Self.fnName],
                    acquirerCode: fields["AcquCardCode"], number: fields["pinNo"],
                    installmentMonths: fields.integer("CardQuota"), approvalNumber: fields["AuthCode"])
            }
        }
        let receiptType = fields["ReceiptType"]
        if Self.isCashReceiptCode(resultCode) || (receiptType != nil && receiptType != "0") {
            notification.cashReceipt = CashReceipt(
                type: receiptType == "0" ? nil : receiptType, approvalNumber: fields["RcptAppNo"],
                cancelNumber: fields["RcptCcNo"])
        }
        return notification
    }

    /// SignValue covers TID and ResultCode with the merchant key (§6.4 #28). It does not cover
    /// StateCd or Amt, so a StateCd that contradicts the result code is refused too: that is a
    /// signed approval re-posted as a cancel.
    public func verify(_ notification: PaymentNotification, _ fields: Fields) throws(Rejection) -> String? {
        let mid = notification.merchantID
        guard let keys = merchantKeys[mid], !keys.isEmpty else {
            throw Rejection(.unknownMerchant, "no merchant key configured for MID \(mid)")
        }
        guard let signValue = fields[Self.signValue] else {
            throw Rejection(.signatureMissing, "SignValue is absent")
        }
        let resultCode = notification.resultCode ?? ""
        let matched = keys.withValues { values in
            values.lazy.compactMap {
                SmartroSignature.verify(
                    signValue: signValue, tid: notification.tid, resultCode: resultCode, merchantKey: $0,
                    allowed: signAlgorithm)
            }.first
        }
        guard let matched else {
            throw Rejection(
                .signatureMismatch, "SignValue does not match TID, ResultCode and the merchant key for MID \(mid)")
        }
        if let stateCd = fields[.stateCd],
            let contradiction = Self.contradiction(stateCd: stateCd, resultCode: resultCode)
        {
            throw Rejection(.stateMismatch, contradiction)
        }
        return "signvalue-\(matched.rawValue)"
    }

    /// Why a StateCd cannot go with a result code, or nil when they agree. Cash-receipt codes
    /// carry the payment's own StateCd (§6.6), so they never contradict it.
    static func contradiction(stateCd: String, resultCode: String) -> String? {
        if isCashReceiptCode(resultCode) { return nil }
        let isApproval = approvalSuccess.contains(resultCode)
        let isCancel = cancelSuccess.contains(resultCode)
        switch stateCd {
        case "1", "2":
            guard isApproval || resultCode == vbankIssued else { return nil }
            return "StateCd \(stateCd) (a cancel) contradicts ResultCode \(resultCode), a success code of an approval"
        case "0":
            guard isCancel || resultCode == vbankIssued else { return nil }
            return "StateCd 0 (an approval) contradicts ResultCode \(resultCode), which is not an approval's"
        case "3":
            guard resultCode != vbankIssued else { return nil }
            return "StateCd 3 (virtual account issued) requires ResultCode 4100, got \(resultCode)"
        default:
            return nil
        }
    }

    /// StateCd is only sent to the RetryURL (§6.4 note); nil when the post carries none.
    static func stateCd(_ fields: Fields) throws(Rejection) -> String? {
        guard let stateCd = fields[.stateCd] else { return nil }
        guard ["0", "1", "2", "3"].contains(stateCd) else {
            throw Rejection(.invalidField, "StateCd must be 0, 1, 2 or 3")
        }
        return stateCd
    }

    /// A ReturnURL-style post carries no StateCd, so the state follows from the result code (§7)
    /// and the pay method.
    static func derivedState(resultCode: String, payMethod: String?) -> String {
        if resultCode == vbankIssued { return "3" }
        if approvalSuccess.contains(resultCode) { return "0" }
        if payMethod == "CLGIFT" && resultCode == giftCardSuccess { return "0" }
        if cancelSuccess.contains(resultCode) { return "2" }
        // A failed attempt is still a fact worth one event; its own state keeps it apart
        // from a later success under the same TID.
        return "F"
    }

    static func kind(state: String, resultCode: String, payMethod: String?, isPartial: Bool) -> EventKind {
        switch state {
        case "0":
            if payMethod == "VBANK" && resultCode == "4110" { return .vbankDeposited }
            let success =
                approvalSuccess.contains(resultCode) || (payMethod == "CLGIFT" && resultCode == giftCardSuccess)
            return success ? .paymentApproved : .paymentFailed
        case "1", "2":
            guard cancelSuccess.contains(resultCode) else { return .paymentFailed }
            return isPartial ? .paymentPartiallyCanceled : .paymentCanceled
        case "3":
            return .vbankIssued
        default:
            return .paymentFailed
        }
    }
}
