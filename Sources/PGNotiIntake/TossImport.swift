import Foundation
import Logging
import PGNotiCore
import PGNotiStore

/// What reading one Toss file came to, for `pgnoti toss import` and the inbox's log line.
public struct TossImportSummary: Sendable {
    public struct BadRow: Sendable {
        public let line: Int
        public let reason: String
        public let detail: String
        public let quarantineID: Int64?
        /// The file's last line, taken without its newline (its day over, the file quiet).
        public var unterminated = false
    }

    public let fileName: String
    /// Rows read this time (lines already read in an earlier pass are not counted).
    public var rows = 0
    /// New events filed (accepted, or a conflicting version filed as a conflict).
    public var new = 0
    /// Rows already in the ledger: an earlier push of the same cumulative file.
    public var duplicates = 0
    public var bad: [BadRow] = []
    /// Rows the store could not take; the file is read from the same place next time.
    public var errors = 0
    /// The bytes read before had changed: the file was read again from its first line.
    public var rewritten = false
    /// Where reading started and where the next read starts: never past a line without its
    /// newline.
    public var resumedAtLine = 1
    public var nextLine = 1
    public var firstError: String?
    /// A last line without its newline, left for a later read: its number, and when it will be
    /// taken as it is if the file stays as it is (its day over and the file unchanged for
    /// `final_after_minutes`).
    public var unterminatedLine: Int?
    public var unterminatedDueAt: Date?
    /// The number of a last line without its newline that this read took as it was.
    public var tookUnterminatedLine: Int?

    public var isClean: Bool { bad.isEmpty && errors == 0 }
}

/// Reads Toss transaction files into the ledger, row by row, through the one intake path: each
/// row is a submission of its own bytes, so a bad row is refused and quarantined with its file
/// and line while its neighbours are filed. Used by the inbox watcher, the pull and
/// `pgnoti toss import`.
///
/// Rows are committed in file order (in shared group commits): the first of two versions of one
/// row is the one stored, and events are filed in the order of the file.
///
/// A line is read once its newline is there. A last line without one may be an upload caught
/// mid-way, so it is left for a later read and the saved position stays before it; it is taken
/// as it is only when its day is over and the file has not changed for `final_after_minutes`,
/// and then filed only if it reads as a whole row (else refused and quarantined like any bad
/// row). Even then the position stays before it: should the line ever grow, it is read again.
public struct TossImporter: Sendable {
    let intake: Intake
    let progress: any SourceProgress
    let logger: Logger
    /// How long a file must have been unchanged, its day over, before its last line without a
    /// newline is taken as it is.
    let finalAfterMinutes: Int
    /// Rows queued for the ledger at once.
    static let slice = 256

    public init(intake: Intake, progress: any SourceProgress, logger: Logger, finalAfterMinutes: Int = 60) {
        self.intake = intake
        self.progress = progress
        self.logger = logger
        self.finalAfterMinutes = finalAfterMinutes
    }

    public enum Failure: Error, CustomStringConvertible {
        case notATossFile(String)
        case noReadableRow(String)
        case tossDisabled

        public var description: String {
            switch self {
            case .notATossFile(let name):
                "\(name) is not a Toss transaction file name (<mid>_AUTH_<yyyymmdd>.dat or <mid>_REV_<yyyymmdd>.dat)"
            case .noReadableRow(let name):
                "\(name): no line splits into the 12 fields of a Toss row with ';' or ','"
            case .tossDisabled: "Toss is not enabled: add a [toss] table to the configuration"
            }
        }
    }

