import Foundation
import Testing

@testable import PGNotiCore

/// The manual's worked examples (참고 2.1.1 and 2.2.1): Payup's published test values.
@Suite struct PayupSignatureTests {
    static let key = "25bcd7a82f5b4058818462cc7715964c"

    @Test func approvalVector() {
        let signature = PayupSignature.approve(
            merchantID: "tester", orderNumber: "ZP2017090911", amount: "1004", apiCertKey: Self.key,
            timestamp: "20170910132060")
        #expect(signature == "d186b8fedccffd291e0619fbf8b247c3f283e3769571eb57b68a50b46af23b75")
    }

    @Test func cancelVector() {
        let signature = PayupSignature.cancel(
            merchantID: "tester", transactionID: "20170912142746ST0020", apiCertKey: Self.key)
        #expect(signature == "db890c12b64c1e1de7127c0c07489fe18859139413acdac420a6f548ba518a3a")
    }

    @Test func blanksAreRemovedBeforeHashing() {
        #expect(
            PayupSignature.approve(
                merchantID: " tester", orderNumber: "ZP2017 090911", amount: "1004 ", apiCertKey: Self.key + "\n",
                timestamp: "\t20170910132060")
                == "d186b8fedccffd291e0619fbf8b247c3f283e3769571eb57b68a50b46af23b75")
        #expect(
            PayupSignature.cancel(merchantID: "tester ", transactionID: " 20170912142746 ST0020", apiCertKey: Self.key)
                == "db890c12b64c1e1de7127c0c07489fe18859139413acdac420a6f548ba518a3a")
        #expect(
            PayupSignature.signedBytes(["a b", " c"]) == Array("ab|c".utf8))
    }

    @Test func verifyAcceptsOnlyTheRightSignature() {
        let approval = "d186b8fedccffd291e0619fbf8b247c3f283e3769571eb57b68a50b46af23b75"
        func approve(_ signature: String, amount: String = "1004", key: String = Self.key) -> Bool {
            PayupSignature.verifyApprove(
                signature, merchantID: "tester", orderNumber: "ZP2017090911", amount: amount, apiCertKey: key,
                timestamp: "20170910132060")
        }
        #expect(approve(approval))
        #expect(approve(approval.uppercased()))
        #expect(!approve(approval, amount: "1005"))
        #expect(!approve(approval, key: "25bcd7a82f5b4058818462cc7715964d"))
        #expect(!approve(String(approval.dropLast()) + "4"))
        #expect(!approve(String(approval.dropLast())))
        #expect(!approve(""))

        let cancel = "db890c12b64c1e1de7127c0c07489fe18859139413acdac420a6f548ba518a3a"
        #expect(
            PayupSignature.verifyCancel(
                cancel, merchantID: "tester", transactionID: "20170912142746ST0020", apiCertKey: Self.key))
        #expect(
            !PayupSignature.verifyCancel(
                cancel, merchantID: "tester", transactionID: "20170912142746ST0021", apiCertKey: Self.key))
        #expect(
            !PayupSignature.verifyCancel(
                approval, merchantID: "tester", transactionID: "20170912142746ST0020", apiCertKey: Self.key))
    }
}

@Suite struct PayupTests {
    let payup = Payup()

    func read(_ json: String, contentType: String? = Payup.mediaType) throws(Rejection) -> PaymentNotification {
        try payup.interpret(payup.fields(from: Array(json.utf8), contentType: contentType))
    }

    /// §2.1's response example, as the client records it.
    static let approved = """
        {"operation": "approve", "intent_id": "int-1", "merchant_id": "tester", "order_number": "TEST_00001",
         "amount": "1004", "timestamp": "20180212000000", "outcome": "response",
         "response": {"amount": "1004", "orderNumber": "TEST_00001", "authNumber": "00308225",
                      "authDateTime": "20180212000000", "transactionId": "20180212000000ST0000",
                      "cardName": "신한카드", "kakaoResultCode": "0000", "responseCode": "0000",
                      "responseMsg": "성공"}}
        """

    @Test func approvedResponseIsAPaymentApproved() throws {
        let n = try read(Self.approved)
        #expect(n.provider == .payup)
        #expect(n.kind == .paymentApproved)
        #expect(n.merchantID == "tester")
        #expect(n.tid == "20180212000000ST0000")
        #expect(n.state == "approved")
        #expect(n.amount == 1004)
        #expect(n.orderID == "TEST_00001")
        #expect(n.approvedAt == "2018-02-12T00:00:00+09:00")
        #expect(n.canceledAt == nil)
        #expect(n.card == CardDetails(issuerName: "신한카드", approvalNumber: "00308225"))
        #expect(n.resultCode == "0000")
        #expect(n.resultMessage == "성공")
        #expect(n.payMethod == "CARD")
        let raw = Dictionary(uniqueKeysWithValues: n.rawFields.map { ($0.name, $0.values) })
        #expect(raw["intent_id"] == ["int-1"])
        #expect(raw["response.kakaoResultCode"] == ["0000"])
        #expect(raw["response.cardName"] == ["신한카드"])
        #expect(raw["response"] == nil)
    }

