import Foundation
import Testing

@testable import PGNotiCore

/// The event writer is hand-made for speed; Foundation's JSONSerialization is the reference.
/// For every fixture the PGs' posts produce, and for text made to be hard to escape, both
/// encodings must decode to the same value.
@Suite struct EventJSONReferenceTests {
    static let fixturesRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures")

    static let providers: [String: any PaymentProvider] = [
        "smartro": smartro, "tomatopay": TomatoPay(), "innopay": Innopay(),
    ]

    /// Every fixture request that reads as a notification, as (name, event).
    static func fixtureEvents() throws -> [(String, Event)] {
        var events: [(String, Event)] = []
        let receivedAt = Date(timeIntervalSince1970: 1_795_000_000.123)
        for (directory, provider) in providers {
            let folder = fixturesRoot.appendingPathComponent(directory)
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
            where name.hasSuffix(".http") {
                let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
                guard let split = bytes.firstRange(of: [13, 10, 13, 10] as [UInt8]) else { continue }
                let head = String(decoding: bytes[..<split.lowerBound], as: UTF8.self)
                let contentType = head.components(separatedBy: "\r\n")
                    .first { $0.lowercased().hasPrefix("content-type:") }
                    .map { String($0.dropFirst("content-type:".count)).trimmingCharacters(in: .whitespaces) }
                let body = Array(bytes[split.upperBound...])
                guard
                    let fields = try? Fields.decoding(body, contentType: contentType, charset: provider.charset),
                    var notification = try? provider.interpret(fields)
                else { continue }
                notification.verifiedBy = try? provider.verify(notification, fields)
                let event = Event(
                    notification: notification, receivedAt: receivedAt, isTest: true, charset: fields.charset,
                    lossyFields: fields.lossyFieldNames)
                events.append(("\(directory)/\(name)", event))
                events.append(
                    (
                        "\(directory)/\(name) as a conflict",
                        event.asConflict(with: "stored-event", storedAmount: 1, storedResultCode: "9999")
                    ))
            }
        }
        return events
    }

    @Test func everyFixtureEncodesLikeFoundation() throws {
        let events = try Self.fixtureEvents()
        #expect(events.count >= 40, "the fixtures were found")
        for (name, event) in events {
            try Self.expectSameValue(event, name)
        }
    }

    @Test func hardTextEncodesLikeFoundation() throws {
        let hard = "김똠순 \"quoted\" back\\slash \u{01}\u{1F}\n\t\r \u{FFFD} / 🙂 \u{7F}\u{2028}"
        let n = PaymentNotification(
            provider: .innopay, merchantID: "m\"1", tid: "T\\1", state: "25", kind: .paymentCanceled,
            cancelTID: hard, orderID: hard, amount: -0, requestedAmount: Int.max, payMethod: hard,
            resultCode: "\u{0}", resultMessage: hard, goodsName: hard,
            card: CardDetails(issuerName: hard, number: "5409********1234", installmentMonths: 0),
            bank: BankDetails(code: "", name: hard), virtualAccount: VirtualAccount(accountNumber: hard),
            cashReceipt: CashReceipt(type: "1", supplyAmount: 10, vat: 1),
            buyer: Buyer(name: hard, email: hard, phone: "010", userID: hard),
            goods: [GoodsItem(code: hard, name: hard, unitAmount: 1, quantity: 2, totalAmount: 2), GoodsItem()],
            delivery: Delivery(address: hard, comment: hard),
            rawFields: [
                DecodedField(name: hard, values: [hard], isLossy: true),
                DecodedField(name: "BuyerAuthNum", values: ["8203151"], isLossy: false),
                DecodedField(name: "goodsName[]", values: [hard, "", "\u{FFFD}"], isLossy: false),
            ])
        let event = Event(
            notification: n, receivedAt: Date(timeIntervalSince1970: 0), charset: .utf8, lossyFields: [hard])
        try Self.expectSameValue(event, "hard text")
        try Self.expectSameValue(
            event.asConflict(with: hard, storedAmount: nil, storedResultCode: hard), "hard conflict")
    }