    /// Files the rows of `bytes` (the whole file as it is now) not filed by an earlier pass.
    ///
    /// - Parameters:
    ///   - modifiedAt: when the bytes last changed, as the file system says (its modification
    ///     time); nil for a body with none (a pull): it then counts from when a read first saw
    ///     exactly these bytes.
    ///   - now: the moment of the read, which decides whether a last line without its newline
    ///     is taken (a parameter for tests).
    public func ingest(
        fileName: String, bytes: [UInt8], modifiedAt: Date?, now: Date = Date(), receivedAt: Date = Date()
    ) async throws -> TossImportSummary {
        guard intake.policy.isEnabled(.toss) else { throw Failure.tossDisabled }
        guard let name = TossFile.Name(fileName: fileName) else { throw Failure.notATossFile(fileName) }
        var summary = TossImportSummary(fileName: fileName)
        let stored = try await progress.tossProgress(fileName: fileName)
        var position = TossFile.Position.start
        if let stored {
            let prefixStillThere =
                bytes.count >= stored.ingestedBytes
                && Digest.sha256(bytes[..<stored.ingestedBytes]) == Array(stored.prefixSHA256)
            if prefixStillThere {
                position = TossFile.Position(offset: stored.ingestedBytes, lineNumber: stored.ingestedLines + 1)
            } else {
                summary.rewritten = true
                logger.notice(
                    "Toss file rewritten since it was last read: reading it again from the first line",
                    metadata: ["file": "\(fileName)"])
            }
        }
        summary.resumedAtLine = position.lineNumber

        let contentSHA256 = Digest.sha256(bytes)
        let contentSince =
            stored.flatMap { $0.contentSHA256 == Data(contentSHA256) ? $0.contentSince : nil } ?? now
        let split = TossFile.lines(in: bytes, from: position)
        var lines = split.terminated
        // Never past a line without its newline, whatever happens to that line below.
        let next = split.next
        var tailSHA256: [UInt8]?
        if let tail = split.unterminated {
            let tailBytes = Digest.sha256(bytes[next.offset...])
            let dueAt = max(
                KoreanTime.afterDay(name.date, minutes: 0) ?? .distantFuture,
                (modifiedAt ?? contentSince).addingTimeInterval(Double(finalAfterMinutes) * 60))
            if !summary.rewritten, let taken = stored?.tailSHA256, taken == Data(tailBytes) {
                // Taken as it was by an earlier read, and still the same bytes.
                tailSHA256 = tailBytes
            } else if now >= dueAt {
                lines.append(tail)
                tailSHA256 = tailBytes
                summary.tookUnterminatedLine = tail.number
            } else {
                summary.unterminatedLine = tail.number
                summary.unterminatedDueAt = dueAt
            }
        }

        let delimiter = TossFile.delimiter(of: bytes)
        if delimiter == nil && !lines.isEmpty { throw Failure.noReadableRow(fileName) }
        let format = TossPayments.RowFormat(
            kind: name.kind, delimiter: delimiter ?? .semicolon,
            charset: TossFile.startsWithByteOrderMark(bytes) ? .utf8 : nil)
        let submissions = lines.map { line in
            Submission(
                provider: .toss, body: line.bytes, contentType: format.contentType,
                address: ClientAddress(peer: nil, client: nil), receivedAt: receivedAt,
                requestID: "\(fileName):\(line.number)", origin: .file(name: fileName, line: line.number))
        }
        // In order, a slice at a time: each slice shares group commits, and the notifications
        // PGs post meanwhile are committed between slices rather than behind a whole file.
        var results: [IntakeResult] = []
        results.reserveCapacity(submissions.count)
        for start in stride(from: 0, to: submissions.count, by: Self.slice) {
            results += await intake.processInOrder(
                Array(submissions[start..<min(start + Self.slice, submissions.count)]))
        }

        summary.rows = lines.count
        for (line, result) in zip(lines, results) {
            switch result.outcome {
            case .accepted: summary.new += 1
            case .conflict: if result.eventID != nil { summary.new += 1 } else { summary.duplicates += 1 }
            case .duplicate: summary.duplicates += 1
            case .rejected:
                summary.bad.append(
                    .init(
                        line: line.number, reason: result.rejection?.reason.rawValue ?? "rejected",
                        detail: result.rejection?.detail ?? "", quarantineID: result.quarantineID,
                        unterminated: !line.isTerminated))
            case .error:
                summary.errors += 1
                if summary.firstError == nil { summary.firstError = result.error }
            }
        }
        summary.nextLine = next.lineNumber
        // Only a pass that stored every row moves on; otherwise the same rows are read again
        // next time and the ledger's dedup takes care of those that did commit.
        if summary.errors == 0 {
            try await progress.saveTossProgress(
                TossFileProgress(
                    fileName: fileName, ingestedBytes: next.offset, ingestedLines: next.lineNumber - 1,
                    prefixSHA256: Digest.sha256(bytes[..<next.offset]), size: bytes.count,
                    rows: (stored?.rows ?? 0) + (summary.rewritten ? 0 : summary.rows), updatedAt: Date(),
                    finalizedAt: stored?.finalizedAt, contentSHA256: contentSHA256, contentSince: contentSince,
                    pendingLine: summary.unterminatedLine, tailSHA256: tailSHA256))
        }
        var metadata: Logger.Metadata = [
            "file": "\(fileName)", "rows": .stringConvertible(summary.rows), "new": .stringConvertible(summary.new),
            "duplicates": .stringConvertible(summary.duplicates), "bad": .stringConvertible(summary.bad.count),
            "bad_lines": .array(summary.bad.map { .stringConvertible($0.line) }),
            "errors": .stringConvertible(summary.errors), "rewritten": .stringConvertible(summary.rewritten),
        ]
        if let line = summary.unterminatedLine {
            metadata["unterminated_line"] = .stringConvertible(line)
            metadata["unterminated_due_at"] = .string(KoreanTime.iso8601(summary.unterminatedDueAt ?? now))
        }
        if let line = summary.tookUnterminatedLine { metadata["took_unterminated_line"] = .stringConvertible(line) }
        logger.info("Toss file read", metadata: metadata)
        return summary
    }

    /// Whether the last read of `fileName` left a last line without its newline unread.
    public func hasPendingLine(fileName: String) async -> Bool {
        ((try? await progress.tossProgress(fileName: fileName))??.pendingLine) != nil
    }
}
