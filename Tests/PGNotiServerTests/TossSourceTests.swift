import Foundation
import Logging
import PGNotiCore
import PGNotiIntake
import PGNotiLogging
import PGNotiSpool
import PGNotiStore
import Synchronization
import Testing

@testable import PGNotiServer

#if canImport(Glibc)
    import Glibc
#endif

/// The Toss inbox watcher, one look at a time, with the wall clock that decides which days are
/// final given by the test.
@Suite struct TossInboxTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/toss")
    static let name = "toss_AUTH_20070706.dat"
    /// When 20070706 turns final with `final_after_minutes = 60`: 2007-07-07 01:00 KST.
    static let finalAt = KoreanTime.afterDay("20070706", minutes: 60)!

    struct Setup {
        let inbox: TossInbox
        let ledger: Ledger
        let directory: URL
        let importer: TossImporter
    }

    static func make(
        logger: Logger = Logger(label: "t"), stable: Duration = .zero,
        afterRead: (@Sendable (String) -> Void)? = nil
    ) throws -> Setup {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-inbox-\(UUID().uuidString.prefix(8))")
        let directory = root.appendingPathComponent("inbox")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("done"), withIntermediateDirectories: true)
        let ledger = try Ledger(path: root.appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(providers: [TossPayments()]), store: ledger, logger: logger)
        let importer = TossImporter(intake: intake, progress: ledger, logger: logger, finalAfterMinutes: 60)
        let inbox = TossInbox(
            directory: directory.path, importer: importer, progress: ledger, stable: stable, poll: .milliseconds(100),
            finalAfterMinutes: 60, logger: logger, afterRead: afterRead)
        return Setup(inbox: inbox, ledger: ledger, directory: directory, importer: importer)
    }

    /// Tids of the events filed so far, in filing order.
    static func filedTids(_ ledger: Ledger) async throws -> [String] {
        try await filed(ledger).compactMap { $0["tid"] as? String }
    }

    static func filed(_ ledger: Ledger) async throws -> [[String: Any]] {
        try await ledger.pendingOutbox(limit: 100).compactMap {
            try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any]
        }
    }

    static func authBytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
    }

    /// The fixture's lines, each with its newline.
    static func authLines() throws -> [[UInt8]] {
        try authBytes().split(separator: UInt8(ascii: "\n")).map { Array($0) + [UInt8(ascii: "\n")] }
    }

    /// Sets a file's modification time: how long it has been unchanged, as the inbox sees it.
    static func setModified(_ url: URL, _ date: Date) throws {
        try FileManager.default.setAttributes([.modificationDate: date], ofItemAtPath: url.path)
    }

    /// Appends in place, as an FTP upload that resumes.
    static func append(_ bytes: [UInt8], to url: URL) throws {
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    static func isDone(_ setup: Setup, _ name: String) -> Bool {
        FileManager.default.fileExists(atPath: setup.directory.appendingPathComponent("done/\(name)").path)
    }

    /// Written in place (no rename), its last line without a newline: the quiet file is read
    /// without that line, which may be an upload that stalled. The day turning final is not
    /// enough to take it: only once the file has also been unchanged for final_after_minutes is
    /// it read (and filed, since it reads as a whole row), and the file moves to done/.
    @Test func anUnterminatedLastLineIsFiledOnceTheFileIsQuietAfterItsDay() async throws {
        let setup = try Self.make()
        var bytes = try Self.authBytes()
        try #require(bytes.last == UInt8(ascii: "\n"))
        bytes.removeLast()
        let path = setup.directory.appendingPathComponent(Self.name)
        try Data(bytes).write(to: path)
        // The 00:30 push of the day before, say.
        let modified = Self.finalAt.addingTimeInterval(-30 * 60)
        try Self.setModified(path, modified)
        var seen: [String: TossInbox.Seen] = [:]

        let beforeFinal = Self.finalAt.addingTimeInterval(-1)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: beforeFinal)
        let early = try await Self.filedTids(setup.ledger)
        #expect(early.count == 3, "the unterminated last line waits while the file may still grow")
        #expect(!early.contains("toss2007070623383531154"))
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: beforeFinal)
        #expect(try await Self.filedTids(setup.ledger).count == 3, "an unchanged quiet file is not read again")

        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        #expect(try await Self.filedTids(setup.ledger).count == 3, "final, but changed only 30 minutes ago")
        #expect(FileManager.default.fileExists(atPath: path.path), "not moved with a line left")

        await setup.inbox.scan(&seen, renamedIn: [], wallClock: modified.addingTimeInterval(3600))
        let all = try await Self.filedTids(setup.ledger)
        #expect(all.count == 4, "one event per row")
        #expect(Set(all).count == 4 && all.last == "toss2007070623383531154", "the last row filed once")
        #expect(!FileManager.default.fileExists(atPath: path.path))
        #expect(Self.isDone(setup, Self.name))
        let progress = try #require(try await setup.ledger.tossProgress(fileName: Self.name))
        #expect(progress.finalizedAtMicros != nil)
        #expect(
            progress.ingestedBytes == bytes.lastIndex(of: UInt8(ascii: "\n"))! + 1,
            "the position never passes a line without its newline")
        #expect(seen[Self.name] == nil, "forgotten once final")
    }

    /// The last read files nothing twice: a final file already read to its last newline files
    /// nothing more when it moves to done/.
    @Test func aWholeFileReadBeforeItIsFinalFilesNothingMoreWhenFinal() async throws {
        let setup = try Self.make()
        let path = setup.directory.appendingPathComponent(Self.name)
        try Data(try Self.authBytes()).write(to: path)
        try Self.setModified(path, Self.finalAt.addingTimeInterval(-55 * 60))  // the 00:05 push
        var seen: [String: TossInbox.Seen] = [:]
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(-60))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        #expect(!Self.isDone(setup, Self.name), "final, but unchanged for 55 minutes only")
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(5 * 60))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        #expect(Self.isDone(setup, Self.name))
    }

    /// Renamed in, a file is read at once, without waiting for stable_seconds; but a last line
    /// without its newline is still not taken before its day is over and the file quiet.
    @Test func aRenamedInFileIsReadAtOnceButItsUnterminatedLineStillWaits() async throws {
        let setup = try Self.make(stable: .seconds(3600))
        var bytes = try Self.authBytes()
        bytes.removeLast()
        let path = setup.directory.appendingPathComponent(Self.name)
        try Data(bytes).write(to: path)
        let modified = Self.finalAt.addingTimeInterval(-60)
        try Self.setModified(path, modified)
        var seen: [String: TossInbox.Seen] = [:]
        await setup.inbox.scan(&seen, renamedIn: [Self.name], wallClock: Self.finalAt)
        #expect(try await Self.filedTids(setup.ledger).count == 3)
        #expect(FileManager.default.fileExists(atPath: path.path))
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: modified.addingTimeInterval(3600))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        #expect(Self.isDone(setup, Self.name), "renamed in, read to its end, final: moved")
    }

    /// A file with no line that splits into a Toss row: said once, not retried at every look,
    /// and when final it moves to done/ like any other (nothing filed).
    @Test func anUnreadableFileIsReportedOnceAndStillFinalized() async throws {
        let sink = LogSink.memory()
        let setup = try Self.make(logger: Logger.json(level: .info, sink: sink))
        try Data("not a toss row\n".utf8).write(to: setup.directory.appendingPathComponent(Self.name))
        var seen: [String: TossInbox.Seen] = [:]
        let beforeFinal = Self.finalAt.addingTimeInterval(-60)
        await setup.inbox.scan(&seen, renamedIn: [Self.name], wallClock: beforeFinal)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: beforeFinal)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        sink.flush()
        let errors = sink.lines.filter { $0.contains("\"Toss file not read\"") }
        #expect(errors.count == 1, "\(sink.lines)")
        #expect(errors.first?.contains("no line splits into the 12 fields") == true)
        #expect(try await Self.filedTids(setup.ledger).isEmpty)
        #expect(Self.isDone(setup, Self.name))
    }

    /// Issue 14, fault 1 in the inbox: a past day's file written in place stalls mid-line for
    /// longer than stable_seconds. The quiet file is read up to its last newline and stays; the
    /// upload resumes and the rest is read; no row is lost and the file moves to done/ only once
    /// it has been unchanged for final_after_minutes.
    @Test func aPastDaysFileWrittenInPlaceWithAStallLosesNoRow() async throws {
        let setup = try Self.make(stable: .seconds(2))
        let rows = try Self.authLines()
        let path = setup.directory.appendingPathComponent(Self.name)
        // Two rows and part of the third; the day (20070706) is long final.
        try Data(Array(rows[0..<2].joined()) + Array(rows[2].prefix(40))).write(to: path)
        var seen: [String: TossInbox.Seen] = [:]
        let t0 = ContinuousClock.now
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0)
        #expect(try await Self.filedTids(setup.ledger).isEmpty, "first seen: not stable yet")
        // The stall: stable for 2.5 s.
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(2500))
        #expect(try await Self.filedTids(setup.ledger).count == 2, "read up to its last newline")
        #expect(FileManager.default.fileExists(atPath: path.path), "not moved while it may still be written")

        // The upload resumes.
        try Self.append(Array(rows[2].dropFirst(40)) + Array(rows[3...].joined()), to: path)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(3000))
        #expect(try await Self.filedTids(setup.ledger).count == 2, "changed: stable_seconds start again")
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(5100))
        let all = try await Self.filedTids(setup.ledger)
        #expect(all.count == 4 && Set(all).count == 4)
        #expect(try await setup.ledger.quarantined(limit: 10).isEmpty, "no cut row refused")
        #expect(FileManager.default.fileExists(atPath: path.path), "just written: not moved yet")

        let modified = try #require(TossInbox.stamp(path.path)).modifiedAt
        await setup.inbox.scan(
            &seen, renamedIn: [], wallClock: modified.addingTimeInterval(3600), monotonic: t0 + .seconds(6))
        #expect(Self.isDone(setup, Self.name))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
    }

    /// Stable means size and modification time: a file rewritten with the same size is not
    /// stable until stable_seconds after that rewrite.
    @Test func stableMeansSizeAndModificationTimeBothUnchanged() async throws {
        let setup = try Self.make(stable: .seconds(2))
        let path = setup.directory.appendingPathComponent("toss_AUTH_20991231.dat")
        try Data(try Self.authBytes()).write(to: path)
        var seen: [String: TossInbox.Seen] = [:]
        let t0 = ContinuousClock.now
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0)
        // Same size, new time (a push of identical length written in place).
        try Self.setModified(path, Date().addingTimeInterval(5))
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(1500))
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(3000))
        #expect(try await Self.filedTids(setup.ledger).isEmpty, "the time changed 1.5 s ago")
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(3600))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
    }

    /// A file that changes after it was read and before it would move to done/ stays in the
    /// inbox (one more look right before the move), and what was added is filed.
    @Test func aFileThatChangesRightBeforeItsMoveStays() async throws {
        let rows = try Self.authLines()
        let extra = Array("toss;SC0030;T5;O5;88;x;u;1000;N;20070706235959;0;10\n".utf8)
        let appended = Mutex(false)
        let path = Mutex<URL?>(nil)
        let setup = try Self.make(afterRead: { _ in
            guard let url = path.withLock({ $0 }), !appended.withLock({ $0 }) else { return }
            appended.withLock { $0 = true }
            try? Self.append(extra, to: url)
        })
        let url = setup.directory.appendingPathComponent(Self.name)
        path.withLock { $0 = url }
        try Data(Array(rows.joined())).write(to: url)
        try Self.setModified(url, Self.finalAt.addingTimeInterval(-3 * 3600))
        var seen: [String: TossInbox.Seen] = [:]
        // Final, and quiet for hours as it was read; then it changes.
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(3600))
        #expect(appended.withLock { $0 })
        #expect(FileManager.default.fileExists(atPath: url.path), "changed since it was read: not moved")
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        try Self.setModified(url, Self.finalAt.addingTimeInterval(-3 * 3600))
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(3600))
        #expect(try await Self.filedTids(setup.ledger).last == "T5", "what was added is read")
        #expect(Self.isDone(setup, Self.name))
    }

    /// Issue 14, fault 2 in the inbox: a day's REV file waits until that day's AUTH file has
    /// been read as it is now, so a same-day cancel is filed after its approval even when the
    /// small REV file settles before the large AUTH upload.
    @Test func aRevFileWaitsForItsDaysAuthFile() async throws {
        let sink = LogSink.memory()
        let setup = try Self.make(logger: Logger.json(level: .info, sink: sink), stable: .seconds(2))
        let day = "20991231"  // never final during the test
        let auth = setup.directory.appendingPathComponent("toss_AUTH_\(day).dat")
        let rev = setup.directory.appendingPathComponent("toss_REV_\(day).dat")
        func approval(_ n: Int) -> String { "toss;SC0010;A\(n);O\(n);11100;x;u;1000;N;20991231100000;1;10\n" }
        func cancel(_ n: Int) -> String { "toss;SC0010;A\(n);O\(n);11100;x;u;1000;N;20991231110000;1;20\n" }
        try Data(cancel(1).utf8).write(to: rev)
        var seen: [String: TossInbox.Seen] = [:]
        let t0 = ContinuousClock.now
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(3))
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(4))
        #expect(try await Self.filedTids(setup.ledger).isEmpty, "no AUTH file yet: the REV file waits")
        sink.flush()
        #expect(sink.lines.filter { $0.contains("waits until the same day's AUTH file") }.count == 1)

        // The AUTH file arrives (upload in progress, then done).
        try Data((approval(1) + "toss;SC0010;A2;O2;11100;x;u;10").utf8).write(to: auth)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(5))
        try Self.append(Array("00;N;20991231100500;1;10\n".utf8), to: auth)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(6))
        #expect(try await Self.filedTids(setup.ledger).isEmpty, "the AUTH file is not stable yet")
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(8))
        let first = try await Self.filed(setup.ledger)
        #expect(first.compactMap { $0["tid"] as? String } == ["A1", "A2", "A1"])
        #expect(
            first.compactMap { $0["kind"] as? String } == ["payment.approved", "payment.approved", "payment.canceled"])

        // The next push: the small REV file settles while the AUTH file is still uploading.
        try Self.append(Array(cancel(3).utf8), to: rev)
        try Self.append(Array(approval(3).utf8), to: auth)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .seconds(9))
        try Self.append(Array(approval(4).utf8), to: auth)
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(10500))
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(11500))
        #expect(try await Self.filedTids(setup.ledger).count == 3, "REV settled, AUTH still changing: both wait")
        await setup.inbox.scan(&seen, renamedIn: [], monotonic: t0 + .milliseconds(12600))
        let next = try await Self.filed(setup.ledger).dropFirst(3)
        #expect(next.compactMap { $0["tid"] as? String } == ["A3", "A4", "A3"])
        #expect(next.last?["kind"] as? String == "payment.canceled", "the cancel after its approval")
    }

    /// A REV file whose day's AUTH file never comes is read once the day is final; one whose
    /// AUTH file was read before (and moved to done/) is read at once.
    @Test func aRevFileWithoutItsAuthFileIsReadWhenTheDayIsFinal() async throws {
        let setup = try Self.make()
        let rev = "toss_REV_20070706.dat"
        try Data(contentsOf: Self.fixtures.appendingPathComponent(rev)).write(
            to: setup.directory.appendingPathComponent(rev))
        var seen: [String: TossInbox.Seen] = [:]
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(-60))
        #expect(try await Self.filedTids(setup.ledger).isEmpty)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        #expect(try await Self.filedTids(setup.ledger).count == 3, "final: read without an AUTH file")

        let other = try Self.make()
        _ = try await other.importer.ingest(fileName: Self.name, bytes: try Self.authBytes(), modifiedAt: Date())
        try Data(contentsOf: Self.fixtures.appendingPathComponent(rev)).write(
            to: other.directory.appendingPathComponent(rev))
        var seenOther: [String: TossInbox.Seen] = [:]
        await other.inbox.scan(&seenOther, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(-60))
        #expect(try await Self.filedTids(other.ledger).count == 7, "its AUTH file was read before")
    }
}

