import Foundation
import Logging
import PGNotiCore
import PGNotiIntake
import PGNotiLogging
import PGNotiSpool
import PGNotiStore
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
    }

    static func make(logger: Logger = Logger(label: "t")) throws -> Setup {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pgnoti-inbox-\(UUID().uuidString.prefix(8))")
        let directory = root.appendingPathComponent("inbox")
        try FileManager.default.createDirectory(
            at: directory.appendingPathComponent("done"), withIntermediateDirectories: true)
        let ledger = try Ledger(path: root.appendingPathComponent("db.sqlite").path)
        let intake = Intake(policy: IntakePolicy(providers: [TossPayments()]), store: ledger, logger: logger)
        let inbox = TossInbox(
            directory: directory.path, importer: TossImporter(intake: intake, ledger: ledger, logger: logger),
            ledger: ledger, stable: .zero, poll: .milliseconds(100), finalAfterMinutes: 60, logger: logger)
        return Setup(inbox: inbox, ledger: ledger, directory: directory)
    }

    /// Tids of the events filed so far, in filing order.
    static func filedTids(_ ledger: Ledger) async throws -> [String] {
        try await ledger.pendingOutbox(limit: 100).compactMap {
            (try JSONSerialization.jsonObject(with: Data($0.payload)) as? [String: Any])?["tid"] as? String
        }
    }

    static func authBytes() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixtures.appendingPathComponent(name)))
    }

    /// Written in place (no rename, so never "renamed in"), its last line without a newline: the
    /// quiet file is read without that line, which may be an upload that stalled; when the day
    /// turns final the file is read once more as whole, every row is filed, and it moves to done/.
    @Test func anUnterminatedLastLineIsFiledWhenTheDayTurnsFinal() async throws {
        let setup = try Self.make()
        var bytes = try Self.authBytes()
        try #require(bytes.last == UInt8(ascii: "\n"))
        bytes.removeLast()
        let path = setup.directory.appendingPathComponent(Self.name)
        try Data(bytes).write(to: path)
        var seen: [String: TossInbox.Seen] = [:]

        let beforeFinal = Self.finalAt.addingTimeInterval(-1)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: beforeFinal)
        let early = try await Self.filedTids(setup.ledger)
        #expect(early.count == 3, "the unterminated last line waits while the file may still grow")
        #expect(!early.contains("toss2007070623383531154"))
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: beforeFinal)
        #expect(try await Self.filedTids(setup.ledger).count == 3, "an unchanged quiet file is not read again")
        #expect(FileManager.default.fileExists(atPath: path.path), "not final yet")

        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        let all = try await Self.filedTids(setup.ledger)
        #expect(all.count == 4, "one event per row")
        #expect(Set(all).count == 4 && all.contains("toss2007070623383531154"), "the last row filed once")
        #expect(!FileManager.default.fileExists(atPath: path.path))
        #expect(
            FileManager.default.fileExists(atPath: setup.directory.appendingPathComponent("done/\(Self.name)").path))
        let progress = try #require(try await setup.ledger.tossProgress(fileName: Self.name))
        #expect(progress.finalizedAtMicros != nil)
        #expect(progress.ingestedBytes == bytes.count, "read to its very end")
        #expect(seen[Self.name] == nil, "forgotten once final")
    }

    /// The last read as whole files nothing twice: a final file already read to its last newline
    /// files nothing more when it moves to done/.
    @Test func aWholeFileReadBeforeItIsFinalFilesNothingMoreWhenFinal() async throws {
        let setup = try Self.make()
        let path = setup.directory.appendingPathComponent(Self.name)
        try Data(try Self.authBytes()).write(to: path)
        var seen: [String: TossInbox.Seen] = [:]
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt.addingTimeInterval(-60))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        await setup.inbox.scan(&seen, renamedIn: [], wallClock: Self.finalAt)
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        #expect(
            FileManager.default.fileExists(atPath: setup.directory.appendingPathComponent("done/\(Self.name)").path))
    }

    /// Renamed in, a file is whole at once: its unterminated last line is filed on the first read.
    @Test func aRenamedInFileIsTakenWholeAtOnce() async throws {
        let setup = try Self.make()
        var bytes = try Self.authBytes()
        bytes.removeLast()
        try Data(bytes).write(to: setup.directory.appendingPathComponent(Self.name))
        var seen: [String: TossInbox.Seen] = [:]
        await setup.inbox.scan(&seen, renamedIn: [Self.name], wallClock: Self.finalAt.addingTimeInterval(-60))
        #expect(try await Self.filedTids(setup.ledger).count == 4)
        #expect(FileManager.default.fileExists(atPath: setup.directory.appendingPathComponent(Self.name).path))
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
        #expect(
            FileManager.default.fileExists(atPath: setup.directory.appendingPathComponent("done/\(Self.name)").path))
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
