import Foundation
import Testing

@testable import PGNotiCore

/// Builds the Fields a PG post would produce. Values are given as text and encoded as CP949
/// percent-escapes the way the PGs send them.
func fields(_ pairs: [(String, String)], charset: TextCharset = .cp949) -> Fields {
    let body = pairs.map { name, value in "\(name)=\(percentEncodedCP949(value))" }.joined(separator: "&")
    return Fields(FormBody(parsing: Array(body.utf8)), charset: charset)
}

/// Only the syllables the tests use; enough to keep the tests free of an encoder of their own.
let cp949Bytes: [Character: [UInt8]] = [
    "홍": [0xC8, 0xAB], "길": [0xB1, 0xE6], "동": [0xB5, 0xBF], "똠": [0x8C, 0x63], "사": [0xBB, 0xE7], "과": [0xB0, 0xFA],
]

func percentEncodedCP949(_ text: String) -> String {
    var out = ""
    for ch in text {
        if let bytes = cp949Bytes[ch] {
            out += bytes.map { String(format: "%%%02X", $0) }.joined()
        } else if ch == " " {
            out += "+"
        } else if ch.isASCII && (ch.isLetter || ch.isNumber || "-_.*".contains(ch)) {
            out.append(ch)
        } else {
            out += String(ch).utf8.map { String(format: "%%%02X", $0) }.joined()
        }
    }
    return out
}

let publishedSmartroKey = "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="
let smartro = Smartro(merchantKeys: ["SMTPAY001m": SecretValues([publishedSmartroKey])])

extension PaymentProvider {
    /// Reads and verifies, as the intake does.
    func accept(_ fields: Fields) throws(Rejection) -> PaymentNotification {
        var n = try interpret(fields)
        n.verifiedBy = try verify(n, fields)
        return n
    }
}

func smartroPost(
    tid: String = "SMTPAY001m01012411231530001234", resultCode: String = "3001", extra: [(String, String)],
    algorithm: SmartroSignAlgorithm = .md5
) -> Fields {
    let sign = SmartroSignature.make(
        tid: tid, resultCode: resultCode, merchantKey: publishedSmartroKey, algorithm: algorithm)
    return fields([("MID", "SMTPAY001m"), ("TID", tid), ("ResultCode", resultCode)] + extra + [("SignValue", sign)])
}

@Suite struct SmartroMappingTests {
    @Test func cardApprovalMapsEveryFact() throws {
        let n = try smartro.accept(
            smartroPost(extra: [
                ("PayMethod", "CARD"), ("Amt", "15000"), ("Name", "홍길똠"), ("GoodsName", "사과"), ("OID", "ORD-1"),
                ("AuthDate", "241123153000"), ("AuthCode", "30012345"), ("StateCd", "0"), ("FnCd", "04"),
                ("pinNo", "53651234****1234"), ("CardQuota", "03"), ("BuyerEmail", "a@example.com"),
                ("MallUserID", "u1"),
            ]))
        #expect(n.kind == .paymentApproved)
        #expect(n.state == "0")
        #expect(n.amount == 15000)
        #expect(n.merchantID == "SMTPAY001m")
        #expect(n.orderID == "ORD-1")
        #expect(n.buyer.name == "홍길똠")
        #expect(n.buyer.userID == "u1")
        #expect(n.goodsName == "사과")
        #expect(n.approvedAt == "2024-11-23T15:30:00+09:00")
        #expect(n.canceledAt == nil)
        #expect(n.card?.issuerCode == "04")
        #expect(n.card?.installmentMonths == 3)
        #expect(n.card?.number == "53651234****1234")
        #expect(n.originalTID == nil)
        #expect(n.fingerprint == "amount=15000;result=3001")
    }

