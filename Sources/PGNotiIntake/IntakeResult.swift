import PGNotiCore

/// What one submission became: committed (with the ACK the PG must hear, and whether it was
/// new, a retry or a conflict), refused (and whether the quarantine kept it), or the store
/// failed. A door maps it to its own answer; the intake has already logged it.
public struct IntakeResult: Sendable {
    public enum Decision: Sendable {
        /// In the ledger: the PG may hear `ack`.
        case committed(ack: String, Committed)
        /// Refused before anything was committed.
        case refused(Rejection, Kept)
        /// The store failed; nothing was committed, so no ACK.
        case storeFailed(String)
    }

    public enum Committed: Sendable {
        /// New: its event is in the outbox under `queueFile`.
        case accepted(eventID: String, queueFile: String)
        /// A retry of a stored notification.
        case duplicate(eventID: String)
        /// Another version of a stored notification.
        case conflict(Conflict)
    }

    /// A version that contradicts the stored one: the fingerprints, the event it contradicts,
    /// and the conflict event filed for it (none past the per-key limit).
    public struct Conflict: Sendable {
        public var storedFingerprint: String
        public var receivedFingerprint: String
        public var conflictsWith: String
        public var filed: (eventID: String, queueFile: String)?
    }

    /// Where a refused request went.
    public enum Kept: Sendable {
        case quarantined(id: Int64)
        /// Not kept: the quarantine's queue was full, or the store failed.
        case lost(String)
        /// Nothing to keep (a release of an item already there, a PG that is not enabled).
        case notAsked
    }

    /// What the body said, as far as it was read.
    public struct Facts: Sendable {
        public var merchantID: String
        public var tid: String
        public var state: String
        public var kind: String
    }

    public var decision: Decision
    public var facts: Facts?
    /// The decoded fields with personal data masked; filled only when debug logging is on.
    public var maskedFields: [(name: String, value: String)]?

    public init(_ decision: Decision, facts: Facts? = nil) {
        self.decision = decision
        self.facts = facts
    }

    /// The result in one word, for log lines and metrics.
    public enum Outcome: String, Sendable, CaseIterable {
        case accepted, duplicate, conflict, rejected, error
    }

    public var outcome: Outcome {
        switch decision {
        case .committed(_, .accepted): .accepted
        case .committed(_, .duplicate): .duplicate
        case .committed(_, .conflict): .conflict
        case .refused: .rejected
        case .storeFailed: .error
        }
    }

    /// The exact body the PG must hear; only a committed result has one.
    public var ack: String? {
        if case .committed(let ack, _) = decision { return ack }
        return nil
    }

    public var isCommitted: Bool { ack != nil }

    public var rejection: Rejection? {
        if case .refused(let rejection, _) = decision { return rejection }
        return nil
    }

    /// The event this submission filed or matched (a conflict's own event when one was filed).
    public var eventID: String? {
        switch decision {
        case .committed(_, .accepted(let id, _)), .committed(_, .duplicate(let id)): id
        case .committed(_, .conflict(let conflict)): conflict.filed?.eventID
        case .refused, .storeFailed: nil
        }
    }

    public var queueFileName: String? {
        switch decision {
        case .committed(_, .accepted(_, let file)): file
        case .committed(_, .conflict(let conflict)): conflict.filed?.queueFile
        default: nil
        }
    }

    public var quarantineID: Int64? {
        if case .refused(_, .quarantined(let id)) = decision { return id }
        return nil
    }

    /// Why the store failed, or why a refused request could not be kept. Never holds a secret.
    public var error: String? {
        switch decision {
        case .storeFailed(let why), .refused(_, .lost(let why)): why
        default: nil
        }
    }

    public var merchantID: String? { facts?.merchantID }
    public var tid: String? { facts?.tid }
    public var state: String? { facts?.state }
    public var kind: String? {
        if case .committed(_, .conflict) = decision { return EventKind.notificationConflict.rawValue }
        return facts?.kind
    }

    /// A refusal with nothing else known, for transports and tests.
    public static func refused(_ rejection: Rejection) -> IntakeResult {
        IntakeResult(.refused(rejection, .notAsked))
    }
}

extension IntakeResult.Facts {
    init(_ notification: PaymentNotification) {
        self.init(
            merchantID: notification.merchantID, tid: notification.tid, state: notification.state,
            kind: notification.kind.rawValue)
    }
}