/// The daemon's pull schedule: today, and yesterday until its files are final (Toss sends the
/// previous day in full at 00:05 KST; `final_after_minutes` past midnight it is final).
@Suite struct TossPullScheduleTests {
    /// A moment in Korean time (UTC+9), from its parts.
    static func kst(_ year: Int, _ month: Int, _ day: Int, _ hour: Int, _ minute: Int, _ second: Int = 0) -> Date {
        var components = DateComponents()
        (components.year, components.month, components.day) = (year, month, day)
        (components.hour, components.minute, components.second) = (hour, minute, second)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(secondsFromGMT: 9 * 3600)!
        return calendar.date(from: components)!
    }

    @Test func yesterdayIsPulledUntilItIsFinal() {
        let pull = { (date: Date) in TossPuller.daysToPull(now: date, finalAfterMinutes: 60) }
        #expect(pull(Self.kst(2026, 11, 24, 0, 0)) == ["20261123", "20261124"], "midnight: yesterday is not final")
        #expect(pull(Self.kst(2026, 11, 24, 0, 5)) == ["20261123", "20261124"], "the 00:05 push of yesterday in full")
        #expect(pull(Self.kst(2026, 11, 24, 0, 59, 59)) == ["20261123", "20261124"])
        #expect(pull(Self.kst(2026, 11, 24, 1, 0)) == ["20261124"], "final at 01:00: only today")
        #expect(pull(Self.kst(2026, 11, 24, 12, 0)) == ["20261124"], "midday: only today")
        #expect(pull(Self.kst(2026, 11, 24, 23, 59, 59)) == ["20261124"])
    }

