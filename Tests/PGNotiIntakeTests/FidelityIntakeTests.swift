import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiStore
import Testing

@testable import PGNotiIntake

/// Issue 6 through the intake: configured test merchants, `charset = auto` with the charset and
/// lossy fields named in the event, and the quarantine of a `test_merchant` refusal.
@Suite struct FidelityIntakeTests {
    func make(_ config: Config) throws -> (Intake, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        return (Intake(policy: IntakePolicy(config: config), store: ledger, logger: Logger(label: "t")), ledger)
    }

    /// A TOML file as `pgnoti serve --config` reads it, with nothing from the disk or environment.
    func parse(_ toml: String) throws -> Config {
        try ConfigLoader(
            environment: [:], readFile: { _ in throw CocoaError(.fileNoSuchFile) }, fileExists: { _ in false }
        )
        .parse(toml)
    }

    func events(_ ledger: Ledger) async throws -> [(text: String, json: [String: Any])] {
        try await ledger.pendingOutbox(limit: 100).map {
            (
                String(decoding: $0.payload, as: UTF8.self),
                try JSONSerialization.jsonObject(with: Data($0.payload)) as! [String: Any]
            )
        }
    }

    static let tomato = "[tomatopay]\npath_secret = \"\(pathSecret)\"\n"
    static let x1 = "MID=X1&TID=TX1&StateCd=0&Amt=1000&ResultCode=3001"

    // MARK: test_merchants / accept_test_merchants, from TOML through IntakePolicy(config:)

    @Test func configuredTestMerchantIsRefusedOutsideSandboxAndMarkedWhenAccepted() async throws {
        // Without the key, X1 is an ordinary merchant: accepted, not marked.
        let (plain, plainLedger) = try make(try parse(Self.tomato))
        #expect(await plain.process(submission(Self.x1)).outcome == .accepted)
        #expect(try await events(plainLedger).first?.json["test"] as? Bool == false)

        let listed = try parse(Self.tomato + "test_merchants = [\"X1\"]\n")
        #expect(!listed.sandbox)
        let (strict, strictLedger) = try make(listed)
        let refused = await strict.process(submission(Self.x1))
        #expect(refused.outcome == .rejected && refused.ack == nil)
        #expect(refused.rejection?.reason == .testMerchant)
        #expect(refused.rejection?.detail.contains("tomatopay.accept_test_merchants") == true)
        #expect(try await strictLedger.counts().notifications == 0)
        // Another MID on the same PG is untouched by the list.
        #expect(
            await strict.process(submission(Self.x1.replacingOccurrences(of: "X1", with: "X2"))).outcome == .accepted)

