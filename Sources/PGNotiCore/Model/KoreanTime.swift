import Foundation

/// PGs write local Korean time without a zone; Korea has had no DST since 1988, so +09:00 is exact.
public enum KoreanTime {
    static let offsetSeconds: Int64 = 9 * 3600

    /// `yyMMddHHmmss` (Smartro/TomatoPay AuthDate), `yyyyMMddHHmmss`, or the same with
    /// separators (`2024-11-23 15:30:12`, Toss files) → `yyyy-MM-ddTHH:mm:ss+09:00`.
    /// nil when the text is not a plausible timestamp: a wrong date must not pass as a right one.
    public static func fromCompact(_ text: String?) -> String? {
        guard let text, let digits = digitsOnly(text, separators: "-:. T/") else { return nil }
        return fromDigits(digits.count == 12 ? "20" + digits : digits)
    }

    /// Innopay splits date and time (§4.2.1, width 10): `yyyyMMdd` or `yyyy-MM-dd`, and
    /// `HHmmss` or `HH:mm:ss`.
    public static func fromDateAndTime(_ date: String?, _ time: String?) -> String? {
        guard let date, let time, let day = digitsOnly(date, separators: "-./"), day.count == 8,
            let clock = digitsOnly(time, separators: ":"), clock.count == 6
        else { return nil }
        return fromDigits(day + clock)
    }

    /// The digits of `text` once the allowed separators are removed; nil if anything else is there.
    private static func digitsOnly(_ text: String, separators: String) -> String? {
        var out = ""
        for c in text.trimmingCharacters(in: .whitespaces) {
            if c.isASCIIDigit {
                out.append(c)
            } else if !separators.contains(c) {
                return nil
            }
        }
        return out
    }

    private static func fromDigits(_ digits: String) -> String? {
        guard digits.count == 14 else { return nil }
        let d = Array(digits)
        func part(_ from: Int, _ length: Int) -> Int { Int(String(d[from..<from + length]))! }
        let (month, day, hour, minute, second) = (part(4, 2), part(6, 2), part(8, 2), part(10, 2), part(12, 2))
        guard isCalendarDay(year: part(0, 4), month: month, day: day), hour < 24, minute < 60, second < 61 else {
            return nil
        }
        return
            "\(String(d[0..<4]))-\(String(d[4..<6]))-\(String(d[6..<8]))T\(String(d[8..<10])):\(String(d[10..<12])):\(String(d[12..<14]))+09:00"
    }

    /// A day that exists in the Gregorian calendar: no 31 June, no 29 February outside leap years.
    public static func isCalendarDay(year: Int, month: Int, day: Int) -> Bool {
        guard (1...12).contains(month), day >= 1 else { return false }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        return day <= days
    }

    /// `yyyy-MM-ddTHH:mm:ss.SSS+09:00`. Calendar arithmetic by hand: Foundation's ISO 8601
    /// styles write the offset as `+0900`, and this runs for every log line.
    public static func iso8601(_ date: Date) -> String {
        var out = [UInt8]()
        out.reserveCapacity(29)
        appendISO8601(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the `iso8601` form to a byte buffer without building a String.
    public static func appendISO8601(_ date: Date, to out: inout [UInt8]) {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) + offsetSeconds * 1000
        let dayMillis: Int64 = 86_400_000
        let days = millis >= 0 ? millis / dayMillis : (millis - dayMillis + 1) / dayMillis
        var rest = millis - days * dayMillis
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        let hour = rest / 3_600_000
        rest %= 3_600_000
        let minute = rest / 60_000
        rest %= 60_000
        let second = rest / 1000
        let milli = rest % 1000
        func pad(_ value: Int64, _ width: Int) {
            var digits = [UInt8](repeating: 0x30, count: width)
            var v = max(0, value)
            var i = width - 1
            while i >= 0 {
                digits[i] = UInt8(0x30 + v % 10)
                v /= 10
                i -= 1
            }
            out.append(contentsOf: digits)
        }
        pad(year, 4)
        out.append(UInt8(ascii: "-"))
        pad(month, 2)
        out.append(UInt8(ascii: "-"))
        pad(day, 2)
        out.append(UInt8(ascii: "T"))
        pad(hour, 2)
        out.append(UInt8(ascii: ":"))
        pad(minute, 2)
        out.append(UInt8(ascii: ":"))
        pad(second, 2)
        out.append(UInt8(ascii: "."))
        pad(milli, 3)
        out.append(contentsOf: Array("+09:00".utf8))
    }

    /// `yyyyMMdd`, the Korean calendar day of `date` (how Toss names its files).
    public static func day(_ date: Date) -> String {
        String(iso8601(date).prefix(10).filter(\.isASCIIDigit))
    }

    /// `yyyyMMdd-HHmmss` in Korean time: a file-name stamp that sorts by time.
    public static func compactStamp(_ date: Date) -> String {
        let iso = iso8601(date)
        return String(iso.prefix(10).filter(\.isASCIIDigit)) + "-"
            + String(iso.dropFirst(11).prefix(8).filter(\.isASCIIDigit))
    }

    /// Minutes since midnight in Korea.
    public static func minutesSinceMidnight(_ date: Date) -> Int {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down)) + offsetSeconds
        return Int(((seconds % 86_400) + 86_400) % 86_400 / 60)
    }

    /// The moment `minutes` past the midnight that ends Korean day `yyyyMMdd`; nil for a
    /// malformed day.
    public static func afterDay(_ day: String, minutes: Int) -> Date? {
        let digits = day.utf8.map { Int64($0) - 0x30 }
        guard digits.count == 8, digits.allSatisfy({ (0...9).contains($0) }) else { return nil }
        let year = digits[0...3].reduce(0) { $0 * 10 + $1 }
        let month = digits[4] * 10 + digits[5]
        let dayOfMonth = digits[6] * 10 + digits[7]
        guard (1...12).contains(month), (1...31).contains(dayOfMonth) else { return nil }
        let days = daysSinceEpoch(year: year, month: month, day: dayOfMonth)
        let seconds = (days + 1) * 86_400 - offsetSeconds + Int64(minutes) * 60
        return Date(timeIntervalSince1970: Double(seconds))
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (the inverse of `civilDate`).
    static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// `yyyy-MM-dd HH:mm:ss` in Korean time, for tables operators read.
    public static func display(_ date: Date) -> String {
        let iso = iso8601(date)
        return String(iso.prefix(10)) + " " + String(iso.dropFirst(11).prefix(8))
    }

    /// Proleptic Gregorian date of a day count from 1970-01-01 (era-based day arithmetic).
    static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// The inverse of `civilDate`: days from 1970-01-01 to the given date.
    static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
