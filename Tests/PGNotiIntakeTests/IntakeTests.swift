import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiStore
import PGNotiTestSupport
import Testing

@testable import PGNotiIntake

struct IntakeTests {
    let approval = "MID=tomato001m&TID=T1&StateCd=0&Amt=1000&ResultCode=3001"

    func make(_ config: Config = productionConfig()) throws -> (Intake, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        return (Intake(policy: IntakePolicy(config: config), store: ledger, logger: Logger(label: "t")), ledger)
    }

    @Test func noAnswerLeavesBeforeTheCommitAndNoneIsAnAckWhenTheStoreFails() async throws {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let store = HoldingStore(ledger: ledger)
        let intake = Intake(policy: IntakePolicy(config: productionConfig()), store: store, logger: Logger(label: "t"))
        store.hold()
        let pending = Task { await intake.process(submission(approval)) }
        try await waitUntil { store.isWaiting }
        // Held: the commit has not returned, so there is no result to answer with.
        #expect(try await ledger.counts().notifications == 0)
        store.release()
        let first = await pending.value
        #expect(first.outcome == .accepted && first.ack == "OK" && first.isCommitted)
        #expect(try await ledger.counts().notifications == 1)

        let again = await intake.process(submission(approval))
        #expect(again.outcome == .duplicate && again.ack == "OK" && again.eventID == first.eventID)

        store.failNext.withLock { $0 = true }
        let failed = await intake.process(submission("MID=tomato001m&TID=T2&StateCd=0&Amt=1000&ResultCode=3001"))
        #expect(failed.outcome == .error && failed.ack == nil && !failed.isCommitted)
        #expect(failed.error != nil)
    }

    @Test func aWrongOrMissingPathSecretIsRefusedAndKeptWithoutTheSecret() async throws {
        let (intake, ledger) = try make()
        let missing = await intake.process(submission(approval, secret: nil))
        let wrong = await intake.process(submission(approval, secret: "guess-guess-guess-guess"))
        for result in [missing, wrong] {
            #expect(result.outcome == .rejected && result.ack == nil)
            #expect(result.rejection?.reason == .pathSecretMismatch)
            #expect(result.quarantineID != nil)
        }
        let items = try await ledger.quarantined(limit: 10)
        #expect(items.count == 2)
        #expect(items.allSatisfy { $0.parsed && $0.reason == "path_secret_mismatch" })
        #expect(items.first?.pathSecretSHA256.map(Array.init) == Digest.sha256(Array("guess-guess-guess-guess".utf8)))
        #expect(items.last?.pathSecretSHA256 == nil)
        #expect(await intake.process(submission(approval)).outcome == .accepted)
    }

    @Test func allowlistRefusesOtherClients() async throws {
        let (intake, ledger) = try make()
        let innopay = "pgMid=testpay01m&pgTid=P1&status=25&approvalAmt=1000&pgResultCode=3001"
        let refused = await intake.process(submission(innopay, provider: .innopay, secret: nil, client: "198.51.100.9"))
        #expect(refused.rejection?.reason == .sourceNotAllowed)
        #expect(refused.rejection?.detail.contains("198.51.100.9") == true)
        #expect(try await ledger.quarantined(reason: "source_not_allowed").first?.client == "198.51.100.9")
        let allowed = await intake.process(submission(innopay, provider: .innopay, secret: nil, client: "203.0.113.50"))
        #expect(allowed.outcome == .accepted && allowed.ack == "0000")
    }

    @Test func aMerchantOutsideTheListIsRefused() async throws {
        var config = productionConfig()
        config.tomatopay.auth.merchants = ["tomato001m"]
        let (intake, _) = try make(config)
        #expect(await intake.process(submission(approval)).outcome == .accepted)
        let other = await intake.process(submission(approval.replacingOccurrences(of: "tomato001m", with: "other01m")))
        #expect(other.rejection?.reason == .merchantNotAccepted)
    }

