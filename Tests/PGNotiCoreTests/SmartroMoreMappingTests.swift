import Testing

@testable import PGNotiCore

/// Smartro posts without StateCd (ReturnURL-style): a partial cancel is recognised from OTID ≠ TID
/// (§6.4 #8) when the state itself is derived from the result code (§7).
@Suite struct SmartroMoreMappingTests {
    static let original = "SMTPAY001m01012411231530001234"
    static let cancel = "SMTPAY001m01012411241000009999"

    @Test(arguments: ["2001", "2211", "TS20"])
    func partialCancelWithoutStateCdIsDerivedFromTheResultCodeAndOTID(code: String) throws {
        let n = try smartro.accept(
            smartroPost(
                tid: Self.cancel, resultCode: code,
                extra: [("PayMethod", "CARD"), ("OTID", Self.original), ("Amt", "5000"), ("AuthDate", "241124100000")]))
        #expect(n.state == "2")
        #expect(n.kind == .paymentPartiallyCanceled)
        #expect(n.kind.rawValue == "payment.partially_canceled")
        #expect(n.originalTID == Self.original)
        #expect(n.tid == Self.cancel)
        #expect(n.amount == 5000)
        #expect(n.canceledAt == "2024-11-24T10:00:00+09:00")
        #expect(n.approvedAt == nil)
        #expect(n.resultCode == code)
    }

    @Test func fullCancelWithoutStateCdStaysACancel() throws {
        let sameTID = try smartro.accept(
            smartroPost(
                tid: Self.original, resultCode: "2001", extra: [("PayMethod", "CARD"), ("OTID", Self.original)]))
        let noOTID = try smartro.accept(
            smartroPost(tid: Self.original, resultCode: "2001", extra: [("PayMethod", "CARD")]))
        for n in [sameTID, noOTID] {
            #expect(n.state == "2")
            #expect(n.kind == .paymentCanceled)
            #expect(n.originalTID == nil)
        }
    }

    /// A failed partial cancel (a cancel failure code, OTID ≠ TID) is a failure, not a cancel.
    @Test func aFailedCancelWithOTIDIsAFailure() throws {
        let n = try smartro.accept(
            smartroPost(
                tid: Self.cancel, resultCode: "2003",
                extra: [("PayMethod", "CARD"), ("OTID", Self.original), ("Amt", "5000")]))
        #expect(n.state == "F")
        #expect(n.kind == .paymentFailed)
    }

    /// A cancel that failed and then went through, under one TID and StateCd, is two facts: the
    /// failure keeps a state of its own, so the success is not filed as a conflict with it.
    @Test func aFailureUnderAStateCdDoesNotShareTheSuccessKey() throws {
        let failed = try smartro.accept(
            smartroPost(tid: Self.original, resultCode: "2002", extra: [("PayMethod", "CARD"), ("StateCd", "2")]))
        let canceled = try smartro.accept(
            smartroPost(tid: Self.original, resultCode: "2001", extra: [("PayMethod", "CARD"), ("StateCd", "2")]))
        #expect(failed.kind == .paymentFailed && failed.state == "2:F")
        #expect(canceled.kind == .paymentCanceled && canceled.state == "2")
        let declined = try smartro.accept(
            smartroPost(resultCode: "3011", extra: [("PayMethod", "CARD"), ("StateCd", "0")]))
        #expect(declined.kind == .paymentFailed && declined.state == "0:F")
    }
}
