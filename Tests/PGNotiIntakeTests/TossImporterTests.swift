import Foundation
import Logging
import PGNotiCore
@_spi(Testing) import PGNotiStore
import Testing

@testable import PGNotiIntake

/// Reading cumulative Toss files: each row once, only new rows from a grown file, nothing from
/// a half-written line, bad rows reported by line while their neighbours are filed.
@Suite struct TossImporterTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/toss")

    func make() throws -> (TossImporter, Ledger) {
        let ledger = try Ledger(path: try temporaryDirectory().appendingPathComponent("db.sqlite").path)
        let intake = Intake(
            policy: IntakePolicy(providers: [TossPayments()]), store: ledger, logger: Logger(label: "t"))
        return (
            TossImporter(intake: intake, progress: ledger, logger: Logger(label: "t"), finalAfterMinutes: 60), ledger
        )
    }

    static let name = "toss_AUTH_20070706.dat"
    /// The midnight that ends 20070706 (KST): from then on the day is over.
    static let dayOver = KoreanTime.afterDay("20070706", minutes: 0)!

    /// The events filed so far, in filing order.
    static func filed(_ ledger: Ledger) async throws -> [[String: Any]] {
        try await ledger.pendingOutbox(limit: 10_000).compactMap {
            try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any]
        }
    }

    func fixture(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(path)))
    }

    /// The file's lines, each with its newline.
    func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: UInt8(ascii: "\n")).map { Array($0) + [UInt8(ascii: "\n")] }
    }

    @Test func theSameFileImportedTwiceFilesEachRowOnce() async throws {
        let (importer, ledger) = try make()
        let auth = try fixture("toss_AUTH_20070706.dat")
        let first = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, modifiedAt: Date())
        #expect(first.rows == 4 && first.new == 4 && first.isClean)
        let again = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, modifiedAt: Date())
        #expect(again.rows == 0 && again.new == 0, "nothing past what was read")
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)

        // Forgetting the progress (a new database file, say) still files nothing twice.
        try await ledger.executeOnWriter("DELETE FROM toss_files")
        let reread = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: auth, modifiedAt: Date())
        #expect(reread.rows == 4 && reread.new == 0 && reread.duplicates == 4)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aGrownFileFilesOnlyItsNewRows() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture("toss_AUTH_20070706.dat"))
        let firstPush = Array(rows[0..<2].joined())
        let secondPush = Array(rows.joined())
        let first = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: firstPush, modifiedAt: Date())
        #expect(first.new == 2)
        let second = try await importer.ingest(
            fileName: "toss_AUTH_20070706.dat", bytes: secondPush, modifiedAt: Date())
        #expect(second.rows == 2 && second.new == 2 && second.duplicates == 0 && second.resumedAtLine == 3)
        #expect(!second.rewritten)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aHalfWrittenLineIsNotTakenEarly() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture("toss_AUTH_20070706.dat"))
        // Two whole rows and half of the third, as an upload caught mid-way.
        let partial = Array(rows[0..<2].joined()) + Array(rows[2].prefix(30))
        let early = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: partial, modifiedAt: Date())
        #expect(early.rows == 2 && early.new == 2 && early.bad.isEmpty, "the cut row is left for later")
        let whole = Array(rows.joined())
        let later = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: whole, modifiedAt: Date())
        #expect(later.rows == 2 && later.new == 2 && later.isClean)
        #expect(try await ledger.quarantined(limit: 10).isEmpty, "no half row was refused")
    }

    @Test func aCorruptLineIsReportedByNumberAndItsNeighboursFiled() async throws {
        let (importer, ledger) = try make()
        let bytes = try fixture("corrupt-line/toss_AUTH_20070706.dat")
        let summary = try await importer.ingest(fileName: "toss_AUTH_20070706.dat", bytes: bytes, modifiedAt: Date())
        #expect(summary.bad.map(\.line) == [3])
        #expect(summary.bad.first?.reason == "invalid_field")
        #expect(summary.new == summary.rows - 1)
        let kept = try await ledger.quarantined(limit: 10)
        #expect(kept.count == 1 && kept.first?.provider == "toss")
    }

    /// The seed's REV file has a row without a Status. When a later push carries it, the bytes
    /// already read have changed: the file is read again and that row is filed.
    @Test func aRewrittenFileIsReadAgainAndTheCompletedRowFiled() async throws {
        let (importer, ledger) = try make()
        let rev = try fixture("toss_REV_20070706.dat")
        let first = try await importer.ingest(fileName: "toss_REV_20070706.dat", bytes: rev, modifiedAt: Date())
        #expect(first.new == 3 && first.bad.map(\.line) == [3])
        var rows = lines(rev)
        #expect(rows[2].suffix(2) == [UInt8(ascii: ";"), UInt8(ascii: "\n")])
        rows[2].insert(contentsOf: Array("20".utf8), at: rows[2].count - 1)
        let corrected = Array(rows.joined())
        let second = try await importer.ingest(fileName: "toss_REV_20070706.dat", bytes: corrected, modifiedAt: Date())
        #expect(second.rewritten && second.new == 1 && second.duplicates == 3 && second.isClean)
        #expect(try await ledger.pendingOutbox(limit: 100).count == 4)
    }

    @Test func aFileThatIsNotTossIsRefusedWhole() async throws {
        let (importer, _) = try make()
        await #expect(throws: TossImporter.Failure.self) {
            _ = try await importer.ingest(fileName: "notes.txt", bytes: Array("x".utf8), modifiedAt: Date())
        }
        await #expect(throws: TossImporter.Failure.self) {
            _ = try await importer.ingest(
                fileName: "toss_AUTH_20070706.dat", bytes: Array("a;b\n".utf8), modifiedAt: Date())
        }
    }

    // MARK: - A last line without its newline

    /// Issue 14, fault 1: a file read while line 3 was being written, cut inside its amount,
    /// then read whole. Line 3 is left for later and the saved position stays before it, so the
    /// whole file files it once, with its amount.
    @Test func aLineCutInsideItsAmountIsFiledWholeByTheNextRead() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture(Self.name))
        let amount = try #require(rows[2].firstRange(of: Array(";319000;".utf8)))
        let cut = Array(rows[0..<2].joined()) + Array(rows[2][..<(amount.lowerBound + 4)])  // "…;319"
        let early = try await importer.ingest(fileName: Self.name, bytes: cut, modifiedAt: Date())
        #expect(early.rows == 2 && early.new == 2 && early.isClean)
        #expect(early.unterminatedLine == 3 && early.nextLine == 3)
        let saved = try #require(try await ledger.tossProgress(fileName: Self.name))
        #expect(saved.ingestedBytes == rows[0..<2].joined().count, "the position stays before the cut line")
        #expect(saved.pendingLine == 3)

        let whole = Array(rows.joined())
        let later = try await importer.ingest(fileName: Self.name, bytes: whole, modifiedAt: Date())
        #expect(later.rows == 2 && later.new == 2 && later.isClean && later.resumedAtLine == 3)
        #expect(later.unterminatedLine == nil)
        let events = try await Self.filed(ledger)
        #expect(
            events.compactMap { $0["tid"] as? String } == [
                "toss2007070623592792192", "toss2007070623571812279", "toss2007070623433532130",
                "toss2007070623383531154",
            ])
        #expect(events[2]["amount"] as? Int == 319000, "the cut row filed with its whole amount")
        #expect(try await ledger.quarantined(limit: 10).isEmpty)
    }

    /// The same cut file read when a cut line would be taken (its day over, the file quiet for
    /// an hour): it does not read as a whole row, so it is refused by its number, and the
    /// position still stays before it: the whole file files it later with its amount.
    @Test func aCutLineTakenAtTheEndIsRefusedAndStillFiledWholeLater() async throws {
        let (importer, ledger) = try make()
        let rows = lines(try fixture(Self.name))
        let amount = try #require(rows[2].firstRange(of: Array(";319000;".utf8)))
        let cut = Array(rows[0..<2].joined()) + Array(rows[2][..<(amount.lowerBound + 4)])
        let now = Self.dayOver.addingTimeInterval(3 * 3600)
        let final = try await importer.ingest(
            fileName: Self.name, bytes: cut, modifiedAt: now.addingTimeInterval(-3600), now: now)
        #expect(final.tookUnterminatedLine == 3 && final.unterminatedLine == nil)
        #expect(final.new == 2 && final.bad.map(\.line) == [3] && final.bad.first?.unterminated == true)
        #expect(final.bad.first?.detail.contains("12 fields") == true, "\(final.bad)")
        #expect(try await ledger.quarantined(limit: 10).count == 1)
        #expect(
            try await ledger.tossProgress(fileName: Self.name)?.ingestedBytes == rows[0..<2].joined().count,
            "never past a line without its newline")

        let whole = try await importer.ingest(
            fileName: Self.name, bytes: Array(rows.joined()), modifiedAt: now, now: now)
        #expect(whole.new == 2 && whole.isClean)
        let g3 = try await Self.filed(ledger).filter { $0["tid"] as? String == "toss2007070623433532130" }
        #expect(g3.count == 1 && g3.first?["amount"] as? Int == 319000)
    }

    /// All three together, and none alone: the day over, the file unchanged for
    /// `final_after_minutes`, and a line that reads as a whole row.
    @Test func anUnterminatedLastLineIsTakenOnlyOnceItsDayIsOverAndTheFileQuiet() async throws {
        let (importer, ledger) = try make()
        var bytes = try fixture(Self.name)
        try #require(bytes.removeLast() == UInt8(ascii: "\n"))
        let lastStart = try #require(bytes.lastIndex(of: UInt8(ascii: "\n"))) + 1

        // Quiet for two hours, but 20070706 is not over: Toss still pushes that day.
        let evening = Self.dayOver.addingTimeInterval(-3600)
        let notOver = try await importer.ingest(
            fileName: Self.name, bytes: bytes, modifiedAt: evening.addingTimeInterval(-7200), now: evening)
        #expect(notOver.new == 3 && notOver.unterminatedLine == 4 && notOver.tookUnterminatedLine == nil)

        // Over, but written ten minutes ago.
        let modified = Self.dayOver.addingTimeInterval(20 * 60)
        let changing = try await importer.ingest(
            fileName: Self.name, bytes: bytes, modifiedAt: modified, now: modified.addingTimeInterval(10 * 60))
        #expect(changing.rows == 0 && changing.unterminatedLine == 4)
        #expect(changing.unterminatedDueAt == modified.addingTimeInterval(3600))
        #expect(try await Self.filed(ledger).count == 3)

        // Over, and unchanged for an hour: taken, and the position still stays before it.
        let due = modified.addingTimeInterval(3600)
        let taken = try await importer.ingest(fileName: Self.name, bytes: bytes, modifiedAt: modified, now: due)
        #expect(taken.rows == 1 && taken.new == 1 && taken.tookUnterminatedLine == 4 && taken.isClean)
        let progress = try #require(try await ledger.tossProgress(fileName: Self.name))
        #expect(progress.ingestedBytes == lastStart && progress.pendingLine == nil && progress.tailSHA256 != nil)

        // Read again unchanged: nothing submitted twice.
        let again = try await importer.ingest(
            fileName: Self.name, bytes: bytes, modifiedAt: modified, now: due.addingTimeInterval(60))
        #expect(again.rows == 0 && again.tookUnterminatedLine == nil)
        // Its newline arrives after all: read again, a duplicate.
        let ended = try await importer.ingest(
            fileName: Self.name, bytes: bytes + [UInt8(ascii: "\n")], modifiedAt: due, now: due)
        #expect(ended.rows == 1 && ended.new == 0 && ended.duplicates == 1)
        #expect(try await Self.filed(ledger).count == 4)
        #expect(try await ledger.tossProgress(fileName: Self.name)?.ingestedBytes == bytes.count + 1)
    }

    /// A pulled body has no modification time: how long it has been unchanged counts from the
    /// first read that saw exactly those bytes.
    @Test func aPulledBodyIsQuietFromWhenItsBytesWereFirstSeen() async throws {
        let (importer, ledger) = try make()
        var bytes = try fixture(Self.name)
        bytes.removeLast()
        let t0 = Self.dayOver.addingTimeInterval(5 * 60)
        let first = try await importer.ingest(fileName: Self.name, bytes: bytes, modifiedAt: nil, now: t0)
        #expect(first.unterminatedLine == 4 && first.unterminatedDueAt == t0.addingTimeInterval(3600))
        // Another row arrives (the last one still without its newline): the clock starts again.
        let grown = bytes + Array("\ntoss;SC0030;T5;O5;88;x;u;1000;N;20070706235959;0;10".utf8)
        let second = try await importer.ingest(
            fileName: Self.name, bytes: grown, modifiedAt: nil, now: t0.addingTimeInterval(30 * 60))
        #expect(second.new == 1 && second.unterminatedLine == 5)
        #expect(second.unterminatedDueAt == t0.addingTimeInterval(90 * 60))
        let early = try await importer.ingest(
            fileName: Self.name, bytes: grown, modifiedAt: nil, now: t0.addingTimeInterval(89 * 60))
        #expect(early.rows == 0 && early.unterminatedLine == 5)
        #expect(await importer.hasPendingLine(fileName: Self.name))
        let due = try await importer.ingest(
            fileName: Self.name, bytes: grown, modifiedAt: nil, now: t0.addingTimeInterval(90 * 60))
        #expect(due.new == 1 && due.tookUnterminatedLine == 5)
        #expect(!(await importer.hasPendingLine(fileName: Self.name)))
        #expect(
            try await Self.filed(ledger).compactMap { $0["tid"] as? String }.suffix(2) == [
                "toss2007070623383531154", "T5",
            ])
    }

    // MARK: - Order

    /// Rows are committed in file order: events are filed in that order, and of two versions of
    /// one row the first is the one stored (the second is a conflict), every time.
    @Test func rowsAreFiledInFileOrderAndTheFirstVersionIsStored() async throws {
        let (importer, ledger) = try make()
        var text = ""
        for n in 1...300 { text += "toss;SC0010;T\(n);O\(n);11100;x;u;\(1000 + n);N;20070706120000;1;10\n" }
        // A second version of row 7, with another amount.
        text += "toss;SC0010;T7;O7;11100;x;u;99999;N;20070706120000;1;10\n"
        let summary = try await importer.ingest(fileName: Self.name, bytes: Array(text.utf8), modifiedAt: Date())
        #expect(summary.rows == 301 && summary.new == 301 && summary.isClean)
        let events = try await Self.filed(ledger)
        #expect(events.prefix(300).compactMap { $0["tid"] as? String } == (1...300).map { "T\($0)" })
        let stored = try await ledger.notifications(limit: 1000).first { $0.tid == "T7" }
        #expect(stored?.amount == 1007, "the first version is the stored one")
        #expect(events.last?["kind"] as? String == "notification.conflict")
    }

    /// A REV row whose approval the ledger never saw (it may cancel an older day's) is filed.
    @Test func aCancelWhoseApprovalWasNeverSeenIsFiled() async throws {
        let (importer, ledger) = try make()
        let summary = try await importer.ingest(
            fileName: "toss_REV_20070706.dat", bytes: try fixture("toss_REV_20070706.dat"), modifiedAt: Date())
        #expect(summary.new == 3)
        let kinds = try await Self.filed(ledger).compactMap { $0["kind"] as? String }
        #expect(kinds == ["payment.canceled", "payment.canceled", "payment.canceled"])
    }

    // MARK: - What a row claims

    /// Issue 14, fault 3: a bad date or amount is refused with its line number, never filed with
    /// a null time or a guessed amount; its neighbours are filed.
    @Test func badDatesAndAmountsAreRefusedByLine() async throws {
        let (importer, ledger) = try make()
        let rows = [
            "toss;SC0010;T1;O1;11100;x;u;1000;N;20070706120000;1;10",
            "toss;SC0010;T2;O2;11100;x;u;1000;N;garbage;1;10",
            "toss;SC0010;T3;O3;11100;x;u;1000;N;20071306120000;1;10",
            "toss;SC0010;T4;O4;11100;x;u;1000;N;2007-02-30 12:00:00;1;10",
            "toss;SC0010;T5;O5;11100;x;u;+1000;N;20070706120000;1;10",
            "toss;SC0010;T6;O6;11100;x;u;1000;N;;1;10",
            "toss;SC0010;T7;O7;11100;x;u;1000;N;2007-07-06 12:00:00;1;10",
        ]
        let bytes = Array((rows.joined(separator: "\n") + "\n").utf8)
        let summary = try await importer.ingest(fileName: Self.name, bytes: bytes, modifiedAt: Date())
        #expect(summary.bad.map(\.line) == [2, 3, 4, 5, 6])
        #expect(summary.new == 2)
        #expect(summary.bad[0].detail.contains("paydate \"garbage\""), "\(summary.bad[0].detail)")
        #expect(summary.bad[3].detail.contains("amount"), "\(summary.bad[3].detail)")
        let events = try await Self.filed(ledger)
        #expect(events.compactMap { $0["tid"] as? String } == ["T1", "T7"])
        #expect(events.allSatisfy { $0["approved_at"] as? String == "2007-07-06T12:00:00+09:00" })
        #expect(try await ledger.quarantined(limit: 10).count == 5)
    }

    /// Issue 14, fault 3: a UTF-8 byte order mark is no part of the first MID, and the same file
    /// pushed again without it files nothing twice.
    @Test func aByteOrderMarkIsStripped() async throws {
        let (importer, ledger) = try make()
        let plain = try fixture(Self.name)
        let marked = try await importer.ingest(
            fileName: Self.name, bytes: TossFile.byteOrderMark + plain, modifiedAt: Date())
        #expect(marked.new == 4 && marked.isClean)
        #expect(try await Self.filed(ledger).allSatisfy { $0["merchant_id"] as? String == "toss" })
        let unmarked = try await importer.ingest(fileName: Self.name, bytes: plain, modifiedAt: Date())
        #expect(unmarked.rewritten && unmarked.new == 0 && unmarked.duplicates == 4)
        #expect(try await Self.filed(ledger).count == 4)
    }

    /// A byte order mark says UTF-8: the names read as UTF-8, not as CP949.
    @Test func aFileWithAByteOrderMarkReadsAsUTF8() async throws {
        let (importer, ledger) = try make()
        let row = "toss;SC0010;T1;O1;11100;국민;u;1000;N;20070706120000;1;10\n"
        _ = try await importer.ingest(
            fileName: Self.name, bytes: TossFile.byteOrderMark + Array(row.utf8), modifiedAt: Date())
        let event = try #require(try await Self.filed(ledger).first)
        #expect((event["card"] as? [String: Any])?["issuer_name"] as? String == "국민")
        #expect(event["charset"] as? String == "utf-8")
    }
}
