/// A TossPayments transaction file ("거래연동 방안" §1): its name, its lines and its delimiter.
/// Pure: the caller reads the bytes, this says what they are.
///
/// Rows are cut on bytes, before any decoding. That is safe for CP949: a trail byte is always
/// 0x41 or above, so it is never a delimiter (`,` 0x2C, `;` 0x3B), CR or LF.
public enum TossFile {
    /// What a file holds, as its name says (§1.1 "파일구분코드").
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// Approvals (승인분), Status 10/11.
        case auth = "AUTH"
        /// Cancels and refunds (취소분), Status 20/21.
        case rev = "REV"
    }

    /// §1.1 names `,`, but every sample in the same document uses `;`, and Toss changes "항목 및
    /// 구분자" on request: a file is read with the one it turns out to use.
    public enum Delimiter: String, Sendable, Equatable, CaseIterable {
        case semicolon
        case comma

        public var byte: UInt8 {
            switch self {
            case .semicolon: UInt8(ascii: ";")
            case .comma: UInt8(ascii: ",")
            }
        }
    }

    /// Twelve fields per row in both kinds (§1.3, §1.4).
    public static let fieldCount = 12

    /// `<mid>_<AUTH|REV>_<yyyymmdd>.dat` (§1.1).
    public struct Name: Sendable, Equatable {
        public var merchantID: String
        public var kind: Kind
        /// `yyyymmdd`: the transaction day for AUTH, the cancel or refund day for REV.
        public var date: String

        public init(merchantID: String, kind: Kind, date: String) {
            self.merchantID = merchantID
            self.kind = kind
            self.date = date
        }

        /// Read from the right: a merchant ID may itself contain `_`. nil for anything else, so a
        /// stray file in the inbox is never taken for a day's transactions.
        public init?(fileName: String) {
            guard fileName.hasSuffix(".dat") else { return nil }
            let parts = fileName.dropLast(4).split(separator: "_", omittingEmptySubsequences: false)
            guard parts.count >= 3, let kind = Kind(rawValue: String(parts[parts.count - 2])) else { return nil }
            let date = parts[parts.count - 1]
            let merchantID = parts[..<(parts.count - 2)].joined(separator: "_")
            guard !merchantID.isEmpty, Self.isDay(date) else { return nil }
            self.init(merchantID: merchantID, kind: kind, date: String(date))
        }

        public var fileName: String { "\(merchantID)_\(kind.rawValue)_\(date).dat" }

        private static func isDay(_ text: Substring) -> Bool {
            let digits = text.utf8.map { Int($0) - 0x30 }
            guard digits.count == 8, digits.allSatisfy({ (0...9).contains($0) }) else { return false }
            let year = digits[0...3].reduce(0) { $0 * 10 + $1 }
            return KoreanTime.isCalendarDay(
                year: year, month: digits[4] * 10 + digits[5], day: digits[6] * 10 + digits[7])
        }
    }

    /// Where reading a file stands: the byte offset of the next line and its 1-based number.
    public struct Position: Sendable, Equatable {
        public var offset: Int
        public var lineNumber: Int

        public init(offset: Int, lineNumber: Int) {
            self.offset = offset
            self.lineNumber = lineNumber
        }

        public static let start = Position(offset: 0, lineNumber: 1)
    }

    /// One non-blank line of a file.
    public struct Line: Sendable, Equatable {
        /// 1-based, counting blank lines too, so it matches what an editor shows.
        public var number: Int
        /// The bytes of the line without its CR/LF.
        public var bytes: [UInt8]
        /// Where `bytes` sit in the file.
        public var range: Range<Int>
        /// The offset just past the line's terminator (or past its last byte when it has none).
        public var end: Int
        /// False for a last line without a newline: it may still be being written.
        public var isTerminated: Bool

        /// Where reading resumes once this line is taken.
        public var following: Position { Position(offset: end, lineNumber: number + 1) }
    }

    /// The lines from `position` on.
    public struct Lines: Sendable, Equatable {
        public var lines: [Line]
        /// Just past the last newline-terminated line: where the next read of a growing file
        /// starts. An unterminated last line is in `lines` but never behind this position, so it
        /// is read again, whole, once its newline arrives.
        public var next: Position

        /// The lines that end in a newline: whole, whatever happens to the file next.
        public var terminated: [Line] { lines.filter(\.isTerminated) }
        /// A last line without its newline, if there is one: it may still be being written.
        public var unterminated: Line? { lines.last.flatMap { $0.isTerminated ? nil : $0 } }
    }

    /// The UTF-8 byte order mark some tools put before the first line. It belongs to no field:
    /// left in, it would make the first row's MID `\u{FEFF}toss` (or, read as CP949, `癤퓍oss`).
    public static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    public static func startsWithByteOrderMark(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.starts(with: byteOrderMark)
    }

    /// Splits `bytes` (a whole file, as read now) into lines, starting at `position` (a
    /// position an earlier read returned). Blank and whitespace-only lines are left out, and so
    /// is a byte order mark at the very start of the file (offsets still count its bytes).
    public static func lines(in bytes: [UInt8], from position: Position = .start) -> Lines {
        var lines: [Line] = []
        var start = min(max(position.offset, 0), bytes.count)
        if start == 0 && startsWithByteOrderMark(bytes) { start = byteOrderMark.count }
        var number = position.lineNumber
        var next = Position(offset: start, lineNumber: number)
        while start < bytes.count {
            let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n"))
            let end = newline.map { $0 + 1 } ?? bytes.count
            var contentEnd = newline ?? bytes.count
            if contentEnd > start, bytes[contentEnd - 1] == UInt8(ascii: "\r") { contentEnd -= 1 }
            let content = bytes[start..<contentEnd]
            if !content.allSatisfy(isBlank) {
                lines.append(
                    Line(
                        number: number, bytes: Array(content), range: start..<contentEnd, end: end,
                        isTerminated: newline != nil))
            }
            number += 1
            start = end
            if newline != nil { next = Position(offset: end, lineNumber: number) }
        }
        return Lines(lines: lines, next: next)
    }

    /// The delimiter of a file: the one that cuts its first well-formed line into exactly twelve
    /// fields, `;` (every sample's) when both do. Lines that fit neither are skipped, so one
    /// corrupt line at the top does not make the whole file unreadable. nil when no line fits:
    /// the file cannot be read at all.
    public static func delimiter(of bytes: [UInt8]) -> Delimiter? {
        for line in lines(in: bytes).lines {
            for delimiter in Delimiter.allCases where fieldCount(line.bytes, delimiter) == Self.fieldCount {
                return delimiter
            }
        }
        return nil
    }

    static func fieldCount(_ line: some Collection<UInt8>, _ delimiter: Delimiter) -> Int {
        line.reduce(1) { $1 == delimiter.byte ? $0 + 1 : $0 }
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
}
