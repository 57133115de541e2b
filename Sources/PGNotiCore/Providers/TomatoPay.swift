/// TomatoPay ARS easy-pay "결제결과 데이터 URL 통보" (manual v1.0 §4). The spec defines no
/// signature, so a TomatoPay notification is only as genuine as the path secret or source
/// allowlist the operator configures for it; pgnoti refuses to run it with neither.
public struct TomatoPay: PaymentProvider {
    public let id = ProviderID.tomatopay
    public let ackBody: String
    public let charset: CharsetSetting

    public init(ackBody: String = "OK", charset: CharsetSetting = .cp949) {
        self.ackBody = ackBody
        self.charset = charset
    }

    static let fnCd = FieldKey("FnCd", "fn_cd")
    static let fnName = FieldKey("FnName", "fn_name")
    static let name = FieldKey("Name", "name")

    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        let mid = try fields.required("MID")
        let tid = try fields.required("TID")
        let state = try fields.required(.stateCd)
        let kind: EventKind =
            switch state {
            case "0": .paymentApproved
            case "1", "2": .paymentCanceled
            default: throw Rejection(.invalidField, "StateCd must be 0, 1 or 2")
            }
        return PaymentNotification(
            provider: id, merchantID: mid, tid: tid, state: state, kind: kind,
            orderID: fields[.orderID], amount: try fields.amount("Amt"),
            payMethod: fields["PayMethod"]?.uppercased(), resultCode: fields["ResultCode"],
            resultMessage: fields["ResultMsg"], approvedAt: KoreanTime.fromCompact(fields["AuthDate"]),
            canceledAt: kind == .paymentCanceled ? KoreanTime.fromCompact(fields["CancelDate"]) : nil,
            goodsName: fields["GoodsName"],
            card: CardDetails(
                issuerCode: fields[Self.fnCd], issuerName: fields[Self.fnName],
                acquirerCode: fields["AcquCo"],
                installmentMonths: fields.integer("CardQuota"), approvalNumber: fields["AuthCode"]),
            buyer: Buyer(name: fields[Self.name], email: fields["BuyerEmail"]),
            rawFields: fields.all)
    }
}
