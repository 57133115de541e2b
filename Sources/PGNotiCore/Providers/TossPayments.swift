/// TossPayments transaction files ("토스페이먼츠 거래 연동 방안": FTP push §1, HTTP pull §2).
/// Toss calls no URL of ours: pgnoti reads the day's files and submits each row on its own, as
/// its raw line bytes with a content type that says how to cut it (`RowFormat`). A quarantined
/// row therefore reads the same way when it is released.
///
/// Toss signs nothing; a row is as genuine as the FTP account or the pull it came through.
public struct TossPayments: PaymentProvider {
    public let id = ProviderID.toss
    /// Files get no answer.
    public let ackBody = ""
    public let charset: CharsetSetting

    public init(charset: CharsetSetting = .cp949) {
        self.charset = charset
    }

    /// How one submitted row is cut: the kind of file it came from and that file's delimiter.
    public struct RowFormat: Sendable, Equatable {
        public static let mediaType = "application/vnd.pgnoti.toss-row"

        public var kind: TossFile.Kind
        public var delimiter: TossFile.Delimiter
        /// Set when the file says how it is encoded (a UTF-8 byte order mark); nil: the
        /// provider's setting (CP949, as Toss writes).
        public var charset: TextCharset?

        public init(kind: TossFile.Kind, delimiter: TossFile.Delimiter, charset: TextCharset? = nil) {
            self.kind = kind
            self.delimiter = delimiter
            self.charset = charset
        }

        /// e.g. `application/vnd.pgnoti.toss-row; kind=AUTH; delimiter=semicolon`, with
        /// `; charset=utf-8` for a file that starts with a UTF-8 byte order mark.
        public var contentType: String {
            "\(Self.mediaType); kind=\(kind.rawValue); delimiter=\(delimiter.rawValue)"
                + (charset == .utf8 ? "; charset=utf-8" : "")
        }

        public init(contentType: String?) throws(Rejection) {
            let parsed = ContentType(contentType ?? "")
            guard parsed.mediaType == Self.mediaType else {
                throw Rejection(
                    .unsupportedMediaType,
                    "Content-Type \(parsed.mediaType.isEmpty ? "(none)" : parsed.mediaType) is not \(Self.mediaType)")
            }
            guard let kind = parsed.parameter("kind").flatMap({ TossFile.Kind(rawValue: $0.uppercased()) }) else {
                throw Rejection(.unsupportedMediaType, "\(Self.mediaType) needs kind=AUTH or kind=REV")
            }
            guard
                let delimiter = parsed.parameter("delimiter").flatMap({ TossFile.Delimiter(rawValue: $0.lowercased()) })
            else {
                throw Rejection(.unsupportedMediaType, "\(Self.mediaType) needs delimiter=semicolon or delimiter=comma")
            }
            self.init(kind: kind, delimiter: delimiter)
        }
    }

    static let mid: FieldKey = "mid"
    static let paytype: FieldKey = "paytype"
    static let transaction: FieldKey = "transaction"
    static let oid: FieldKey = "oid"
    static let financecode: FieldKey = "financecode"
    static let financename: FieldKey = "financename"
    static let buyerid: FieldKey = "buyerid"
    static let amount: FieldKey = "amount"
    static let paydate: FieldKey = "paydate"
    static let refunddate: FieldKey = "refunddate"
    static let authnumber: FieldKey = "authnumber"
    static let status: FieldKey = "status"

    /// §1.3 (AUTH) and §1.4 (REV), in file order; they differ only in the date's name.
    public static func fieldNames(_ kind: TossFile.Kind) -> [String] {
        [
            "mid", "paytype", "transaction", "oid", "financecode", "financename", "buyerid", "amount", "useescrow",
            kind == .auth ? "paydate" : "refunddate", "authnumber", "status",
        ]
    }

    /// §1.3 결제수단코드. CARD, BANK and VBANK are also what Smartro's events carry; an unknown
    /// code is kept as it came.
    static let payMethods = [
        "SC0010": "CARD", "SC0030": "BANK", "SC0040": "VBANK", "SC0060": "CELLPHONE", "SC0070": "PHONEBILL",
        "SC0111": "GIFT_CULTURE", "SC0112": "GIFT_GAME",
    ]
    static let card = "SC0010"

    /// §1.3 "amount NUMBER": won, digits only. No sign, no separator, no space: a row whose
    /// amount is anything else was cut or garbled, and a wrong amount filed is worse than a row
    /// refused (the quarantine keeps it for a release).
    static func won(_ text: String?) throws(Rejection) -> Int {
        guard let text else { throw Rejection.missing(Self.amount) }
        guard text.utf8.count <= 15, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let value = Int(text)
        else {
            throw Rejection(.invalidField, "amount \"\(text.prefix(32))\" is not a whole number of won (digits only)")
        }
        return value
    }

    /// §1.3/§1.4: `yyyyMMddHHmmss`, or `YYYY-MM-DD HH:MM:SS` ("포맷 … 도 가능"), and a moment
    /// that exists: month 13, 30 February or 24:00 are refused, not filed as an unknown time.
    static func moment(_ text: String?, _ name: String) throws(Rejection) -> String {
        guard let text else { throw Rejection(.missingField, "\(name) is empty") }
        let bytes = Array(text.utf8)
        let separated = Array("0000-00-00 00:00:00".utf8)
        let shaped =
            bytes.count == 14 && bytes.allSatisfy { (0x30...0x39).contains($0) }
            || bytes.count == separated.count
                && zip(bytes, separated).allSatisfy { $1 == 0x30 ? (0x30...0x39).contains($0) : $0 == $1 }
        guard shaped, let iso = KoreanTime.fromCompact(text) else {
            throw Rejection(
                .invalidField,
                "\(name) \"\(text.prefix(32))\" is not a date and time as yyyyMMddHHmmss or YYYY-MM-DD HH:MM:SS")
        }
        return iso
    }

