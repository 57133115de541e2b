import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
import PGNotiStore
import Testing

@testable import PGNotiServer

struct IntakeTests {
    static func tempDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-intake-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func request(
        _ body: String, provider: ProviderID = .tomatopay, contentType: String? = "application/x-www-form-urlencoded"
    ) -> IncomingRequest {
        IncomingRequest(
            provider: provider, body: Array(body.utf8), contentType: contentType, remoteAddress: "127.0.0.1",
            requestID: "t", receivedAt: Date())
    }

    let approval = "MID=tomato001m&TID=T1&StateCd=0&Amt=1000&ResultCode=3001"

    @Test func ackOnlyAfterCommitAndNeverWhenTheStoreFails() async throws {
        let dir = try Self.tempDirectory()
        let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
        let intake = Intake(providers: [TomatoPay()], ledger: ledger, relay: nil, logger: Logger(label: "t"))
        let first = await intake.handle(request(approval))
        #expect(first.status == 200 && first.body == "OK" && first.outcome == .accepted)
        let again = await intake.handle(request(approval))
        #expect(again.status == 200 && again.body == "OK" && again.outcome == .duplicate)
        #expect(again.eventID == first.eventID)

        // The store goes away (closed, as after a fatal I/O error): no ACK, a retryable 500.
        try await ledger.close()
        let failed = await intake.handle(request("MID=tomato001m&TID=T2&StateCd=0&Amt=1000&ResultCode=3001"))
        #expect(failed.status == 500)
        #expect(failed.outcome == .error)
        #expect(failed.body != "OK")
        #expect(!failed.body.contains("OK"))
        #expect(failed.reason == "store_failed")
    }

    @Test func conflictIsAckedStoredAndCarriesBothValues() async throws {
        let dir = try Self.tempDirectory()
        let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
        let intake = Intake(providers: [TomatoPay()], ledger: ledger, relay: nil, logger: Logger(label: "t"))
        _ = await intake.handle(request(approval))
        let changed = await intake.handle(request("MID=tomato001m&TID=T1&StateCd=0&Amt=2000&ResultCode=3001"))
        #expect(changed.outcome == .conflict)
        #expect(changed.status == 200 && changed.body == "OK")
        #expect(changed.storedFingerprint == "amount=1000;result=3001")
        #expect(changed.receivedFingerprint == "amount=2000;result=3001")
        #expect(try await ledger.counts().conflicts == 1)
        #expect(try await ledger.pendingOutbox(limit: 10).count == 1)
    }

    @Test func charsetAndMediaTypeAreHonoured() async throws {
        let dir = try Self.tempDirectory()
        let ledger = try Ledger(path: dir.appendingPathComponent("db.sqlite").path)
        let intake = Intake(providers: [TomatoPay()], ledger: ledger, relay: nil, logger: Logger(label: "t"))
        let json = await intake.handle(request("{}", contentType: "application/json"))
        #expect(json.status == 415 && json.reason == "unsupported_media_type")
        let latin = await intake.handle(
            request(approval, contentType: "application/x-www-form-urlencoded; charset=iso-8859-1"))
        #expect(latin.status == 400 && latin.reason == "unsupported_charset")
        // UTF-8 declared: 홍 as UTF-8 percent-escapes decodes as UTF-8, not CP949.
        let utf8 = await intake.handle(
            request(
                approval.replacingOccurrences(of: "T1", with: "T9") + "&Name=%ED%99%8D",
                contentType: "application/x-www-form-urlencoded; charset=UTF-8"))
        #expect(utf8.outcome == .accepted)
        let items = try await ledger.pendingOutbox(limit: 10)
        let event = try JSONDecoder().decode(Event.self, from: Data(items[0].payload))
        #expect(event.buyer?.name == "홍")
        #expect(try await ledger.rejected(limit: 10).count == 2)
    }

    @Test func refusalBodiesNeverContainAnAck() async throws {
        for reason in Rejection.Reason.allCases {
            let body = "rejected: \(reason.rawValue)\n"
            #expect(!body.uppercased().contains("OK") && !body.contains("0000"), "\(reason)")
        }
    }
}