    @Test func theResponseAmountWinsAndNumbersReadAsText() throws {
        let n = try read(
            """
            {"operation": "approve", "intent_id": "i", "merchant_id": "m", "order_number": "o", "amount": "1004",
             "outcome": "response",
             "response": {"responseCode": "0000", "transactionId": "T1", "amount": 1000, "noinf": true}}
            """)
        #expect(n.amount == 1000)
        let raw = Dictionary(uniqueKeysWithValues: n.rawFields.map { ($0.name, $0.values) })
        #expect(raw["response.amount"] == ["1000"])
        #expect(raw["response.noinf"] == ["true"])
    }

    @Test func canceledResponseIsAPaymentCanceled() throws {
        let n = try read(
            """
            {"operation": "cancel", "intent_id": "int-2", "merchant_id": "tester",
             "transaction_id": "20180205152504ST0009", "timestamp": "20180205152740", "outcome": "response",
             "response": {"cancelDateTime": "20180205152745", "transactionId": "20180205152504ST0009",
                          "responseCode": "0000", "responseMsg": "성공"}}
            """)
        #expect(n.kind == .paymentCanceled)
        #expect(n.tid == "20180205152504ST0009")
        #expect(n.state == "canceled")
        #expect(n.canceledAt == "2018-02-05T15:27:45+09:00")
        #expect(n.approvedAt == nil)
        #expect(n.amount == nil)
        #expect(n.resultCode == "0000")
    }

    @Test func failedResponsesAreFailuresKeyedByTheirIntent() throws {
        let approve = try read(
            """
            {"operation": "approve", "intent_id": "int-3", "merchant_id": "tester", "order_number": "ORD-9",
             "amount": "500", "outcome": "response",
             "response": {"responseCode": "5001", "responseMsg": "결제 금액이 최소 결제 금액 보다 작습니다."}}
            """)
        #expect(approve.kind == .paymentFailed)
        #expect(approve.tid == "order:ORD-9")
        #expect(approve.state == "failed:int-3")
        #expect(approve.amount == 500)
        #expect(approve.resultCode == "5001")
        #expect(approve.resultMessage == "결제 금액이 최소 결제 금액 보다 작습니다.")
        #expect(approve.approvedAt == nil)
        #expect(approve.card == nil)

        let withTID = try read(
            """
            {"operation": "approve", "intent_id": "int-4", "merchant_id": "tester", "order_number": "ORD-9",
             "amount": "500", "outcome": "response",
             "response": {"responseCode": "9001", "transactionId": "20180212000000ST0001"}}
            """)
        #expect(withTID.tid == "20180212000000ST0001")
        #expect(withTID.state == "failed:int-4")
        #expect(withTID.key != approve.key)

        let cancel = try read(
            """
            {"operation": "cancel", "intent_id": "int-5", "merchant_id": "tester",
             "transaction_id": "20180205152504ST0009", "outcome": "response",
             "response": {"responseCode": "1005", "responseMsg": "취소 가능 상태가 아닙니다.", "transactionId": ""}}
            """)
        #expect(cancel.kind == .paymentFailed)
        #expect(cancel.tid == "20180205152504ST0009")
        #expect(cancel.state == "failed:int-5")
        #expect(cancel.resultCode == "1005")
    }

    @Test func aLostResponseIsAPaymentUnknown() throws {
        let approve = try read(
            """
            {"operation": "approve", "intent_id": "int-6", "merchant_id": "tester", "order_number": "ORD-7",
             "amount": "1004", "timestamp": "20180212000000", "outcome": "unknown",
             "error": "no response within 30 s"}
            """)
        #expect(approve.kind == .paymentUnknown)
        #expect(approve.tid == "order:ORD-7")
        #expect(approve.state == "unknown:int-6")
        #expect(approve.resultMessage == "no response within 30 s")
        #expect(approve.resultCode == nil)
        #expect(approve.amount == 1004)

        let cancel = try read(
            """
            {"operation": "cancel", "intent_id": "int-7", "merchant_id": "tester",
             "transaction_id": "20180205152504ST0009", "outcome": "unknown", "error": "connection reset"}
            """)
        #expect(cancel.kind == .paymentUnknown)
        #expect(cancel.tid == "20180205152504ST0009")
        #expect(cancel.state == "unknown:int-7")
    }

