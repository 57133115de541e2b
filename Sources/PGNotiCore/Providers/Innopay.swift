/// Innopay (Infinisoft) "카드 결제 결과 DB 처리" notification (SMS card manual v1.5 §4). Innopay
/// signs nothing: like TomatoPay it rests on the path secret or source allowlist.
public struct Innopay: PaymentProvider {
    public let id = ProviderID.innopay
    /// §4.3: return exactly "0000"; anything else makes Innopay resend.
    public let ackBody = "0000"
    public let charset: CharsetSetting

    public init(charset: CharsetSetting = .cp949) {
        self.charset = charset
    }

    /// §1.1 publishes a test `Mid` and, per authentication type, a test `PgMID`. A notification's
    /// merchant is its `pgMid` (§4.2.1 "PG 아이디"), so both kinds of id are listed.
    public static let publishedTestMerchants = [
        TestMerchant("testpay01m", source: "Innopay SMS card manual v1.5 §1.1 TEST Mid"),
        TestMerchant("nictest14m", source: "Innopay SMS card manual v1.5 §1.1 TEST PgMID (SMS 수기)"),
        TestMerchant("2999199999", source: "Innopay SMS card manual v1.5 §1.1 TEST PgMID (SMS 인증)"),
    ]

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

        var notification = PaymentNotification(
            provider: id, merchantID: merchantID, tid: tid, state: status, kind: .paymentApproved,
            cancelTID: cancelTID, orderID: fields["moid"], amount: approvalAmount,
            payMethod: fields["payMethod"], resultCode: fields["pgResultCode"],
            resultMessage: fields["pgResultMsg"],
            approvedAt: KoreanTime.fromDateAndTime(fields["pgAppDate"], fields["pgAppTime"]),
            goodsName: fields["goodsName"],
            buyer: Buyer(name: fields["buyerName"], phone: fields["buyerPhoneNo"], userID: fields["userId"]),
            rawFields: fields.all)
        switch status {
        case Self.approved:
            break
        case Self.canceled:
            // §4.2.4: a cancel reports its own result, approved amount and approval number; the
            // pg* fields still describe the original approval. The requested amount is kept beside.
            let requested = try fields.amount("cancelAmt")
            let approvedCancel = try fields.amount("cancelApprovalAmt")
            notification.amount = approvedCancel ?? requested ?? approvalAmount
            notification.requestedAmount = requested
            notification.resultCode = fields["cancelResultCode"] ?? notification.resultCode
            notification.resultMessage = fields["cancelResultMsg"] ?? notification.resultMessage
            notification.canceledAt = KoreanTime.fromDateAndTime(fields["cancelAppDate"], fields["cancelAppTime"])
            if let canceled = notification.amount, let approvalAmount, canceled < approvalAmount {
                notification.kind = .paymentPartiallyCanceled
            } else {
                notification.kind = .paymentCanceled
            }
            // Each partial cancel of one payment has its own cancelPgTid; keying on it keeps a
            // second partial cancel from looking like a conflicting retry of the first.
            notification.state = cancelTID.map { "\(status):\($0)" } ?? status
        default:
            throw Rejection(.invalidField, "status must be 25 (approved) or 85 (canceled)")
        }

        let approvalNumber =
            status == Self.canceled ? fields["cancelApprovalNo"] ?? fields["approvalNo"] : fields["approvalNo"]
        if fields.contains("cardNo") || fields.contains("cardIssueCode") {
            notification.card = CardDetails(
                issuerCode: fields["cardIssueCode"], issuerName: fields["cardIssueName"],
                acquirerCode: fields["cardAcquireCode"], acquirerName: fields["cardAcquireName"],
                number: fields["cardNo"], installmentMonths: fields.integer("cardQuota"),
                approvalNumber: approvalNumber)
        }
        if let type = fields["cashReceiptType"] {
            notification.cashReceipt = CashReceipt(
                type: type, approvalNumber: approvalNumber,
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
            guard let value = Int(values[index].filter { $0 != "," }) else {
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