    @Test(arguments: [("1", EventKind.paymentCanceled), ("2", .paymentCanceled), ("3", .vbankIssued)])
    func stateCodesMapToKinds(state: String, kind: EventKind) throws {
        let n = try smartro.accept(
            smartroPost(
                resultCode: state == "3" ? "4100" : "2001",
                extra: [
                    ("StateCd", state), ("PayMethod", state == "3" ? "VBANK" : "CARD"), ("AuthDate", "241124091500"),
                ]))
        #expect(n.kind == kind)
        #expect(n.state == state)
        if kind == .paymentCanceled {
            #expect(n.canceledAt == "2024-11-24T09:15:00+09:00")
            #expect(n.approvedAt == nil)
        }
    }

    @Test func partialCancelCarriesTheOriginalTID() throws {
        let n = try smartro.accept(
            smartroPost(
                tid: "SMTPAY001m01012411241000009999", resultCode: "2001",
                extra: [("StateCd", "2"), ("OTID", "SMTPAY001m01012411231530001234"), ("Amt", "5000")]))
        #expect(n.kind == .paymentPartiallyCanceled)
        #expect(n.originalTID == "SMTPAY001m01012411231530001234")
        #expect(n.amount == 5000)
    }

    @Test func fullCancelWithOTIDEqualToTIDIsNotPartial() throws {
        let tid = "SMTPAY001m01012411231530001234"
        let n = try smartro.accept(
            smartroPost(tid: tid, resultCode: "2001", extra: [("StateCd", "2"), ("OTID", tid)]))
        #expect(n.kind == .paymentCanceled)
        #expect(n.originalTID == nil)
    }

    @Test func virtualAccountIssueAndDepositAreDistinctStates() throws {
        let issued = try smartro.accept(
            smartroPost(
                resultCode: "4100",
                extra: [
                    ("PayMethod", "VBANK"), ("StateCd", "3"), ("FnCd", "004"), ("VbankNum", "12345678901234"),
                    ("VbankName", "사과"),
                ]))
        let deposited = try smartro.accept(
            smartroPost(resultCode: "4110", extra: [("PayMethod", "VBANK"), ("StateCd", "0")]))
        #expect(issued.kind == .vbankIssued)
        #expect(issued.virtualAccount?.accountNumber == "12345678901234")
        #expect(issued.virtualAccount?.bankCode == "004")
        #expect(deposited.kind == .vbankDeposited)
        #expect(issued.state != deposited.state)
    }

    @Test(arguments: [
        ("3001", "CARD", "0", EventKind.paymentApproved), ("4100", "VBANK", "3", .vbankIssued),
        ("4110", "VBANK", "0", .vbankDeposited), ("4000", "BANK", "0", .paymentApproved),
        ("2001", "CARD", "2", .paymentCanceled), ("3011", "CARD", "F", .paymentFailed),
    ])
    func absentStateCdIsDerivedFromResultCode(code: String, method: String, state: String, kind: EventKind) throws {
        let n = try smartro.accept(smartroPost(resultCode: code, extra: [("PayMethod", method)]))
        #expect(n.state == state)
        #expect(n.kind == kind)
    }

    @Test func returnURLSpellingsAndLowercaseVariantsAreRead() throws {
        let n = try smartro.accept(
            smartroPost(extra: [
                ("PayMethod", "CARD"), ("BuyerName", "홍길동"), ("mallUserID", "u9"), ("fn_cd", "06"), ("fn_name", "사과"),
                ("state_cd", "0"),
            ]))
        #expect(n.buyer.name == "홍길동")
        #expect(n.buyer.userID == "u9")
        #expect(n.card?.issuerCode == "06")
        #expect(n.state == "0")
    }