    @Test func publishedTestMerchantsAreRefusedInProductionAndMarkedWhenAccepted() async throws {
        var config = productionConfig()
        config.smartro.auth.acceptTestMerchants = false
        let (strict, _) = try make(config)
        let refused = await strict.process(submission(smartroBody(), provider: .smartro, secret: nil))
        #expect(refused.rejection?.reason == .testMerchant)

        let (lenient, ledger) = try make()
        let accepted = await lenient.process(submission(smartroBody(), provider: .smartro, secret: nil))
        #expect(accepted.outcome == .accepted)
        let event = try #require(try await ledger.pendingOutbox(limit: 1).first)
        let json = try JSONSerialization.jsonObject(with: Data(event.payload)) as! [String: Any]
        #expect(json["test"] as? Bool == true)
        #expect(json["verified_by"] as? String == "signvalue-md5")

        // Config can extend the list; the sandbox takes test merchants without being told.
        var extended = productionConfig()
        extended.tomatopay.auth.extraTestMerchants = ["tomato001m"]
        let (extendedIntake, _) = try make(extended)
        #expect(await extendedIntake.process(submission(approval)).rejection?.reason == .testMerchant)
        let (sandbox, _) = try make(Config.sandbox(directory: try temporaryDirectory().path))
        #expect(await sandbox.process(submission(smartroBody(), provider: .smartro, secret: nil)).outcome == .accepted)
    }

    @Test func aSignedApprovalRepostedAsACancelIsRefused() async throws {
        let (intake, ledger) = try make()
        let flipped = await intake.process(
            submission(smartroBody(extra: "StateCd=2&Amt=15000&PayMethod=CARD"), provider: .smartro, secret: nil))
        #expect(flipped.rejection?.reason == .stateMismatch)
        #expect(try await ledger.quarantined(reason: "state_mismatch").first?.parsed == true)
        #expect(try await ledger.counts().notifications == 0)
    }

    @Test func aConflictFilesItsOwnEventPointingAtTheStoredOne() async throws {
        let (intake, ledger) = try make()
        let first = await intake.process(submission(approval))
        let changed = await intake.process(submission(approval.replacingOccurrences(of: "Amt=1000", with: "Amt=2000")))
        #expect(changed.outcome == .conflict && changed.ack == "OK")
        guard case .committed("OK", .conflict(let recorded)) = changed.decision else {
            Issue.record("not a committed conflict: \(changed.decision)")
            return
        }
        #expect(recorded.conflictsWith == first.eventID && recorded.filed != nil)
        #expect(recorded.storedFingerprint == "amount=1000;result=3001")
        #expect(recorded.receivedFingerprint == "amount=2000;result=3001")
        #expect(changed.kind == "notification.conflict" && changed.eventID == recorded.filed?.eventID)
        let again = await intake.process(submission(approval.replacingOccurrences(of: "Amt=1000", with: "Amt=2000")))
        #expect(again.outcome == .duplicate && again.eventID == changed.eventID)
        let events = try await ledger.pendingOutbox(limit: 10).map {
            try JSONSerialization.jsonObject(with: Data($0.payload)) as! [String: Any]
        }
        #expect(events.count == 2)
        let conflict = events[1]
        #expect(conflict["kind"] as? String == "notification.conflict")
        #expect(conflict["id"] as? String == changed.eventID && changed.eventID != first.eventID)
        #expect(conflict["conflicts_with"] as? String == first.eventID)
        let versions = conflict["conflict"] as? [String: [String: Any]]
        #expect(versions?["stored"]?["amount"] as? Int == 1000)
        #expect(versions?["received"]?["amount"] as? Int == 2000)
        #expect(conflict["amount"] as? Int == 2000)
    }