    /// The days are Korean days, not UTC ones: 00:30 KST is still the previous day in UTC.
    @Test func daysAreKoreanAcrossMonthAndYearEnds() {
        let newYear = Self.kst(2027, 1, 1, 0, 30)
        #expect(TossPuller.daysToPull(now: newYear, finalAfterMinutes: 60) == ["20261231", "20270101"])
        #expect(
            TossPuller.daysToPull(now: Self.kst(2028, 3, 1, 0, 10), finalAfterMinutes: 60) == ["20280229", "20280301"])
        // 09:30 KST is 00:30 UTC: in Korea, long past the previous day's final moment.
        #expect(TossPuller.daysToPull(now: Self.kst(2026, 11, 24, 9, 30), finalAfterMinutes: 60) == ["20261124"])
    }

    /// The daemon goes on pulling yesterday past its final moment while its last body ended in
    /// a row without its newline not yet taken: that row is taken only once the body has come
    /// back unchanged for final_after_minutes.
    @Test func yesterdayIsPulledWhileItsLastRowWaits() async throws {
        let setup = try TossInboxTests.make()
        let puller = TossPuller(
            url: "http://127.0.0.1:9/trxdown.jsp", merchantID: "toss", mertKey: SecretValues(["unused"]),
            timeout: .seconds(1), importer: setup.importer, logger: Logger(label: "t"))
        let schedule = TossPullSchedule(
            puller: puller, every: .seconds(1200), finalAfterMinutes: 60, logger: Logger(label: "t"))
        let midday = Self.kst(2026, 11, 24, 12, 0)
        #expect(await schedule.days(now: midday) == ["20261124"])
        try await setup.ledger.saveTossProgress(
            TossFileProgress(
                fileName: "toss_REV_20261123.dat", ingestedBytes: 0, ingestedLines: 0, prefixSHA256: Digest.sha256([]),
                size: 10,
                rows: 0, updatedAt: Date(), pendingLine: 1))
        #expect(await schedule.days(now: midday) == ["20261123", "20261124"])
        #expect(await schedule.days(now: Self.kst(2026, 11, 24, 0, 30)) == ["20261123", "20261124"], "not twice")
    }

    @Test func finalAfterMinutesMovesTheCutOff() {
        let at = Self.kst(2026, 11, 24, 0, 30)
        #expect(TossPuller.daysToPull(now: at, finalAfterMinutes: 0) == ["20261124"], "final at midnight")
        #expect(TossPuller.daysToPull(now: at, finalAfterMinutes: 30) == ["20261124"], "final at 00:30 exactly")
        #expect(TossPuller.daysToPull(now: at, finalAfterMinutes: 31) == ["20261123", "20261124"])
        #expect(
            TossPuller.daysToPull(now: Self.kst(2026, 11, 24, 23, 59), finalAfterMinutes: 1440)
                == ["20261123", "20261124"], "final only at the next midnight")
    }
}
