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
    /// Where reading stopped: a last line without its newline is left for the next pass.
    public var resumedAtLine = 1
    public var nextLine = 1
    public var firstError: String?

    public var isClean: Bool { bad.isEmpty && errors == 0 }
}

/// Reads Toss transaction files into the ledger, row by row, through the one intake path: each
/// row is a submission of its own bytes, so a bad row is refused and quarantined with its file
/// and line while its neighbours are filed. Used by the inbox watcher, the pull and
/// `pgnoti toss import`.
public struct TossImporter: Sendable {
    let intake: Intake
    let ledger: Ledger
    let logger: Logger
    /// Rows in flight at once: they share group commits, and rows of one file are independent.
    let concurrency: Int

    public init(intake: Intake, ledger: Ledger, logger: Logger, concurrency: Int = 32) {
        self.intake = intake
        self.ledger = ledger
        self.logger = logger
        self.concurrency = concurrency
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
    /// `complete` says the file is whole (stable, renamed in, pulled, or named by hand): only
    /// then is a last line without a newline taken.
    public func ingest(fileName: String, bytes: [UInt8], complete: Bool, receivedAt: Date = Date()) async throws
        -> TossImportSummary
    {
        guard intake.policy.isEnabled(.toss) else { throw Failure.tossDisabled }
        guard let name = TossFile.Name(fileName: fileName) else { throw Failure.notATossFile(fileName) }
        var summary = TossImportSummary(fileName: fileName)
        let stored = try await ledger.tossProgress(fileName: fileName)
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
        guard let delimiter = TossFile.delimiter(of: bytes) else {
            if bytes.isEmpty || !complete { return summary }
            throw Failure.noReadableRow(fileName)
        }
        let format = TossPayments.RowFormat(kind: name.kind, delimiter: delimiter)
        let split = TossFile.lines(in: bytes, from: position)
        let lines = split.lines.filter { $0.isTerminated || complete }
        var next = split.next
        if complete, let last = lines.last, !last.isTerminated { next = last.following }

        let results = await withTaskGroup(of: (TossFile.Line, IntakeResult).self) { group in
            var iterator = lines.makeIterator()
            var results: [(TossFile.Line, IntakeResult)] = []
            func submitNext() {
                guard let line = iterator.next() else { return }
                let submission = Submission(
                    provider: .toss, body: line.bytes, contentType: format.contentType,
                    address: ClientAddress(peer: nil, client: nil), receivedAt: receivedAt,
                    requestID: "\(fileName):\(line.number)", origin: .file(name: fileName, line: line.number))
                group.addTask {
                    let result = await intake.process(submission)
                    NotificationLog.emit(result, submission, logger: logger)
                    return (line, result)
                }
            }
            for _ in 0..<concurrency { submitNext() }
            for await result in group {
                results.append(result)
                submitNext()
            }
            return results
        }

        summary.rows = lines.count
        for (line, result) in results.sorted(by: { $0.0.number < $1.0.number }) {
            switch result.outcome {
            case .accepted: summary.new += 1
            case .conflict: if result.conflictFiled == true { summary.new += 1 } else { summary.duplicates += 1 }
            case .duplicate: summary.duplicates += 1
            case .rejected:
                summary.bad.append(
                    .init(
                        line: line.number, reason: result.rejection?.reason.rawValue ?? "rejected",
                        detail: result.rejection?.detail ?? "", quarantineID: result.quarantineID))
            case .error:
                summary.errors += 1
                if summary.firstError == nil { summary.firstError = result.error }
            }
        }
        summary.nextLine = next.lineNumber
        // Only a pass that stored every row moves on; otherwise the same rows are read again
        // next time and the ledger's dedup takes care of those that did commit.
        if summary.errors == 0 {
            try await ledger.saveTossProgress(
                TossFileProgress(
                    fileName: fileName, ingestedBytes: next.offset, ingestedLines: next.lineNumber - 1,
                    prefixSHA256: Digest.sha256(bytes[..<next.offset]), size: bytes.count,
                    rows: (stored?.rows ?? 0) + (summary.rewritten ? 0 : summary.rows), updatedAt: Date(),
                    finalizedAt: stored?.finalizedAt))
        }
        logger.info(
            "Toss file read",
            metadata: [
                "file": "\(fileName)", "rows": .stringConvertible(summary.rows), "new": .stringConvertible(summary.new),
                "duplicates": .stringConvertible(summary.duplicates), "bad": .stringConvertible(summary.bad.count),
                "bad_lines": .array(summary.bad.map { .stringConvertible($0.line) }),
                "errors": .stringConvertible(summary.errors), "rewritten": .stringConvertible(summary.rewritten),
            ])
        return summary
    }
}