    @Test func rejectionsNameTheirReason() {
        #expect(throws: Rejection(.missingField, "required field TID is absent or empty")) {
            try smartro.accept(fields([("MID", "SMTPAY001m"), ("ResultCode", "3001")]))
        }
        #expect(throws: Rejection.self) {
            try smartro.accept(fields([("MID", "SMTPAY001m"), ("TID", "x"), ("ResultCode", "3001")]))
        }
        do {
            _ = try smartro.accept(
                fields([("MID", "SMTPAY001m"), ("TID", "SMTPAY001m01012411231530001234"), ("ResultCode", "3001")]))
            Issue.record("unsigned accepted")
        } catch { #expect(error.reason == .signatureMissing) }
        do {
            _ = try Smartro(merchantKeys: [:]).accept(smartroPost(extra: []))
            Issue.record("unknown MID accepted")
        } catch { #expect(error.reason == .unknownMerchant) }
        do {
            var tampered = smartroPost(extra: [])
            tampered = fields([
                ("MID", "SMTPAY001m"), ("TID", "SMTPAY001m01012411231530001234"), ("ResultCode", "3002"),
                (
                    "SignValue",
                    SmartroSignature.make(
                        tid: "SMTPAY001m01012411231530001234", resultCode: "3001", merchantKey: publishedSmartroKey,
                        algorithm: .md5)
                ),
            ])
            _ = try smartro.accept(tampered)
            Issue.record("tampered result accepted")
        } catch { #expect(error.reason == .signatureMismatch) }
        do {
            _ = try smartro.accept(smartroPost(extra: [("StateCd", "7")]))
            Issue.record("StateCd 7 accepted")
        } catch { #expect(error.reason == .invalidField) }
        do {
            _ = try smartro.accept(smartroPost(extra: [("Amt", "12a")]))
            Issue.record("bad amount accepted")
        } catch { #expect(error.reason == .invalidField) }
    }

    @Test func signAlgorithmSettingRestrictsWhatVerifies() throws {
        let md5Only = Smartro(merchantKeys: ["SMTPAY001m": SecretValues([publishedSmartroKey])], signAlgorithm: .md5)
        #expect(throws: Rejection.self) { try md5Only.accept(smartroPost(extra: [], algorithm: .sha256)) }
        #expect(try md5Only.accept(smartroPost(extra: [], algorithm: .md5)).verifiedBy == "signvalue-md5")
        #expect(try smartro.accept(smartroPost(extra: [], algorithm: .sha256)).verifiedBy == "signvalue-sha256")
    }

    @Test func rejectionTextNeverCarriesTheKey() {
        do {
            _ = try smartro.accept(
                fields([
                    ("MID", "SMTPAY001m"), ("TID", "SMTPAY001m01012411231530001234"), ("ResultCode", "3001"),
                    ("SignValue", "AAAA"),
                ]))
        } catch {
            #expect(!error.description.contains(publishedSmartroKey))
            #expect(!error.detail.contains("0/4GF"))
        }
    }
}

@Suite struct TomatoPayMappingTests {
    let tomato = TomatoPay()

    @Test func approvalAndBothCancels() throws {
        let base: [(String, String)] = [
            ("PayMethod", "CARD"), ("MID", "tomato001m"), ("Amt", "3000"), ("Name", "홍길동"),
            ("TID", "T1"), ("OID", "O1"), ("AuthDate", "241123100000"), ("CancelDate", "241124110000"),
            ("FnCd", "04"), ("AcquCo", "04"), ("CardQuota", "00"), ("ResultCode", "3001"),
        ]
        let approved = try tomato.interpret(fields(base + [("StateCd", "0")]))
        #expect(approved.kind == .paymentApproved)
        #expect(approved.buyer.name == "홍길동")
        #expect(approved.approvedAt == "2024-11-23T10:00:00+09:00")
        #expect(approved.canceledAt == nil)
        #expect(approved.card?.acquirerCode == "04")
        for state in ["1", "2"] {
            let canceled = try tomato.interpret(fields(base + [("StateCd", state)]))
            #expect(canceled.kind == .paymentCanceled)
            #expect(canceled.state == state)
            #expect(canceled.canceledAt == "2024-11-24T11:00:00+09:00")
        }
        do {
            _ = try tomato.interpret(fields(base + [("StateCd", "3")]))
            Issue.record("StateCd 3 accepted")
        } catch {
            #expect(error.reason == .invalidField)
        }
        do {
            _ = try tomato.interpret(fields(base))
            Issue.record("no StateCd accepted")
        } catch {
            #expect(error.reason == .missingField)
        }
    }

    @Test func ackBodyIsConfigurable() {
        #expect(TomatoPay().ackBody == "OK")
        #expect(TomatoPay(ackBody: "SUCCESS").ackBody == "SUCCESS")
    }
}

@Suite struct InnopayMappingTests {
    let innopay = Innopay()
    let approval: [(String, String)] = [
        ("transSeq", "S1"), ("moid", "M1"), ("goodsName", "사과"), ("buyerName", "홍길동"), ("payMethod", "02"),
        ("pgMid", "testpay01m"), ("status", "25"), ("pgResultCode", "3001"), ("pgAppDate", "20241123"),
        ("pgAppTime", "153012"), ("pgTid", "P1"), ("approvalAmt", "39000"), ("approvalNo", "A1"),
        ("cardNo", "536512******1234"),
        ("cardQuota", "00"), ("cardIssueCode", "04"),
        ("goodsSize", "2"), ("goodsCodeArray[]", "G1"), ("goodsNameArray[]", "사과"), ("goodsAmtArray[]", "10000"),
        ("goodsCntArray[]", "1"), ("totalAmtArray[]", "10000"), ("goodsCodeArray[]", "G2"), ("goodsNameArray[]", "홍길동"),
        ("goodsAmtArray[]", "29000"), ("goodsCntArray[]", "1"), ("totalAmtArray[]", "29000"),
        ("zoneCode", "06236"), ("address", "서울"), ("recipientName", "홍길동"),
    ]

    @Test func approvalWithGoodsArraysAndDelivery() throws {
        let n = try innopay.interpret(fields(approval))
        #expect(n.kind == .paymentApproved)
        #expect(n.tid == "P1")
        #expect(n.state == "25")
        #expect(n.merchantID == "testpay01m")
        #expect(n.amount == 39000)
        #expect(n.approvedAt == "2024-11-23T15:30:12+09:00")
        #expect(n.goods.map(\.code) == ["G1", "G2"])
        #expect(n.goods.map(\.name) == ["사과", "홍길동"])
        #expect(n.goods.map(\.totalAmount) == [10000, 29000])
        #expect(n.delivery?.zipCode == "06236")
        #expect(n.card?.number == "536512******1234")
    }

    @Test func fullAndPartialCancelsAreSeparateEvents() throws {
        let full = try innopay.interpret(
            fields(
                approval.filter { $0.0 != "status" } + [
                    ("status", "85"), ("cancelAmt", "39000"), ("cancelPgTid", "C1"), ("cancelAppDate", "20241124"),
                    ("cancelAppTime", "091533"),
                ]))
        #expect(full.kind == .paymentCanceled)
        #expect(full.state == "85:C1")
        #expect(full.cancelTID == "C1")
        #expect(full.canceledAt == "2024-11-24T09:15:33+09:00")
        let partial1 = try innopay.interpret(
            fields(
                approval.filter { $0.0 != "status" } + [("status", "85"), ("cancelAmt", "9000"), ("cancelPgTid", "C2")])
        )
        let partial2 = try innopay.interpret(
            fields(
                approval.filter { $0.0 != "status" } + [("status", "85"), ("cancelAmt", "9000"), ("cancelPgTid", "C3")])
        )
        #expect(partial1.kind == .paymentPartiallyCanceled)
        #expect(partial1.amount == 9000)
        #expect(partial1.state != partial2.state)
    }

    @Test func transSeqStandsInForAMissingPgTid() throws {
        let n = try innopay.interpret(fields(approval.filter { $0.0 != "pgTid" }))
        #expect(n.tid == "S1")
    }

    @Test func missingStatusOrUnknownStatusIsRejected() {
        do {
            _ = try innopay.interpret(fields(approval.filter { $0.0 != "status" }))
            Issue.record("accepted")
        } catch {
            #expect(error.reason == .missingField)
        }
        do {
            _ = try innopay.interpret(fields(approval.filter { $0.0 != "status" } + [("status", "99")]))
            Issue.record("accepted")
        } catch {
            #expect(error.reason == .invalidField)
        }
        #expect(innopay.ackBody == "0000")
    }
}

@Suite struct EventTests {
    @Test func eventIdDependsOnlyOnTheDedupKey() throws {
        func key(_ provider: ProviderID, _ state: String) -> NotificationKey {
            NotificationKey(provider: provider, merchantID: "M", tid: "T", state: state)
        }
        let a = EventID.derive(key(.smartro, "0"))
        #expect(a == EventID.derive(key(.smartro, "0")))
        #expect(a != EventID.derive(key(.smartro, "1")))
        #expect(a != EventID.derive(key(.tomatopay, "0")))
        #expect(a != EventID.derive(key(.smartro, "0"), fingerprint: "amount=1;result=3001"))
        #expect(a.count == 32)
    }

    @Test func schemaV1DocumentHasStableShapeAndKoreanTime() throws {
        let n = try smartro.interpret(
            smartroPost(extra: [("PayMethod", "CARD"), ("Amt", "15000"), ("StateCd", "0"), ("Name", "홍길동")]))
        let event = Event(notification: n, receivedAt: Date(timeIntervalSince1970: 1_732_343_400))
        let json = try JSONSerialization.jsonObject(with: Data(event.jsonBytes())) as! [String: Any]
        #expect(json["schema"] as? String == "pgnoti.event.v1")
        #expect(json["kind"] as? String == "payment.approved")
        #expect(json["amount"] as? Int == 15000)
        #expect(json["currency"] as? String == "KRW")
        #expect(json["received_at"] as? String == "2024-11-23T15:30:00.000+09:00")
        #expect(json.keys.contains("original_tid"))
        #expect(json["original_tid"] is NSNull)
        #expect((json["raw"] as? [String: Any])?["Name"] as? String == "홍길동")
        // Stable: the same notification read again files as the same bytes, keys in sorted order.
        let again = Event(
            notification: try smartro.interpret(
                smartroPost(extra: [("PayMethod", "CARD"), ("Amt", "15000"), ("StateCd", "0"), ("Name", "홍길동")])),
            receivedAt: Date(timeIntervalSince1970: 1_732_343_400))
        #expect(again.jsonBytes() == event.jsonBytes())
        // The whole document, written out by hand from the v1 schema (README, "The event"): every
        // member in sorted key order, nulls kept, Korean as UTF-8, no whitespace. SignValue is the
        // request's own (the published test key's MD5 sign); the id is the derived one the
        // README's conflict example names for this TID.
        let expected = [
            #""amount":15000"#,
            #""approved_at":null"#,
            #""bank":null"#,
            #""buyer":{"name":"홍길동"}"#,
            #""cancel_tid":null"#,
            #""canceled_at":null"#,
            #""card":{}"#,
            #""cash_receipt":null"#,
            #""charset":null"#,
            #""conflict":null"#,
            #""conflicts_with":null"#,
            #""currency":"KRW""#,
            #""delivery":null"#,
            #""goods":null"#,
            #""goods_name":null"#,
            #""id":"03ea21ceadd66293f4616eaa4b607d99""#,
            #""kind":"payment.approved""#,
            #""lossy_fields":[]"#,
            #""merchant_id":"SMTPAY001m""#,
            #""order_id":null"#,
            #""original_tid":null"#,
            #""pay_method":"CARD""#,
            #""provider":"smartro""#,
            #""purged":false"#,
            #""raw":{"Amt":"15000","MID":"SMTPAY001m","Name":"홍길동","PayMethod":"CARD","ResultCode":"3001","SignValue":"YTVkYTRjMDRkYTY0OTFkNzUwODU4ZWQ5YTc2Y2Y5MDY=","StateCd":"0","TID":"SMTPAY001m01012411231530001234"}"#,
            #""received_at":"2024-11-23T15:30:00.000+09:00""#,
            #""requested_amount":null"#,
            #""result_code":"3001""#,
            #""result_message":null"#,
            #""sandbox":false"#,
            #""schema":"pgnoti.event.v1""#,
            #""state":"0""#,
            #""test":false"#,
            #""tid":"SMTPAY001m01012411231530001234""#,
            #""verified_by":null"#,
            #""virtual_account":null"#,
        ]
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self) == "{" + expected.joined(separator: ",") + "}")
        let text = String(decoding: event.jsonBytes(), as: UTF8.self)
        let topLevel = json.keys.sorted()
        let positions = topLevel.map { text.range(of: "\"\($0)\":")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions.compactMap { $0 } == positions.compactMap { $0 }.sorted(), "members in sorted key order")
        #expect(json["test"] as? Bool == false)
        #expect(json["lossy_fields"] as? [String] == [])
        #expect(json["conflict"] is NSNull)
    }

    @Test func receiveTimesAreWrittenInKoreanTime() {
        #expect(KoreanTime.iso8601(Date(timeIntervalSince1970: 0)) == "1970-01-01T09:00:00.000+09:00")
        #expect(KoreanTime.iso8601(Date(timeIntervalSince1970: 1_709_218_799.999)) == "2024-02-29T23:59:59.999+09:00")
        #expect(KoreanTime.iso8601(Date(timeIntervalSince1970: 1_735_657_200)) == "2025-01-01T00:00:00.000+09:00")
        #expect(KoreanTime.iso8601(Date(timeIntervalSince1970: -1)) == "1970-01-01T08:59:59.000+09:00")
        // Cross-check against Foundation across a span of dates.
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'+09:00'"
        for seconds in stride(from: 0.0, to: 4_000_000_000, by: 86_400 * 37 + 3_601.5) {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(KoreanTime.iso8601(date) == formatter.string(from: date))
        }
    }

    @Test func compactKoreanTimestamps() {
        #expect(KoreanTime.fromCompact("241123153000") == "2024-11-23T15:30:00+09:00")
        #expect(KoreanTime.fromCompact("20241123153000") == "2024-11-23T15:30:00+09:00")
        #expect(KoreanTime.fromCompact("241323153000") == nil)
        #expect(KoreanTime.fromCompact("2411") == nil)
        #expect(KoreanTime.fromCompact(nil) == nil)
    }

    @Test func logRedactionMasksPersonalData() {
        let f = fields([
            ("pinNo", "5365123456781234"), ("BuyerTel", "010-1234-5678"), ("BuyerEmail", "hong@example.com"),
            ("BuyerAuthNum", "8001011"), ("Amt", "1000"),
        ])
        let masked = Dictionary(uniqueKeysWithValues: Masking.fields(f.all).map { ($0.name, $0.value) })
        #expect(masked["Amt"] == "1000")
        #expect(masked["pinNo"] != "5365123456781234")
        #expect(masked["pinNo"]?.hasSuffix("1234") == true)
        #expect(masked["BuyerTel"]?.contains("1234-5678") == false)
        #expect(masked["BuyerEmail"]?.contains("hong") == false)
        #expect(masked["BuyerAuthNum"]?.contains("8001011") == false)
    }
}

@Suite struct SmartroConsistencyTests {
    /// SignValue covers TID and ResultCode only: a signed approval re-posted with another StateCd
    /// still verifies, so the state has to agree with the code.
    @Test(arguments: [("2", "3001"), ("1", "4000"), ("2", "KP00"), ("1", "4100"), ("3", "3001"), ("0", "2001")])
    func stateThatContradictsTheResultCodeIsRefused(state: String, code: String) {
        do {
            _ = try smartro.accept(smartroPost(resultCode: code, extra: [("StateCd", state)]))
            Issue.record("StateCd \(state) with \(code) accepted")
        } catch {
            #expect(error.reason == .stateMismatch)
            #expect(error.detail.contains(code))
        }
    }

    @Test(arguments: [("0", "3001"), ("2", "2001"), ("1", "2001"), ("3", "4100"), ("0", "4110"), ("0", "7001")])
    func consistentStatesPass(state: String, code: String) throws {
        let n = try smartro.accept(smartroPost(resultCode: code, extra: [("StateCd", state), ("PayMethod", "VBANK")]))
        #expect(n.verifiedBy == "signvalue-md5")
    }

    @Test func eitherOfTwoKeysVerifiesDuringRotation() throws {
        let rotating = Smartro(merchantKeys: [
            "SMTPAY001m": SecretValues(["new-key-not-yet-in-use==", publishedSmartroKey])
        ])
        #expect(try rotating.accept(smartroPost(extra: [])).verifiedBy == "signvalue-md5")
        let wrong = Smartro(merchantKeys: ["SMTPAY001m": SecretValues(["new-key-not-yet-in-use=="])])
        #expect(throws: Rejection.self) { try wrong.accept(smartroPost(extra: [])) }
    }
}

@Suite struct SmartroFidelityTests {
    /// §6.6: a cash receipt may be notified beside the approval of a transfer or virtual account,
    /// under the same TID and StateCd.
    @Test func cashReceiptBesideTheApprovalIsItsOwnFact() throws {
        let approval = try smartro.accept(
            smartroPost(resultCode: "4110", extra: [("PayMethod", "VBANK"), ("StateCd", "0"), ("Amt", "55000")]))
        let receipt = try smartro.accept(
            smartroPost(
                resultCode: "7001",
                extra: [
                    ("PayMethod", "VBANK"), ("StateCd", "0"), ("Amt", "55000"), ("ReceiptType", "1"),
                    ("RcptAppNo", "R-123"),
                ]))
        #expect(receipt.kind == .cashReceiptIssued)
        #expect(receipt.cashReceipt == CashReceipt(type: "1", approvalNumber: "R-123"))
        #expect(receipt.key != approval.key)
        #expect(receipt.state == "cash_receipt:0")
        let canceled = try smartro.accept(
            smartroPost(
                resultCode: "7001",
                extra: [("StateCd", "2"), ("ReceiptType", "2"), ("RcptAppNo", "R-123"), ("RcptCcNo", "C-9")]))
        #expect(canceled.kind == .cashReceiptCanceled)
        #expect(canceled.cashReceipt?.cancelNumber == "C-9")
        let failed = try smartro.accept(
            smartroPost(resultCode: "7003", extra: [("StateCd", "0"), ("ReceiptType", "1")]))
        #expect(failed.kind == .cashReceiptFailed)
        #expect(Set([receipt.state, canceled.state, failed.state]).count == 3)
    }

    /// Without StateCd (ReturnURL-style), every success code of §7 becomes the right kind.
    @Test(arguments: [
        ("3001", "CARD", "0", EventKind.paymentApproved), ("4000", "BANK", "0", .paymentApproved),
        ("4100", "VBANK", "3", .vbankIssued), ("4110", "VBANK", "0", .vbankDeposited),
        ("A000", "CELLPHONE", "0", .paymentApproved), ("TS10", "TOSS", "0", .paymentApproved),
        ("KP00", "KAKAO", "0", .paymentApproved), ("0000", "CLGIFT", "0", .paymentApproved),
        ("2001", "CARD", "2", .paymentCanceled), ("2211", "BANK", "2", .paymentCanceled),
        ("TS20", "TOSS", "2", .paymentCanceled), ("2013", "CARD", "2", .paymentCanceled),
        ("TS11", "TOSS", "F", .paymentFailed), ("KP01", "KAKAO", "F", .paymentFailed),
        ("0000", "CARD", "F", .paymentFailed), ("3011", "CARD", "F", .paymentFailed),
    ])
    func derivedStatesCoverEverySuccessCode(code: String, method: String, state: String, kind: EventKind) throws {
        let n = try smartro.accept(smartroPost(resultCode: code, extra: [("PayMethod", method)]))
        #expect(n.state == state)
        #expect(n.kind == kind)
        #expect(n.resultCode == code)
    }

    @Test func anEmptyFnCdIsNoCard() throws {
        let easyPay = try smartro.accept(
            smartroPost(resultCode: "TS10", extra: [("PayMethod", "TOSS"), ("FnCd", ""), ("FnName", "")]))
        #expect(easyPay.card == nil)
        let card = try smartro.accept(
            smartroPost(resultCode: "3001", extra: [("PayMethod", "TOSS"), ("FnCd", "04"), ("FnName", "삼성")]))
        #expect(card.card?.issuerCode == "04")
    }

    @Test func partialCancelIsOTIDDifferentFromTIDWhateverTheStateCd() throws {
        for state in ["1", "2"] {
            let n = try smartro.accept(
                smartroPost(
                    tid: "SMTPAY001m01012411241000009999", resultCode: "2001",
                    extra: [("StateCd", state), ("OTID", "SMTPAY001m01012411231530001234"), ("Amt", "5000")]))
            #expect(n.kind == .paymentPartiallyCanceled, "StateCd \(state)")
            #expect(n.originalTID == "SMTPAY001m01012411231530001234")
        }
    }

    @Test func publishedTestMerchantsNameTheirSource() {
        #expect(
            Smartro.publishedTestMerchants.map(\.merchantID) == [
                "SMTPAY001m", "SMTPAY002m", "ECTEST001m", "SMTSUB001m", "SMTSUB002m", "SMTSUB003m", "SMTSUB004m",
            ])
        #expect(Smartro.publishedTestMerchants.allSatisfy { $0.source.contains("§4.4") })
        #expect(Innopay.publishedTestMerchants.map(\.merchantID) == ["testpay01m", "nictest14m", "2999199999"])
        #expect(Innopay.publishedTestMerchants.allSatisfy { $0.source.contains("§1.1") })
        #expect(TomatoPay.publishedTestMerchants.isEmpty)
    }
}