    /// One row, cut with the delimiter its content type names. Field names are the spec's, with
    /// the date named for the kind (`paydate` or `refunddate`), which is how `interpret` tells
    /// an approval from a cancel.
    public func fields(from body: [UInt8], contentType: String?) throws(Rejection) -> Fields {
        let format = try RowFormat(contentType: contentType)
        var row = body[...]
        // A byte order mark is the file's, not the first field's (a row quarantined with one
        // before files were read without it reads the same once released).
        if TossFile.startsWithByteOrderMark(row) { row = row.dropFirst(TossFile.byteOrderMark.count) }
        while let last = row.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") { row.removeLast() }
        let values = row.split(separator: format.delimiter.byte, omittingEmptySubsequences: false)
        guard values.count == TossFile.fieldCount else {
            throw Rejection(
                .invalidField,
                "a \(format.kind.rawValue) row has \(TossFile.fieldCount) fields separated by '\(Character(Unicode.Scalar(format.delimiter.byte)))'; this one has \(values.count)"
            )
        }
        let pairs = zip(Self.fieldNames(format.kind), values).map { FormPair(name: Array($0.utf8), value: Array($1)) }
        let form = FormBody(pairs: pairs)
        if let label = ContentType(contentType ?? "").charsetLabel {
            guard let declared = TextCharset(label: label) else {
                throw Rejection(.unsupportedCharset, "charset \(label) is neither EUC-KR/CP949 nor UTF-8")
            }
            return Fields(form, charset: declared)
        }
        return Fields(form, charset: charset.resolve(for: form))
    }

    /// A row with an empty Status is refused, not guessed. The seed's own FTP REV sample (§1.6,
    /// row 3) has one, while the HTTP section (§2.6) shows the same row with 20; but REV holds
    /// failures (21) as well, and a cancel filed as done when it failed is worse than one filed
    /// late. Toss pushes the whole day again every twenty minutes, so a later push that carries
    /// the status files the row; until then it is refused as `invalid_field`, and the quarantine
    /// keeps it with that reason. Whoever reads the file must therefore take a row that changed
    /// in place (the file was rewritten, not appended to) as new.
    public func interpret(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        let kind: TossFile.Kind = fields.contains(Self.refunddate) ? .rev : .auth
        let mid = try fields.required(Self.mid)
        let transaction = try fields.required(Self.transaction)
        guard let status = fields[Self.status] else {
            throw Rejection(
                .invalidField,
                "Status is empty: the row is not filed until a later push of the file carries its status")
        }
        let eventKind: EventKind =
            switch (kind, status) {
            case (.auth, "10"): .paymentApproved
            case (.auth, "11"): .paymentFailed
            case (.rev, "20"): .paymentCanceled
            case (.rev, "21"): .refundFailed
            case (.auth, _):
                throw Rejection(.invalidField, "Status \(status) is not 10 or 11, as an AUTH row's must be")
            case (.rev, _): throw Rejection(.invalidField, "Status \(status) is not 20 or 21, as a REV row's must be")
            }
        let amount = try Self.won(fields[Self.amount])
        // paydate (AUTH) and Refunddate (REV) are what the event's time is: a row without a
        // readable one is refused, never filed with a null time.
        let at = try Self.moment(
            fields[kind == .auth ? Self.paydate : Self.refunddate], kind == .auth ? "paydate" : "refunddate")

        let state: String
        var approvedAt: String?
        var canceledAt: String?
        switch kind {
        case .auth:
            state = status
            approvedAt = at
        case .rev:
            // REV gives the day's final state of every cancel and refund, and one transaction may
            // be partly refunded twice: the time and amount keep each refund its own key, and
            // a re-read of the cumulative file repeats them exactly.
            canceledAt = at
            let digits = at.prefix(19).filter(\.isASCIIDigit)
            state = "\(status):\(digits):\(amount)"
        }

        let paytype = fields[Self.paytype]
        var notification = PaymentNotification(
            provider: id, merchantID: mid, tid: transaction, state: state, kind: eventKind,
            orderID: fields[Self.oid], amount: amount, payMethod: paytype.map { Self.payMethods[$0] ?? $0 },
            resultCode: status, approvedAt: approvedAt, canceledAt: canceledAt,
            buyer: Buyer(userID: fields[Self.buyerid]), rawFields: fields.all)
        // financecode/financename name the card company for cards and the bank (or carrier,
        // or gift-card issuer) otherwise: "결제 시 전달 받은 정보".
        let (code, name) = (fields[Self.financecode], fields[Self.financename])
        if paytype == Self.card {
            // 0 is what the samples' account transfers carry: no approval number.
            let authNumber = fields[Self.authnumber].flatMap { $0 == "0" ? nil : $0 }
            notification.card = CardDetails(issuerCode: code, issuerName: name, approvalNumber: authNumber)
        } else if code != nil || name != nil {
            notification.bank = BankDetails(code: code, name: name)
        }
        return notification
    }
}