    @Test func charsetAndMediaTypeAreHonoured() async throws {
        let (intake, ledger) = try make()
        let json = await intake.process(submission("{}", contentType: "application/json"))
        #expect(json.rejection?.reason == .unsupportedMediaType)
        let latin = await intake.process(
            submission(approval, contentType: "application/x-www-form-urlencoded; charset=iso-8859-1"))
        #expect(latin.rejection?.reason == .unsupportedCharset)
        // UTF-8 declared: 홍 as UTF-8 percent-escapes decodes as UTF-8, not CP949.
        let utf8 = await intake.process(
            submission(
                approval.replacingOccurrences(of: "T1", with: "T9") + "&Name=%ED%99%8D",
                contentType: "application/x-www-form-urlencoded; charset=UTF-8"))
        #expect(utf8.outcome == .accepted)
        let event =
            try JSONSerialization.jsonObject(with: Data(try await ledger.pendingOutbox(limit: 1)[0].payload))
            as! [String: Any]
        #expect((event["buyer"] as? [String: Any])?["name"] as? String == "홍")
        #expect(event["charset"] as? String == "utf-8")
        #expect(try await ledger.quarantined(limit: 10).map(\.parsed) == [false, false])
    }

    @Test func lossyFieldsAreNamedInTheEvent() async throws {
        let (intake, ledger) = try make()
        // GoodsName cut mid-syllable by the PG's byte limit.
        _ = await intake.process(submission(approval + "&GoodsName=%C8%AB%B1"))
        let event =
            try JSONSerialization.jsonObject(with: Data(try await ledger.pendingOutbox(limit: 1)[0].payload))
            as! [String: Any]
        #expect(event["lossy_fields"] as? [String] == ["GoodsName"])
        #expect(event["charset"] as? String == "cp949")
    }

    @Test func buyerAuthNumIsMaskedInTheEvent() async throws {
        let (intake, ledger) = try make()
        _ = await intake.process(
            submission(
                smartroBody(extra: "StateCd=0&Amt=15000&PayMethod=CARD&BuyerAuthNum=8001011"), provider: .smartro,
                secret: nil))
        let payload = String(decoding: try await ledger.pendingOutbox(limit: 1)[0].payload, as: UTF8.self)
        #expect(!payload.contains("8001011"))
        #expect(payload.contains(#""BuyerAuthNum":"****""#))
    }

    @Test func garbageIsKeptAsUnparsedAndAWrongKeyAsParsed() async throws {
        let (intake, ledger) = try make()
        _ = await intake.process(submission("garbage", provider: .smartro, secret: nil))
        _ = await intake.process(submission(smartroBody(key: "wrong-key=="), provider: .smartro, secret: nil))
        let items = try await ledger.quarantined(limit: 10)
        #expect(items.map(\.reason) == ["signature_mismatch", "missing_field"])
        #expect(items.map(\.parsed) == [true, false])
        #expect(items[0].merchantID == "SMTPAY001m")
    }
}

@Suite struct QuarantineReleaseTests {
    /// A genuine notification refused while the wrong key was configured becomes its event once
    /// the key is fixed, exactly once, with the time it first arrived.
    @Test func releaseAfterTheKeyIsFixedGivesOneEventKeepingItsReceiveTime() async throws {
        var wrong = productionConfig()
        wrong.smartro.merchantKeys = ["SMTPAY001m": SecretValues(["not-the-key=="])]
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(config: wrong), store: ledger, logger: Logger(label: "t"))
        // Whole milliseconds, an hour ago: well inside the quarantine's age limit.
        let arrived = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 3600).rounded(.down))
        let refused = await intake.process(
            submission(smartroBody(), provider: .smartro, secret: nil, receivedAt: arrived))
        #expect(refused.rejection?.reason == .signatureMismatch)
        let id = try #require(refused.quarantineID)

        let release = QuarantineRelease(quarantine: ledger, intake: intake, trustedProxies: [])
        #expect(await release.release(id: id) == .refused(reason: "signature_mismatch"))

        intake.replacePolicy(IntakePolicy(config: productionConfig()))
        guard case .accepted(let eventID) = await release.release(id: id) else {
            Issue.record("not accepted")
            return
        }
        #expect(await release.release(id: id) == .duplicate(eventID: eventID))
        #expect(await release.release(id: 9999) == .notFound)

        let outbox = try await ledger.pendingOutbox(limit: 10)
        #expect(outbox.count == 1)
        let event = try JSONSerialization.jsonObject(with: Data(outbox[0].payload)) as! [String: Any]
        #expect(event["id"] as? String == eventID)
        #expect(event["received_at"] as? String == KoreanTime.iso8601(arrived))
        // Filed now, so it sorts after everything filed before the release.
        let filedMicros = try #require(Int64(outbox[0].fileName.prefix(17)))
        #expect(filedMicros > Int64(arrived.timeIntervalSince1970 * 1_000_000) + 3_000_000_000)
        #expect(try await ledger.quarantined(id: id)?.releasedEventID == eventID)
        #expect(try await ledger.counts().quarantine == 1, "a release keeps the item, marked")
    }

    @Test func aPathSecretIsRecheckedFromItsDigest() async throws {
        var config = productionConfig()
        config.tomatopay.auth.pathSecrets = SecretValues(["old-secret-value-000000"])
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: Logger(label: "t"))
        let refused = await intake.process(
            submission("MID=tomato001m&TID=T7&StateCd=0&Amt=1&ResultCode=3001", secret: "new-secret-value-111111"))
        let id = try #require(refused.quarantineID)
        let release = QuarantineRelease(quarantine: ledger, intake: intake, trustedProxies: [])
        #expect(await release.release(id: id) == .refused(reason: "path_secret_mismatch"))
        // The operator rotates: both values valid. The stored digest now matches one of them.
        config.tomatopay.auth.pathSecrets = SecretValues(["old-secret-value-000000", "new-secret-value-111111"])
        intake.replacePolicy(IntakePolicy(config: config))
        guard case .accepted = await release.release(id: id) else {
            Issue.record("not accepted after rotation")
            return
        }
    }
}

