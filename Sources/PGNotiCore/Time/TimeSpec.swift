import Foundation

/// A point in time as operators type it on the command line: ISO 8601 (`2026-11-23`,
/// `2026-11-23T10:00`, `2026-11-23T10:00+09:00`) or a span back from now (`30m`, `2h`, `7d`).
/// A date or time without a zone is Korean time, like everything else pgnoti prints.
public enum TimeSpec {
    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    public static func parse(_ text: String, now: Date) throws(Invalid) -> Date {
        let trimmed = text.trimmingSpaces
        if let span = span(trimmed) { return now.addingTimeInterval(-span) }
        if let date = iso8601(trimmed) { return date }
        throw Invalid(
            description: "\"\(text)\" is neither ISO 8601 (2026-11-23, 2026-11-23T10:00+09:00) nor a span (30m, 2h, 7d)"
        )
    }

    /// A cutoff for commands that delete (`purge --older-than`): ISO 8601, or an age in `d`, `h`,
    /// `min` or `s` (and `w`). A bare `m` is refused: an operator who means a month must not
    /// strip everything older than a minute.
    public static func cutoff(_ text: String, now: Date) throws(Invalid) -> Date {
        let trimmed = text.trimmingSpaces
        if trimmed.hasSuffix("min"), let count = Int(trimmed.dropLast(3)), count >= 0 {
            return now.addingTimeInterval(-TimeInterval(count) * 60)
        }
        if trimmed.hasSuffix("m"), Int(trimmed.dropLast()) != nil {
            throw Invalid(
                description:
                    "\"\(text)\" is ambiguous here: write \(trimmed.dropLast())min for minutes, or days (30d) for a month"
            )
        }
        if let span = span(trimmed) { return now.addingTimeInterval(-span) }
        if let date = iso8601(trimmed) { return date }
        throw Invalid(
            description: "\"\(text)\" is neither ISO 8601 (2026-11-23) nor an age in d, h, min or s (400d, 12h, 90min)"
        )
    }

    /// Seconds in `30s`, `30m`, `2h`, `7d`, `2w`; nil when it is not a span.
    public static func span(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let count = Int(text.dropLast()), count >= 0 else { return nil }
        let seconds: TimeInterval
        switch unit {
        case "s": seconds = 1
        case "m": seconds = 60
        case "h": seconds = 3600
        case "d": seconds = 86_400
        case "w": seconds = 7 * 86_400
        default: return nil
        }
        return TimeInterval(count) * seconds
    }

    static func iso8601(_ text: String) -> Date? {
        // yyyy-MM-dd[THH:mm[:ss[.fff]]][Z|±HH:mm|±HHmm]
        let chars = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= chars.count, chars[range].allSatisfy({ (0x30...0x39).contains($0) }) else {
                return nil
            }
            return Int(String(decoding: chars[range], as: UTF8.self))
        }
        guard chars.count >= 10, chars[4] == UInt8(ascii: "-"), chars[7] == UInt8(ascii: "-"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0
        var minute = 0
        var second = 0.0
        var i = 10
        if i < chars.count, chars[i] == UInt8(ascii: "T") || chars[i] == UInt8(ascii: " ") {
            guard let h = number(i + 1..<i + 3), i + 3 < chars.count, chars[i + 3] == UInt8(ascii: ":"),
                let m = number(i + 4..<i + 6), h < 24, m < 60
            else { return nil }
            hour = h
            minute = m
            i += 6
            if i < chars.count, chars[i] == UInt8(ascii: ":") {
                guard let s = number(i + 1..<i + 3), s < 61 else { return nil }
                second = Double(s)
                i += 3
                if i < chars.count, chars[i] == UInt8(ascii: ".") {
                    var j = i + 1
                    var fraction = "0."
                    while j < chars.count, (0x30...0x39).contains(chars[j]) {
                        fraction.append(Character(UnicodeScalar(chars[j])))
                        j += 1
                    }
                    guard j > i + 1 else { return nil }
                    second += Double(fraction) ?? 0
                    i = j
                }
            }
        }
        var offsetSeconds = 9 * 3600
        if i < chars.count {
            if chars[i] == UInt8(ascii: "Z"), i + 1 == chars.count {
                offsetSeconds = 0
            } else if chars[i] == UInt8(ascii: "+") || chars[i] == UInt8(ascii: "-") {
                let sign = chars[i] == UInt8(ascii: "+") ? 1 : -1
                let rest = Array(chars[(i + 1)...])
                let digits = rest.filter { $0 != UInt8(ascii: ":") }
                guard rest.count == 5 || rest.count == 4, digits.count == 4,
                    let oh = Int(String(decoding: digits[0..<2], as: UTF8.self)),
                    let om = Int(String(decoding: digits[2..<4], as: UTF8.self)), oh < 24, om < 60
                else { return nil }
                offsetSeconds = sign * (oh * 3600 + om * 60)
            } else {
                return nil
            }
        }
        let days = KoreanTime.daysFromCivil(year: Int64(year), month: Int64(month), day: Int64(day))
        let local = Double(days) * 86_400 + Double(hour * 3600 + minute * 60) + second
        return Date(timeIntervalSince1970: local - Double(offsetSeconds))
    }
}
