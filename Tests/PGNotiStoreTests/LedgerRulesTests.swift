import Foundation
import PGNotiCore
import PGNotiStore
import Testing

/// The ledger's rules without a database: what every engine must do with what it holds.
@Suite struct LedgerRulesTests {
    let stored = LedgerRules.Held(
        eventID: "E1", fingerprint: PaymentNotification.fingerprint(amount: 1000, resultCode: "3001"))

    @Test func nothingUnderTheKeyIsNew() {
        #expect(LedgerRules.decide(fingerprint: "amount=1;result=3001", held: nil) == .new)
    }

    @Test func theSameVersionAgainIsARetryOfTheStoredEvent() {
        let retry = PaymentNotification.fingerprint(amount: 1000, resultCode: "3001")
        #expect(LedgerRules.decide(fingerprint: retry, held: stored) == .retryOfStored(eventID: "E1"))
    }

    @Test func aNewVersionIsFiledAsAConflictUntilTheCap() {
        let other = PaymentNotification.fingerprint(amount: 9000, resultCode: "3001")
        var held = stored
        held.filedConflicts = LedgerRules.maximumConflictsPerKey - 1
        #expect(
            LedgerRules.decide(fingerprint: other, held: held)
                == .fileConflict(conflictsWith: "E1", storedFingerprint: stored.fingerprint))
        held.filedConflicts = LedgerRules.maximumConflictsPerKey
        #expect(
            LedgerRules.decide(fingerprint: other, held: held)
                == .ignoreConflict(conflictsWith: "E1", storedFingerprint: stored.fingerprint))
    }

    @Test func aConflictAlreadyFiledIsARetryOfItEvenPastTheCap() {
        var held = stored
        held.filedConflictEventID = "C1"
        held.filedConflicts = LedgerRules.maximumConflictsPerKey
        #expect(
            LedgerRules.decide(fingerprint: "amount=9000;result=3001", held: held) == .retryOfConflict(eventID: "C1"))
    }

    @Test func aContradictionWithNoConflictDocumentIsOnlyCounted() {
        #expect(
            LedgerRules.decide(fingerprint: "amount=9000;result=3001", held: stored, canBuildConflictEvent: false)
                == .ignoreConflict(conflictsWith: "E1", storedFingerprint: stored.fingerprint))
    }

    @Test func theFingerprintIsTheAmountAndTheResult() {
        #expect(PaymentNotification.fingerprint(amount: 1000, resultCode: "3001") == "amount=1000;result=3001")
        #expect(PaymentNotification.fingerprint(amount: nil, resultCode: nil) == "amount=-;result=-")
        #expect(
            PaymentNotification.fingerprint(amount: 1000, resultCode: "3001")
                != PaymentNotification.fingerprint(amount: 1000, resultCode: "3002"))
    }

    @Test func retryDetailIsKeptForTheFirstHundredOnly() {
        #expect(LedgerRules.keepsRetryDetail(retriesBefore: 0))
        #expect(LedgerRules.keepsRetryDetail(retriesBefore: LedgerRules.retriesKept - 1))
        #expect(!LedgerRules.keepsRetryDetail(retriesBefore: LedgerRules.retriesKept))
    }
}

@Suite struct QuarantineEvictionTests {
    typealias Candidate = QuarantineEviction.Candidate

    @Test func garbageGoesBeforeParsedRequestsThenOldestFirst() {
        let rows = [
            Candidate(id: 1, parsed: true, bytes: 10), Candidate(id: 2, parsed: false, bytes: 10),
            Candidate(id: 3, parsed: true, bytes: 10), Candidate(id: 4, parsed: false, bytes: 10),
        ]
        #expect(rows.sorted(by: QuarantineEviction.precedes).map(\.id) == [2, 4, 1, 3])
    }

    @Test func victimsAreTakenUntilBothCapsHold() {
        let policy = QuarantinePolicy(maxBytes: 25, maxRows: 10, keepDays: 30)
        var ordered = [
            Candidate(id: 2, parsed: false, bytes: 10), Candidate(id: 4, parsed: false, bytes: 10),
            Candidate(id: 1, parsed: true, bytes: 10), Candidate(id: 3, parsed: true, bytes: 10),
        ].makeIterator()
        let result = QuarantineEviction.victims(bytes: 40, rows: 4, policy: policy) { ordered.next() }
        // 40 bytes over a 25-byte cap: two 10-byte rows go, the two garbage ones.
        #expect(result.ids == [2, 4])
        #expect(result.bytes == 20 && result.rows == 2)
    }

    @Test func rowsCapAloneEvicts() {
        let policy = QuarantinePolicy(maxBytes: 1_000, maxRows: 1, keepDays: 30)
        var ordered = [Candidate(id: 5, parsed: true, bytes: 0), Candidate(id: 6, parsed: true, bytes: 0)]
            .makeIterator()
        #expect(QuarantineEviction.victims(bytes: 0, rows: 2, policy: policy) { ordered.next() }.ids == [5])
    }

    @Test func withinThePolicyNothingIsRead() {
        let policy = QuarantinePolicy(maxBytes: 100, maxRows: 10, keepDays: 30)
        var asked = 0
        let result = QuarantineEviction.victims(bytes: 100, rows: 10, policy: policy) {
            asked += 1
            return nil
        }
        #expect(result.ids.isEmpty && asked == 0)
    }

    @Test func theAgeCutoffIsKeepDaysBack() {
        let now = Date(timeIntervalSince1970: 1_750_000_000)
        let cutoff = QuarantineEviction.ageCutoff(now: now, policy: QuarantinePolicy(keepDays: 30))
        #expect(now.timeIntervalSince(cutoff) == 30 * 86_400)
    }
}