/// Sandbox mode authenticates nothing, and behind a reverse proxy every peer is loopback: it
/// must not be a way to file a real merchant's payment.
struct SandboxIntakeTests {
    func make() throws -> (Intake, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        return (
            Intake(policy: IntakePolicy(config: Config.sandbox()), store: ledger, logger: Logger(label: "t")), ledger
        )
    }

    @Test func aForgedInnopayApprovalForARealMerchantIsRefusedAndKept() async throws {
        let (intake, ledger) = try make()
        let forged = "pgMid=REALMID01m&pgTid=F1&status=25&approvalAmt=990000&pgResultCode=3001"
        let result = await intake.process(
            submission(forged, provider: .innopay, secret: nil, client: "198.51.100.66"))
        #expect(result.outcome == .rejected && result.ack == nil)
        #expect(result.rejection?.reason == .testMerchantOnly)
        #expect(result.rejection?.detail.contains("REALMID01m") == true)
        #expect(try await ledger.quarantined(reason: "test_merchant_only").first?.merchantID == "REALMID01m")
        #expect(try await ledger.counts().notifications == 0)
    }

    @Test func innopaysPublishedTestPgMIDIsStillTakenAndMarkedSandbox() async throws {
        let (intake, ledger) = try make()
        let test = "pgMid=nictest14m&pgTid=T14&status=25&approvalAmt=1000&pgResultCode=3001"
        let result = await intake.process(submission(test, provider: .innopay, secret: nil))
        #expect(result.outcome == .accepted && result.ack == "0000")
        let stored = try #require(try await ledger.events(.init()).first)
        let event = try #require(try JSONSerialization.jsonObject(with: stored.eventJSON) as? [String: Any])
        #expect(event["sandbox"] as? Bool == true)
        #expect(event["test"] as? Bool == true)
        #expect(event["purged"] as? Bool == false)
    }

    @Test func tomatoPaysSandboxStandInAndSmartrosTestMerchantAreTaken() async throws {
        let (intake, _) = try make()
        let tomato = await intake.process(
            submission("MID=tomato001m&TID=T1&StateCd=0&Amt=1000&ResultCode=3001", secret: nil))
        #expect(tomato.outcome == .accepted)
        let other = await intake.process(
            submission("MID=shop0001m&TID=T2&StateCd=0&Amt=1000&ResultCode=3001", secret: nil))
        #expect(other.rejection?.reason == .testMerchantOnly)
        let smartro = await intake.process(submission(smartroBody(), provider: .smartro, secret: nil))
        #expect(smartro.outcome == .accepted && smartro.ack == "OK")
    }
}