        let accepting = try parse(Self.tomato + "test_merchants = [\"X1\"]\naccept_test_merchants = true\n")
        let (lenient, lenientLedger) = try make(accepting)
        let accepted = await lenient.process(submission(Self.x1))
        #expect(accepted.outcome == .accepted && accepted.ack == "OK")
        let event = try #require(try await events(lenientLedger).first)
        #expect(event.json["merchant_id"] as? String == "X1")
        #expect(event.json["test"] as? Bool == true)
        #expect(event.text.contains(#""test":true"#))
    }

    @Test func acceptTestMerchantsAlsoTakesThePublishedOnes() async throws {
        let keys = "[smartro.merchant_keys]\nSMTPAY001m = \"\(publishedSmartroKey)\"\n"
        let (strict, _) = try make(try parse("[smartro]\n" + keys))
        let refused = await strict.process(submission(smartroBody(), provider: .smartro, secret: nil))
        #expect(refused.rejection?.reason == .testMerchant)
        let (lenient, ledger) = try make(try parse("[smartro]\naccept_test_merchants = true\n" + keys))
        #expect(await lenient.process(submission(smartroBody(), provider: .smartro, secret: nil)).outcome == .accepted)
        #expect(try await events(ledger).first?.json["test"] as? Bool == true)
    }

    // MARK: charset = auto

    func autoConfig() throws -> Config {
        let config = try parse(Self.tomato + "charset = \"auto\"\n")
        #expect(config.tomatopay.charset == .auto)
        return config
    }

    /// 홍길동 and 사과 as UTF-8 percent-escapes.
    static let utf8Korean = "Name=%ED%99%8D%EA%B8%B8%EB%8F%99&GoodsName=%EC%82%AC%EA%B3%BC"
    /// The same text as CP949.
    static let cp949Korean = "Name=%C8%AB%B1%E6%B5%BF&GoodsName=%BB%E7%B0%FA"

    @Test func autoReadsAnUnlabelledUTF8BodyAsUTF8() async throws {
        let (intake, ledger) = try make(try autoConfig())
        let result = await intake.process(
            submission(
                "MID=tomato001m&TID=T1&StateCd=0&Amt=1000&ResultCode=3001&" + Self.utf8Korean,
                contentType: "application/x-www-form-urlencoded"))
        #expect(result.outcome == .accepted)
        let event = try #require(try await events(ledger).first)
        #expect(event.text.contains(#""charset":"utf-8""#))
        #expect(event.text.contains(#""lossy_fields":[]"#))
        #expect((event.json["buyer"] as? [String: Any])?["name"] as? String == "홍길동")
        #expect(event.json["goods_name"] as? String == "사과")
    }

    @Test func autoReadsUnlabelledCP949BytesAsCP949() async throws {
        let (intake, ledger) = try make(try autoConfig())
        let result = await intake.process(
            submission("MID=tomato001m&TID=T2&StateCd=0&Amt=1000&ResultCode=3001&" + Self.cp949Korean))
        #expect(result.outcome == .accepted)
        let event = try #require(try await events(ledger).first)
        #expect(event.text.contains(#""charset":"cp949""#))
        #expect(event.text.contains(#""lossy_fields":[]"#))
        #expect((event.json["buyer"] as? [String: Any])?["name"] as? String == "홍길동")
        #expect(event.json["goods_name"] as? String == "사과")
    }

    @Test func aCP949SyllableCutInHalfIsNamedInLossyFields() async throws {
        let (intake, ledger) = try make(try autoConfig())
        // GoodsName 홍 then the first byte of 길, cut by the PG's byte limit; Name is whole.
        let result = await intake.process(
            submission(
                "MID=tomato001m&TID=T3&StateCd=0&Amt=1000&ResultCode=3001&Name=%C8%AB%B1%E6%B5%BF"
                    + "&GoodsName=%C8%AB%B1"))
        #expect(result.outcome == .accepted)
        let event = try #require(try await events(ledger).first)
        #expect(event.json["charset"] as? String == "cp949")
        #expect(event.json["lossy_fields"] as? [String] == ["GoodsName"])
        #expect((event.json["buyer"] as? [String: Any])?["name"] as? String == "홍길동")
        #expect((event.json["goods_name"] as? String)?.hasPrefix("홍") == true)
    }

    // MARK: the quarantine keeps a test_merchant refusal

    @Test func aTestMerchantRefusalIsKeptInTheQuarantineAndCanBeReleased() async throws {
        var config = productionConfig()
        config.smartro.auth.acceptTestMerchants = false
        let (intake, ledger) = try make(config)
        let body = smartroBody()
        let refused = await intake.process(submission(body, provider: .smartro, secret: nil, client: "198.51.100.4"))
        #expect(refused.rejection?.reason == .testMerchant)
        let id = try #require(refused.quarantineID)

        let rows = try await ledger.quarantined(reason: "test_merchant")
        #expect(rows.count == 1)
        let row = try #require(rows.first)
        #expect(row.id == id)
        #expect(row.provider == "smartro")
        #expect(row.reason == "test_merchant")
        #expect(row.detail.contains("SMTPAY001m"))
        #expect(row.parsed)
        #expect(row.merchantID == "SMTPAY001m")
        #expect(row.tid == "SMTPAY001m01012411231530001234")
        #expect(row.client == "198.51.100.4")
        #expect(Array(row.rawBody) == Array(body.utf8))
        #expect(try await ledger.quarantined(id: id)?.reason == "test_merchant")
        #expect(try await ledger.counts().quarantine == 1)
        #expect(try await ledger.counts().notifications == 0)

        // Once the operator accepts test merchants, the kept request becomes its (test) event.
        let release = QuarantineRelease(quarantine: ledger, intake: intake, trustedProxies: [])
        #expect(await release.release(id: id) == .refused(reason: "test_merchant"))
        config.smartro.auth.acceptTestMerchants = true
        intake.replacePolicy(IntakePolicy(config: config))
        guard case .accepted(let eventID) = await release.release(id: id) else {
            Issue.record("not accepted after accept_test_merchants = true")
            return
        }
        let event = try #require(try await events(ledger).first)
        #expect(event.json["id"] as? String == eventID)
        #expect(event.json["test"] as? Bool == true)
    }
}