@Suite struct InnopayCancelTests {
    let base: [(String, String)] = [
        ("pgMid", "testpay01m"), ("pgTid", "P1"), ("status", "85"), ("moid", "M1"), ("payMethod", "02"),
        ("pgResultCode", "3001"), ("pgResultMsg", "card ok"), ("approvalAmt", "50000"), ("approvalNo", "A1"),
        ("pgAppDate", "20241123"), ("pgAppTime", "172001"), ("cardNo", "4579********5678"),
    ]

    /// §4.2.4: a cancel's own result, approved amount and approval number describe the cancel.
    @Test func cancelFieldsDescribeTheCancel() throws {
        let n = try Innopay().accept(
            fields(
                base + [
                    ("cancelAmt", "20000"), ("cancelResultCode", "2001"), ("cancelResultMsg", "cancel ok"),
                    ("cancelApprovalAmt", "19000"), ("cancelApprovalNo", "CA9"), ("cancelPgTid", "C1"),
                    ("cancelAppDate", "2024-11-25"), ("cancelAppTime", "14:02:10"),
                ]))
        #expect(n.resultCode == "2001")
        #expect(n.resultMessage == "cancel ok")
        #expect(n.amount == 19000)
        #expect(n.requestedAmount == 20000)
        #expect(n.card?.approvalNumber == "CA9")
        #expect(n.kind == .paymentPartiallyCanceled)
        #expect(n.canceledAt == "2024-11-25T14:02:10+09:00")
        #expect(n.fingerprint == "amount=19000;result=2001")
    }

    @Test func withoutCancelFieldsTheRequestFieldsStandIn() throws {
        let n = try Innopay().accept(fields(base + [("cancelAmt", "50000"), ("cancelPgTid", "C2")]))
        #expect(n.resultCode == "3001")
        #expect(n.amount == 50000)
        #expect(n.requestedAmount == 50000)
        #expect(n.kind == .paymentCanceled)
    }

    @Test func datesAcceptCompactAndSeparatedForms() {
        #expect(KoreanTime.fromDateAndTime("20241123", "153012") == "2024-11-23T15:30:12+09:00")
        #expect(KoreanTime.fromDateAndTime("2024-11-23", "15:30:12") == "2024-11-23T15:30:12+09:00")
        #expect(KoreanTime.fromDateAndTime("2024.11.23", "153012") == "2024-11-23T15:30:12+09:00")
        #expect(KoreanTime.fromDateAndTime("2024-13-23", "15:30:12") == nil)
        #expect(KoreanTime.fromDateAndTime("20241123", "15:30") == nil)
    }
}
