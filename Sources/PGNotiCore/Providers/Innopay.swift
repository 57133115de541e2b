/// Innopay (Infinisoft) "카드 결제 결과 DB 처리" notification (SMS card manual v1.5 §4).
public struct Innopay: PaymentProvider {
    public let id = ProviderID.innopay
    /// §4.3: return exactly "0000"; anything else makes Innopay resend.
    public let ackBody = "0000"
    public let defaultCharset: TextCharset

    public init(defaultCharset: TextCharset = .cp949) {
        self.defaultCharset = defaultCharset
    }

    static let approved = "25"
    static let canceled = "85"

    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        guard let tid = fields["pgTid"] ?? fields["transSeq"] else {
            throw Rejection(.missingField, "required field pgTid (or transSeq) is absent or empty")
        }
        let status = try fields.required("status")
        let merchantID = fields["pgMid"] ?? fields["mid"] ?? ""
        let approvalAmount = try fields.amount("approvalAmt")
        let cancelTID = fields["cancelPgTid"]

        let kind: EventKind
        let state: String
        var amount = approvalAmount
        switch status {
        case Self.approved:
            kind = .paymentApproved
            state = status
        case Self.canceled:
            let cancelAmount = try fields.amount("cancelAmt")
            amount = cancelAmount ?? approvalAmount
            if let cancelAmount, let approvalAmount, cancelAmount < approvalAmount {
                kind = .paymentPartiallyCanceled
            } else {
                kind = .paymentCanceled
            }
            // Each partial cancel of one payment has its own cancelPgTid; keying on it keeps a
            // second partial cancel from looking like a conflicting retry of the first.
            state = cancelTID.map { "\(status):\($0)" } ?? status
        default:
            throw Rejection(.invalidField, "status must be 25 (approved) or 85 (canceled)")
        }

        var notification = PaymentNotification(
            provider: id, merchantID: merchantID, tid: tid, state: state, kind: kind,
            cancelTID: cancelTID, orderID: fields["moid"], amount: amount,
            payMethod: fields["payMethod"], resultCode: fields["pgResultCode"],
            resultMessage: fields["pgResultMsg"],
            approvedAt: KoreanTime.fromDateAndTime(fields["pgAppDate"], fields["pgAppTime"]),
            canceledAt: kind == .paymentApproved
                ? nil
                : KoreanTime.fromDateAndTime(fields["cancelAppDate"], fields["cancelAppTime"]),
            goodsName: fields["goodsName"],
            buyer: Buyer(name: fields["buyerName"], phone: fields["buyerPhoneNo"], userID: fields["userId"]),
            rawFields: fields.all)
        if fields.contains("cardNo") || fields.contains("cardIssueCode") {
            notification.card = CardDetails(
                issuerCode: fields["cardIssueCode"], issuerName: fields["cardIssueName"],
                acquirerCode: fields["cardAcquireCode"], acquirerName: fields["cardAcquireName"],
                number: fields["cardNo"], installmentMonths: fields.integer("cardQuota"),
                approvalNumber: fields["approvalNo"])
        }
        if let type = fields["cashReceiptType"] {
            notification.cashReceipt = CashReceipt(
                type: type, approvalNumber: fields["approvalNo"],
                supplyAmount: try fields.amount("cashReceiptSupplyAmt"), vat: try fields.amount("cashReceiptVat"))
        }
        notification.goods = try Self.goods(fields)
        notification.delivery = Delivery(
            zipCode: fields["zoneCode"], address: fields["address"], addressDetail: fields["addressDetail"],
            recipientName: fields["recipientName"], recipientPhone: fields["recipientPhoneNo"],
            comment: fields["comment"])
        return notification
    }

    /// §4.2.5: parallel arrays, one entry per item, sent as repeated `name[]` keys.
    static func goods(_ fields: Fields) throws(Rejection) -> [GoodsItem] {
        let codes = fields.values("goodsCodeArray")
        let names = fields.values("goodsNameArray")
        let amounts = fields.values("goodsAmtArray")
        let counts = fields.values("goodsCntArray")
        let totals = fields.values("totalAmtArray")
        let count = [codes.count, names.count, amounts.count, counts.count, totals.count].max() ?? 0
        func number(_ values: [String], _ index: Int, _ name: String) throws(Rejection) -> Int? {
            guard index < values.count, !values[index].isEmpty else { return nil }
            guard let value = Int(values[index].replacingOccurrences(of: ",", with: "")) else {
                throw Rejection(.invalidField, "\(name)[\(index)] is not a whole number")
            }
            return value
        }
        var items: [GoodsItem] = []
        for i in 0..<count {
            items.append(
                GoodsItem(
                    code: i < codes.count ? codes[i] : nil, name: i < names.count ? names[i] : nil,
                    unitAmount: try number(amounts, i, "goodsAmtArray"),
                    quantity: try number(counts, i, "goodsCntArray"),
                    totalAmount: try number(totals, i, "totalAmtArray")))
        }
        return items
    }
}
