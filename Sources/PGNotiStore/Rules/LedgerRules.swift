import Foundation
import PGNotiCore

/// The ledger's rules, with no database: every engine reads what it holds under a key, asks these
/// functions what to do, and writes the answer. SQLite (`Ledger+Apply.swift`) does so today; a
/// second engine reuses them rather than restating them in its own SQL.
///
/// The fingerprint that tells a retry from a contradiction is `PaymentNotification.fingerprint` (Core):
/// the amount and the result code, the two things a PG retry must repeat.
public enum LedgerRules {
    /// Conflicting versions filed per key. Anyone holding one signed Smartro post can vary `Amt`
    /// at will (SignValue does not cover it), so this is bounded.
    public static let maximumConflictsPerKey = 10
    /// Retries of one notification kept one by one (time, peer, client); beyond, only counted.
    public static let retriesKept = 100

    /// What the ledger holds under a notification's key, as far as the rule needs it.
    public struct Held: Sendable, Equatable {
        /// The first version stored under the key.
        public var eventID: String
        public var fingerprint: String
        /// A conflict event already filed for the incoming fingerprint, if any.
        public var filedConflictEventID: String?
        /// Conflict events filed for the key so far.
        public var filedConflicts: Int

        public init(eventID: String, fingerprint: String, filedConflictEventID: String? = nil, filedConflicts: Int = 0)
        {
            self.eventID = eventID
            self.fingerprint = fingerprint
            self.filedConflictEventID = filedConflictEventID
            self.filedConflicts = filedConflicts
        }
    }

    /// What one incoming notification becomes.
    public enum Decision: Sendable, Equatable {
        /// Nothing under the key: store it and file its event.
        case new
        /// The stored version again (a PG retry): count the retry, file nothing.
        case retryOfStored(eventID: String)
        /// A contradicting version already filed as a conflict event: count it, file nothing.
        case retryOfConflict(eventID: String)
        /// A contradicting version seen for the first time, under the cap: file a conflict event.
        case fileConflict(conflictsWith: String, storedFingerprint: String)
        /// A contradicting version past the per-key cap: counted on the stored row, not filed.
        case ignoreConflict(conflictsWith: String, storedFingerprint: String)
    }

    /// Same key → a retry, a conflict or an ignored conflict; no key → new.
    ///
    /// `canBuildConflictEvent` is false when the source gave no conflict document (it cannot
    /// describe one); such a contradiction is counted like one past the cap.
    public static func decide(fingerprint: String, held: Held?, canBuildConflictEvent: Bool = true) -> Decision {
        guard let held else { return .new }
        if held.fingerprint == fingerprint { return .retryOfStored(eventID: held.eventID) }
        if let filed = held.filedConflictEventID { return .retryOfConflict(eventID: filed) }
        guard held.filedConflicts < maximumConflictsPerKey, canBuildConflictEvent else {
            return .ignoreConflict(conflictsWith: held.eventID, storedFingerprint: held.fingerprint)
        }
        return .fileConflict(conflictsWith: held.eventID, storedFingerprint: held.fingerprint)
    }

    /// Whether a retry's time, peer and client are kept, given the retries counted before it.
    public static func keepsRetryDetail(retriesBefore: Int) -> Bool {
        retriesBefore < retriesKept
    }
}

/// Which quarantined requests go when the quarantine is over its policy.
///
/// Garbage (never parsed) goes first, oldest first; requests that parsed but failed
/// authentication or verification (the ones a release will want) go only when the garbage alone
/// cannot make room, and otherwise only with age.
public enum QuarantineEviction {
    /// One quarantined request as eviction sees it.
    public struct Candidate: Sendable, Equatable {
        public var id: Int64
        public var parsed: Bool
        /// Bytes of body held (a purged body holds none).
        public var bytes: Int

        public init(id: Int64, parsed: Bool, bytes: Int) {
            self.id = id
            self.parsed = parsed
            self.bytes = bytes
        }
    }

    /// Requests received before this are evicted whatever the totals.
    public static func ageCutoff(now: Date, policy: QuarantinePolicy) -> Date {
        now.addingTimeInterval(-Double(policy.keepDays) * 86_400)
    }

    /// Whether the totals break the policy.
    public static func isOver(bytes: Int, rows: Int, policy: QuarantinePolicy) -> Bool {
        bytes > policy.maxBytes || rows > policy.maxRows
    }

    /// The order an engine reads candidates in: garbage before parsed, then oldest (lowest id).
    public static func precedes(_ a: Candidate, _ b: Candidate) -> Bool {
        a.parsed != b.parsed ? !a.parsed : a.id < b.id
    }

    /// The ids to delete, taken from `next` (candidates in `precedes` order, read lazily) until
    /// the totals fit the policy, and the totals left.
    public static func victims(
        bytes: Int, rows: Int, policy: QuarantinePolicy, next: () throws -> Candidate?
    ) rethrows -> (ids: [Int64], bytes: Int, rows: Int) {
        var bytes = bytes
        var rows = rows
        var ids: [Int64] = []
        while isOver(bytes: bytes, rows: rows, policy: policy), let candidate = try next() {
            ids.append(candidate.id)
            bytes -= candidate.bytes
            rows -= 1
        }
        return (ids, bytes, rows)
    }

    /// The same, for an engine that reads its candidates asynchronously (PostgreSQL).
    public static func asyncVictims(
        bytes: Int, rows: Int, policy: QuarantinePolicy, next: () async throws -> Candidate?
    ) async rethrows -> (ids: [Int64], bytes: Int, rows: Int) {
        var bytes = bytes
        var rows = rows
        var ids: [Int64] = []
        while isOver(bytes: bytes, rows: rows, policy: policy), let candidate = try await next() {
            ids.append(candidate.id)
            bytes -= candidate.bytes
            rows -= 1
        }
        return (ids, bytes, rows)
    }
}

/// How much of the quarantine is kept.
public struct QuarantinePolicy: Sendable, Equatable {
    public var maxBytes: Int
    public var maxRows: Int
    public var keepDays: Int

    public init(maxBytes: Int = 256 * 1024 * 1024, maxRows: Int = 10_000, keepDays: Int = 30) {
        self.maxBytes = maxBytes
        self.maxRows = maxRows
        self.keepDays = keepDays
    }
}
