import Foundation

/// What `pgnoti copy-ledger` did, table by table, and what it found worth an operator's eye.
/// Pure: the copy fills it in, the command prints it, and `problems` says whether the numbers
/// add up.
public struct LedgerCopySummary: Sendable, Equatable {
    public enum Table: String, Sendable, CaseIterable {
        case notifications, conflicts, quarantine
        case tossFiles = "toss_files"
        case payupIntents = "payup_intents"
    }

    public struct Tally: Sendable, Equatable {
        /// Rows in the source.
        public var source = 0
        /// Inserted by this run.
        public var copied = 0
        /// Held by the target already, unchanged (a rerun, or the same row from elsewhere).
        public var alreadyThere = 0
        /// A different version under the same key: filed as a conflict, or (Toss progress,
        /// Payup intents) the target's record kept.
        public var conflicts = 0
        /// Contradictions not filed: past the per-key cap, or no conflict document could be
        /// built from the stored body.
        public var ignored = 0

        public init() {}

        public var accounted: Int { copied + alreadyThere + conflicts + ignored }
    }

    /// One row the merge did not simply copy or find.
    public struct Note: Sendable, Equatable {
        public enum Kind: String, Sendable {
            /// A conflict event filed (and queued for delivery).
            case conflict
            /// A contradiction listed only.
            case ignored
            /// The target's record kept over a different one.
            case kept
            /// Not copied at all.
            case skipped
        }

        public var kind: Kind
        public var table: Table
        /// Which row, as an operator finds it (provider, MID, TID, state; a file name; an id).
        public var row: String
        public var detail: String

        public init(kind: Kind, table: Table, row: String, detail: String) {
            self.kind = kind
            self.table = table
            self.row = row
            self.detail = detail
        }
    }

    public var tallies: [Table: Tally] = Dictionary(uniqueKeysWithValues: Table.allCases.map { ($0, Tally()) })
    /// Events waiting in the source's outbox (not yet filed into its queue directory).
    public var outboxSource = 0
    /// Outbox rows inserted into the target: those events, to be delivered from the cluster.
    public var outboxCopied = 0
    /// New conflict events this run filed, each with an outbox row of its own.
    public var conflictEventsQueued = 0
    public var notes: [Note] = []
    /// Rows the check after the copy did not find in the target, per table.
    public var missing: [Table: Int] = [:]

    public init() {}

    public subscript(_ table: Table) -> Tally {
        get { tallies[table] ?? Tally() }
        set { tallies[table] = newValue }
    }

    /// Why the copy cannot be trusted, or nothing. Each source row must be accounted for once,
    /// and the check must have found every row in the target.
    public var problems: [String] {
        var out: [String] = []
        for table in Table.allCases {
            let tally = self[table]
            if tally.accounted != tally.source {
                out.append(
                    "\(table.rawValue): \(tally.source) in the source, but \(tally.accounted) accounted for (copied, already there, conflicts, ignored)"
                )
            }
            if let missing = missing[table], missing > 0 {
                out.append("\(table.rawValue): \(missing) row(s) of the source not found in the target after the copy")
            }
        }
        return out
    }

    public func rendered(from source: String, to target: String) -> String {
        var lines = ["copy-ledger: \(source) -> \(target)"]
        let header = ["table", "source", "copied", "already there", "conflicts", "ignored"]
        let rows = Table.allCases.map { table -> [String] in
            let t = self[table]
            return [
                table.rawValue, "\(t.source)", "\(t.copied)", "\(t.alreadyThere)", "\(t.conflicts)", "\(t.ignored)",
            ]
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        for cells in [header] + rows {
            lines.append(
                cells.enumerated().map { i, cell in
                    i == 0
                        ? cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - cell.count) + cell
                }.joined(separator: "  "))
        }
        lines.append(
            "outbox: \(outboxSource) event(s) not yet filed on the old host, \(outboxCopied) queued for delivery from the cluster; events already filed into the old queue directory are not sent again"
        )
        if conflictEventsQueued > 0 {
            lines.append("conflict events filed by this merge, queued for delivery: \(conflictEventsQueued)")
        }
        if !notes.isEmpty {
            lines.append("merged:")
            for note in notes {
                lines.append("  \(note.kind.rawValue) \(note.table.rawValue) \(note.row): \(note.detail)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
