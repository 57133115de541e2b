import Foundation
import Testing

@testable import PGNotiCore

@Suite struct TimeSpecTests {
    let now = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func spansCountBackFromNow() throws {
        #expect(try TimeSpec.parse("30m", now: now) == now.addingTimeInterval(-1800))
        #expect(try TimeSpec.parse("2h", now: now) == now.addingTimeInterval(-7200))
        #expect(try TimeSpec.parse("7d", now: now) == now.addingTimeInterval(-7 * 86_400))
        #expect(try TimeSpec.parse("45s", now: now) == now.addingTimeInterval(-45))
    }

    @Test func isoDatesWithoutAZoneAreKoreanTime() throws {
        // 2026-11-23T00:00+09:00 = 2026-11-22T15:00Z
        let midnight = try TimeSpec.parse("2026-11-23", now: now)
        #expect(KoreanTime.iso8601(midnight) == "2026-11-23T00:00:00.000+09:00")
        #expect(try TimeSpec.parse("2026-11-23T10:00", now: now) == midnight.addingTimeInterval(36_000))
        #expect(try TimeSpec.parse("2026-11-23T10:00+09:00", now: now) == midnight.addingTimeInterval(36_000))
        #expect(try TimeSpec.parse("2026-11-23T01:00Z", now: now) == midnight.addingTimeInterval(36_000))
        #expect(try TimeSpec.parse("2026-11-23T10:00:30.5+0900", now: now) == midnight.addingTimeInterval(36_030.5))
    }

    @Test(arguments: ["", "yesterday", "2026-13-01", "2026-11-23T25:00", "10x", "-5m", "2026-11-23T10:00+9"])
    func nonsenseIsRefusedWithAHint(text: String) {
        do {
            _ = try TimeSpec.parse(text, now: now)
            Issue.record("\(text) accepted")
        } catch {
            #expect(error.description.contains("ISO 8601"))
        }
    }
}

@Suite struct KoreanDayTests {
    @Test func daysAndMidnightsAreKorean() throws {
        // 2026-11-23T15:30:00Z is 2026-11-24 00:30 in Korea.
        let date = Date(timeIntervalSince1970: 1_795_447_800)
        #expect(KoreanTime.day(date) == "20261124")
        #expect(KoreanTime.minutesSinceMidnight(date) == 30)
        let end = try #require(KoreanTime.afterDay("20261123", minutes: 60))
        #expect(KoreanTime.iso8601(end) == "2026-11-24T01:00:00.000+09:00")
        #expect(KoreanTime.afterDay("20261301", minutes: 0) == nil)
        #expect(KoreanTime.afterDay("2026113", minutes: 0) == nil)
        let leap = try #require(KoreanTime.afterDay("20240228", minutes: 0))
        #expect(KoreanTime.day(leap) == "20240229")
    }
}

struct CutoffTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func daysHoursMinutesAndSecondsAreAges() throws {
        #expect(try TimeSpec.cutoff("400d", now: now) == now.addingTimeInterval(-400 * 86_400))
        #expect(try TimeSpec.cutoff("12h", now: now) == now.addingTimeInterval(-12 * 3600))
        #expect(try TimeSpec.cutoff("90min", now: now) == now.addingTimeInterval(-90 * 60))
        #expect(try TimeSpec.cutoff("30s", now: now) == now.addingTimeInterval(-30))
        #expect(try TimeSpec.cutoff("2026-01-01", now: now) == TimeSpec.parse("2026-01-01", now: now))
    }

    @Test func aBareMIsRefusedAsAmbiguous() {
        do {
            _ = try TimeSpec.cutoff("1m", now: now)
            Issue.record("1m taken")
        } catch {
            #expect(error.description.contains("ambiguous"))
            #expect(error.description.contains("1min"))
        }
        // The list filters keep their documented minutes.
        #expect((try? TimeSpec.parse("30m", now: now)) == now.addingTimeInterval(-1800))
    }
}