    static func expectSameValue(_ event: Event, _ name: String) throws {
        let written = try #require(
            try JSONSerialization.jsonObject(with: Data(event.jsonBytes())) as? NSDictionary, "\(name): an object")
        let referenceBytes = try JSONSerialization.data(withJSONObject: reference(event), options: [.sortedKeys])
        let expected = try #require(try JSONSerialization.jsonObject(with: referenceBytes) as? NSDictionary)
        #expect(
            written == expected,
            "\(name): \(String(decoding: event.jsonBytes(), as: UTF8.self))\nreference: \(String(decoding: referenceBytes, as: UTF8.self))"
        )
    }

    /// Schema v1 built as Foundation values, member by member, from the documented layout.
    static func reference(_ event: Event) -> [String: Any] {
        let n = event.notification
        func value(_ v: Any?) -> Any { v ?? NSNull() }
        func compact(_ pairs: [String: Any?]) -> [String: Any] { pairs.compactMapValues { $0 } }
        var raw: [String: Any] = [:]
        for field in n.rawFields {
            let masked = FieldKey.normalize(field.name) == "buyerauthnum"
            let values = masked ? field.values.map { $0.isEmpty ? $0 : Masking.secret($0) } : field.values
            raw[field.name] = values.count == 1 ? values[0] : values
        }
        let conflict: Any =
            event.conflict.map { c in
                [
                    "received": ["amount": value(n.amount), "result_code": value(n.resultCode)],
                    "stored": ["amount": value(c.storedAmount), "result_code": value(c.storedResultCode)],
                ] as [String: Any]
            } ?? NSNull()
        let millis = Int64((event.receivedAt.timeIntervalSince1970 * 1000).rounded(.down))
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 9 * 3600)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'+09:00'"
        let receivedAt = formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
        return [
            "amount": value(n.amount),
            "approved_at": value(n.approvedAt),
            "bank": value(n.bank.map { compact(["code": $0.code, "name": $0.name]) }),
            "buyer": n.buyer.isEmpty
                ? NSNull()
                : compact([
                    "name": n.buyer.name, "email": n.buyer.email, "phone": n.buyer.phone, "user_id": n.buyer.userID,
                ]),
            "cancel_tid": value(n.cancelTID),
            "canceled_at": value(n.canceledAt),
            "card": value(
                n.card.map {
                    compact([
                        "acquirer_code": $0.acquirerCode, "acquirer_name": $0.acquirerName,
                        "approval_number": $0.approvalNumber, "installment_months": $0.installmentMonths,
                        "issuer_code": $0.issuerCode, "issuer_name": $0.issuerName, "number": $0.number,
                    ])
                }),
            "cash_receipt": value(
                n.cashReceipt.map {
                    compact([
                        "approval_number": $0.approvalNumber, "cancel_number": $0.cancelNumber,
                        "supply_amount": $0.supplyAmount, "type": $0.type, "vat": $0.vat,
                    ])
                }),
            "charset": value(event.charset?.label),
            "conflict": conflict,
            "conflicts_with": value(event.conflict?.conflictsWith),
            "currency": "KRW",
            "delivery": (n.delivery?.isEmpty ?? true)
                ? NSNull()
                : compact([
                    "address": n.delivery?.address, "address_detail": n.delivery?.addressDetail,
                    "comment": n.delivery?.comment, "recipient_name": n.delivery?.recipientName,
                    "recipient_phone": n.delivery?.recipientPhone, "zip_code": n.delivery?.zipCode,
                ]),
            "goods": n.goods.isEmpty
                ? NSNull()
                : n.goods.map {
                    compact([
                        "code": $0.code, "name": $0.name, "quantity": $0.quantity, "total_amount": $0.totalAmount,
                        "unit_amount": $0.unitAmount,
                    ])
                },
            "goods_name": value(n.goodsName),
            "id": event.id,
            "kind": event.kind.rawValue,
            "lossy_fields": event.lossyFields,
            "merchant_id": n.merchantID,
            "order_id": value(n.orderID),
            "original_tid": value(n.originalTID),
            "pay_method": value(n.payMethod),
            "provider": n.provider.rawValue,
            "purged": false,
            "raw": raw,
            "received_at": receivedAt,
            "requested_amount": value(n.requestedAmount),
            "result_code": value(n.resultCode),
            "result_message": value(n.resultMessage),
            "sandbox": event.isSandbox,
            "schema": "pgnoti.event.v1",
            "state": n.state,
            "test": event.isTest,
            "tid": n.tid,
            "verified_by": value(n.verifiedBy),
            "virtual_account": value(
                n.virtualAccount.map {
                    compact(["account_number": $0.accountNumber, "bank_code": $0.bankCode, "bank_name": $0.bankName])
                }),
        ]
    }
}

struct PurgedDocumentTests {
    @Test func aPurgedEventKeepsTheSchemasMembersAndEmptiesThePersonalOnes() throws {
        let stored: [String: Any] = [
            "amount": 15000, "buyer": ["name": "김똠순", "phone": "01012345678"], "currency": "KRW",
            "delivery": ["address": "서울특별시 강남구 1"], "id": "abc", "kind": "payment.approved",
            "purged": false, "raw": ["Name": "김똠순"], "sandbox": false, "schema": "pgnoti.event.v1",
            "test": true, "tid": "T1", "verified_by": "sign_value_md5", "card": NSNull(),
        ]
        let bytes = Array(try JSONSerialization.data(withJSONObject: stored, options: [.sortedKeys]))
        let purged = try #require(Event.purgedDocument(from: bytes))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(purged)) as? [String: Any])
        #expect(Set(object.keys) == Set(stored.keys), "no member dropped or added")
        #expect(object["purged"] as? Bool == true)
        #expect(object["test"] as? Bool == true)
        #expect(object["currency"] as? String == "KRW")
        #expect(object["verified_by"] as? String == "sign_value_md5")
        #expect(object["amount"] as? Int == 15000)
        #expect(object["buyer"] is NSNull && object["delivery"] is NSNull)
        #expect((object["raw"] as? [String: Any])?.isEmpty == true)
        #expect(!String(decoding: purged, as: UTF8.self).contains("똠순"))
        #expect(Event.purgedDocument(from: Array("not json".utf8)) == nil)
    }
}
