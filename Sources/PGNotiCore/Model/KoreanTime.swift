import Foundation

/// PGs write local Korean time without a zone; Korea has had no DST since 1988, so +09:00 is exact.
public enum KoreanTime {
    /// `yyMMddHHmmss` (Smartro/TomatoPay AuthDate) or `yyyyMMddHHmmss` → `yyyy-MM-ddTHH:mm:ss+09:00`.
    /// nil when the text is not a plausible timestamp: a wrong date must not pass as a right one.
    public static func fromCompact(_ text: String?) -> String? {
        guard var digits = text?.trimmingCharacters(in: .whitespaces), digits.allSatisfy(\.isASCIIDigit) else {
            return nil
        }
        if digits.count == 12 { digits = "20" + digits }
        guard digits.count == 14 else { return nil }
        let d = Array(digits)
        func part(_ from: Int, _ length: Int) -> Int { Int(String(d[from..<from + length]))! }
        let (month, day, hour, minute, second) = (part(4, 2), part(6, 2), part(8, 2), part(10, 2), part(12, 2))
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        return
            "\(String(d[0..<4]))-\(String(d[4..<6]))-\(String(d[6..<8]))T\(String(d[8..<10])):\(String(d[10..<12])):\(String(d[12..<14]))+09:00"
    }

    /// Innopay splits date (yyyyMMdd) and time (HHmmss).
    public static func fromDateAndTime(_ date: String?, _ time: String?) -> String? {
        guard let date, let time else { return nil }
        return fromCompact(date + time)
    }

    /// `yyyy-MM-ddTHH:mm:ss.SSS+09:00`. Calendar arithmetic by hand: Foundation's ISO 8601
    /// styles write the offset as `+0900`, and this runs for every log line.
    public static func iso8601(_ date: Date) -> String {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) + 9 * 3_600_000
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
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return
            "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2)).\(pad(milli, 3))+09:00"
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
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
