import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiStore
import Testing

@testable import PGNotiIntake

/// Toss rows and Payup results take the same path as a PG's post: the provider's own
/// `fields(from:contentType:)`, then the same dedup, outbox and quarantine.
@Suite struct NewSourceIntakeTests {
    func make(_ policy: IntakePolicy) throws -> (Intake, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        return (Intake(policy: policy, store: ledger, logger: Logger(label: "t")), ledger)
    }

    func row(_ text: String, financename: [UInt8] = [0xB1, 0xB9, 0xB9, 0xCE]) -> [UInt8] {
        Array(text.utf8).split(separator: UInt8(ascii: "#"), omittingEmptySubsequences: false)
            .map(Array.init).joined(separator: financename).map { $0 }
    }

    func submission(_ body: [UInt8], _ provider: ProviderID, _ contentType: String) -> Submission {
        Submission(
            provider: provider, body: body, contentType: contentType,
            address: ClientAddress(peer: nil, client: nil), receivedAt: Date(), requestID: "t")
    }

    @Test func tossRowsAreFiledOnceAndAnEmptyStatusIsKept() async throws {
        let (intake, ledger) = try make(IntakePolicy(providers: [TossPayments()]))
        let rev = TossPayments.RowFormat(kind: .rev, delimiter: .semicolon).contentType
        // financename 국민 in CP949 (the `#`).
        let rows = [
            row("toss;SC0010;T1;O1;11100;#;u1;15000;N;20070706235355;00176594;20"),
            row("toss;SC0010;T1;O1;11100;#;u1;5000;N;20070706235355;00176594;20"),
            row("toss;SC0010;T2;O2;11100;#;u2;29000;N;20070706230726;17634348;"),
        ]
        var outcomes: [IntakeResult.Outcome] = []
        for body in rows + rows { outcomes.append(await intake.process(submission(body, .toss, rev)).outcome) }
        #expect(outcomes == [.accepted, .accepted, .rejected, .duplicate, .duplicate, .rejected])

        let outbox = try await ledger.pendingOutbox(limit: 10)
        #expect(outbox.count == 2)
        let event = try JSONSerialization.jsonObject(with: Data(outbox[0].payload)) as! [String: Any]
        #expect(event["provider"] as? String == "toss")
        #expect(event["kind"] as? String == "payment.canceled")
        #expect(event["charset"] as? String == "cp949")
        #expect((event["raw"] as? [String: Any])?["financename"] as? String == "국민")
        #expect((event["card"] as? [String: Any])?["issuer_name"] as? String == "국민")

        let kept = try await ledger.quarantined(limit: 10)
        #expect(kept.map(\.reason) == ["invalid_field", "invalid_field"])
        #expect(kept.allSatisfy { $0.contentType == rev && Array($0.rawBody) == rows[2] })
    }

    @Test func aReleasedTossRowReadsAsItFirstDid() async throws {
        var onlyOther = ProviderAuth()
        onlyOther.merchants = ["other"]
        let (intake, ledger) = try make(IntakePolicy(providers: [TossPayments()], auth: [.toss: onlyOther]))
        let format = TossPayments.RowFormat(kind: .auth, delimiter: .comma).contentType
        let refused = await intake.process(
            submission(row("toss,SC0010,T3,O3,11100,#,u3,1000,N,2007-07-06 23:59:27,30017594,10"), .toss, format))
        #expect(refused.rejection?.reason == .merchantNotAccepted)
        #expect(try await ledger.quarantined(limit: 1).map(\.parsed) == [true])

        intake.replacePolicy(IntakePolicy(providers: [TossPayments()]))
        let release = QuarantineRelease(quarantine: ledger, intake: intake, trustedProxies: [])
        guard case .accepted = await release.release(id: try #require(refused.quarantineID)) else {
            Issue.record("not accepted on release")
            return
        }
        let event =
            try JSONSerialization.jsonObject(with: Data(try await ledger.pendingOutbox(limit: 1)[0].payload))
            as! [String: Any]
        #expect(event["approved_at"] as? String == "2007-07-06T23:59:27+09:00")
        #expect((event["raw"] as? [String: Any])?["financename"] as? String == "국민")
    }

    @Test func aPayupResultIsFiledWithoutCardData() async throws {
        let (intake, ledger) = try make(IntakePolicy(providers: [Payup()]))
        let document = """
            {"operation": "approve", "intent_id": "int-1", "merchant_id": "tester", "order_number": "TEST_00001",
             "amount": "1004", "timestamp": "20180212000000", "outcome": "response", "cardNo": "9490191412341234",
             "response": {"amount": "1004", "authNumber": "00308225", "authDateTime": "20180212000000",
                          "transactionId": "20180212000000ST0000", "cardName": "신한카드", "responseCode": "0000",
                          "responseMsg": "성공"}}
            """
        let first = await intake.process(submission(Array(document.utf8), .payup, Payup.mediaType))
        #expect(first.outcome == .accepted)
        #expect(first.ack == "")
        let again = await intake.process(submission(Array(document.utf8), .payup, Payup.mediaType))
        #expect(again.outcome == .duplicate)
        let payload = String(decoding: try await ledger.pendingOutbox(limit: 1)[0].payload, as: UTF8.self)
        #expect(payload.contains(#""kind":"payment.approved""#))
        #expect(!payload.contains("9490191412341234"))
        let form = await intake.process(submission(Array("a=b".utf8), .payup, ContentType.formURLEncoded))
        #expect(form.rejection?.reason == .unsupportedMediaType)
    }
}
