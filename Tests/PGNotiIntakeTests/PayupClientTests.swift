import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiStore
import Synchronization
import Testing

@testable import PGNotiIntake

/// The Payup client's decisions, with a fake transport instead of HTTP: what is journaled,
/// filed and answered for each way a call can end.
struct PayupClientTests {
    /// Answers every call with `result` and remembers what it was asked.
    final class FakeTransport: PayupTransport {
        let result: PayupTransportResult
        let sent = Mutex<[(url: String, json: [String: String])]>([])
        init(_ result: PayupTransportResult) { self.result = result }
        func post(url: String, json: [UInt8], timeout: Duration) async -> PayupTransportResult {
            let object = (try? JSONSerialization.jsonObject(with: Data(json)) as? [String: String]) ?? [:]
            sent.withLock { $0.append((url, object)) }
            return result
        }
        func shutdown() async {}
    }

    static let card = "9490191412341234"
    static let request = Array(
        #"{"orderNumber":"ORD-1","cardNo":"\#(card)","expireMonth":"05","expireYear":"29","birthday":"890302","cardPw":"00","amount":"1004","quota":"0","itemName":"상품","userName":"최용수"}"#
            .utf8)

    static func answer(_ object: [String: String?], status: Int = 200) -> PayupTransportResult {
        let data = try! JSONSerialization.data(withJSONObject: object.mapValues { $0.map { $0 as Any } ?? NSNull() })
        return .answered(status: status, body: Array(data))
    }

    static let approved: [String: String?] = [
        "responseCode": "0000", "responseMsg": "성공", "transactionId": "20261124000001ST0001",
        "authDateTime": "20261124103000", "authNumber": "00308225", "orderNumber": "ORD-1", "amount": "1004",
        "cardName": "신한카드",
    ]

    func client(_ result: PayupTransportResult) throws -> (PayupClient, Ledger, FakeTransport) {
        var config = Config()
        config.payup.enabled = true
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: Logger(label: "t"))
        let transport = FakeTransport(result)
        let client = PayupClient(
            baseURL: "https://api.testpayup.co.kr", merchantID: "tester",
            apiCertKey: SecretValues(["25bcd7a82f5b4058818462cc7715964c"]), token: SecretValues(["token"]),
            timeout: .seconds(5), intake: intake, journal: ledger, transport: transport, logger: Logger(label: "t"))
        return (client, ledger, transport)
    }

    func body(_ answer: PayupClient.Answer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any]) ?? [:]
    }

    @Test func anApprovalIsSignedJournaledAndFiled() async throws {
        let (client, ledger, transport) = try client(Self.answer(Self.approved))
        let answer = await client.call(.approve, body: Self.request)
        #expect(answer.status == 200 && body(answer)["responseCode"] as? String == "0000")
        let sent = try #require(transport.sent.withLock { $0.first })
        #expect(sent.url == "https://api.testpayup.co.kr/v2/api/payment/tester/keyin2")
        #expect(sent.json["signature"]?.count == 64 && sent.json["timestamp"]?.count == 14)
        let stored = try #require(try await ledger.events(.init()).first)
        #expect(stored.kind == "payment.approved" && stored.orderID == "ORD-1")
        #expect(try await ledger.payupIntents(states: PayupIntent.State.pending).isEmpty)
    }

    @Test func anHTTP500CarryingSuccessIsAnApproval() async throws {
        let (client, ledger, _) = try client(Self.answer(Self.approved, status: 500))
        let answer = await client.call(.approve, body: Self.request)
        #expect(body(answer)["responseCode"] as? String == "0000" && body(answer)["http_status"] as? Int == 500)
        #expect(try await ledger.events(.init()).first?.kind == "payment.approved")
    }

    @Test func neverConnectedIsNotSentAndNothingIsFiled() async throws {
        let (client, ledger, _) = try client(.failed(.neverConnected("refused")))
        let answer = await client.call(.approve, body: Self.request)
        #expect(answer.status == 502 && body(answer)["outcome"] as? String == "not_sent")
        #expect(try await ledger.events(.init()).isEmpty)
        #expect(try await ledger.payupIntents(states: [.notSent]).count == 1)
    }

    @Test func aTimeoutOrALostAnswerIsUnknownAndPending() async throws {
        for failure in [PayupFailure.timedOut, .lost("connection reset")] {
            let (client, ledger, _) = try client(.failed(failure))
            let answer = await client.call(.approve, body: Self.request)
            #expect(answer.status == 504 && body(answer)["outcome"] as? String == "unknown")
            #expect(try await ledger.events(.init()).first?.kind == "payment.unknown")
            #expect(try await ledger.payupIntents(states: PayupIntent.State.pending).count == 1)
        }
    }

    @Test func anAnswerWithoutAUsableCodeIsUnknownNotFailed() async throws {
        for code in [nil, "", "  "] as [String?] {
            let (client, ledger, _) = try client(Self.answer(["responseCode": code, "orderNumber": "ORD-1"]))
            let answer = await client.call(.approve, body: Self.request)
            #expect(body(answer)["outcome"] as? String == "unknown")
            #expect(try await ledger.events(.init()).first?.kind == "payment.unknown")
            #expect(try await ledger.payupIntents(states: [.failed]).isEmpty)
            #expect(try await ledger.quarantined(limit: 10).isEmpty, "not refused as garbage")
        }
    }

    @Test func echoedCardDataIsDroppedBeforeAnythingKeepsIt() async throws {
        var echoed = Self.approved
        echoed["cardNo"] = Self.card
        echoed["birthday"] = "890302"
        let (client, ledger, _) = try client(Self.answer(echoed))
        let answer = await client.call(.approve, body: Self.request)
        #expect(!String(decoding: answer.body, as: UTF8.self).contains(Self.card))
        let stored = try #require(try await ledger.events(.init()).first)
        for bytes in [stored.rawBody, stored.eventJSON] {
            #expect(bytes.range(of: Data(Self.card.utf8)) == nil && bytes.range(of: Data("890302".utf8)) == nil)
        }
    }
}