    @Test func cardDataNeverBecomesAField() throws {
        let fields = try payup.fields(
            from: Array(
                """
                {"operation": "approve", "intent_id": "i", "merchant_id": "m", "order_number": "o", "amount": "1",
                 "cardNo": "9490191412341234", "CARDPW": "00", "expire_month": "05", "expireYear": "19",
                 "Birthday": "890302", "outcome": "response",
                 "response": {"responseCode": "0000", "transactionId": "T", "cardNo": "9490191412341234",
                              "cardpw": "00", "ExpireMonth": "05", "expire-year": "19", "birthday": "890302"}}
                """.utf8),
            contentType: Payup.mediaType)
        let names = fields.all.map(\.name)
        #expect(names.count == 8)
        for field in fields.all {
            #expect(!["9490191412341234", "00", "05", "19", "890302"].contains(field.values[0]), "\(field.name)")
        }
        let n = try payup.interpret(fields)
        #expect(n.rawFields.map(\.name) == names)
        let event = String(decoding: Event(notification: n, receivedAt: Date()).jsonBytes(), as: UTF8.self)
        #expect(!event.contains("9490191412341234"))
        #expect(!event.contains("890302"))
    }

    @Test func malformedDocumentsAreRefused() {
        for bad in ["", "{", "not json", "[1, 2]", "\"approve\"", "42", "{\"operation\": approve}"] {
            do {
                _ = try read(bad)
                Issue.record("\(bad) accepted")
            } catch {
                #expect(error.reason == .invalidField, "\(bad)")
            }
        }
        #expect(throws: Rejection.self) { try payup.fields(from: [0x7B, 0xFF, 0x7D], contentType: Payup.mediaType) }
        for contentType in [nil, "application/json", "application/x-www-form-urlencoded"] {
            do {
                _ = try read(Self.approved, contentType: contentType)
                Issue.record("\(contentType ?? "nil") accepted")
            } catch {
                #expect(error.reason == .unsupportedMediaType)
            }
        }
        #expect(throws: Never.self) { try read(Self.approved, contentType: Payup.mediaType + "; charset=utf-8") }
        do {
            _ = try read(Self.approved, contentType: Payup.mediaType + "; charset=euc-kr")
            Issue.record("euc-kr accepted")
        } catch {
            #expect(error.reason == .unsupportedCharset)
        }
    }

    @Test func missingMembersAreNamed() {
        let cases: [(String, String)] = [
            (#"{"intent_id": "i", "merchant_id": "m", "outcome": "unknown"}"#, "operation"),
            (
                #"{"operation": "approve", "merchant_id": "m", "order_number": "o", "amount": "1", "outcome": "unknown"}"#,
                "intent_id"
            ),
            (
                #"{"operation": "approve", "intent_id": "i", "order_number": "o", "amount": "1", "outcome": "unknown"}"#,
                "merchant_id"
            ),
            (
                #"{"operation": "approve", "intent_id": "i", "merchant_id": "m", "amount": "1", "outcome": "unknown"}"#,
                "order_number"
            ),
            (
                #"{"operation": "approve", "intent_id": "i", "merchant_id": "m", "order_number": "o", "outcome": "unknown"}"#,
                "amount"
            ),
            (#"{"operation": "cancel", "intent_id": "i", "merchant_id": "m", "outcome": "unknown"}"#, "transaction_id"),
            (#"{"operation": "cancel", "intent_id": "i", "merchant_id": "m", "transaction_id": "t"}"#, "outcome"),
            (
                #"{"operation": "cancel", "intent_id": "i", "merchant_id": "m", "transaction_id": "t", "outcome": "response"}"#,
                "response.responseCode"
            ),
            (
                #"{"operation": "approve", "intent_id": "i", "merchant_id": "m", "order_number": "o", "amount": "1", "outcome": "response", "response": {"responseCode": "0000"}}"#,
                "response.transactionId"
            ),
        ]
        for (json, member) in cases {
            do {
                _ = try read(json)
                Issue.record("accepted without \(member)")
            } catch {
                #expect(error.reason == .missingField, "\(member)")
                #expect(error.detail.contains(member), "\(error.detail)")
            }
        }
        for json in [
            #"{"operation": "refund", "intent_id": "i", "merchant_id": "m", "outcome": "unknown"}"#,
            #"{"operation": "cancel", "intent_id": "i", "merchant_id": "m", "transaction_id": "t", "outcome": "maybe"}"#,
            #"{"operation": "approve", "intent_id": "i", "merchant_id": "m", "order_number": "o", "amount": "1x", "outcome": "unknown"}"#,
        ] {
            #expect(throws: Rejection.self) { try read(json) }
        }
    }

    @Test func providerShape() {
        #expect(payup.id == .payup)
        #expect(payup.ackBody == "")
        #expect(payup.charset == .fixed(.utf8))
        #expect(Payup.mediaType == "application/vnd.pgnoti.payup+json")
    }
}
