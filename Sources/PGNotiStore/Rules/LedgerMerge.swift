import Foundation

/// What `pgnoti copy-ledger` does with one version read from an old ledger, given what the
/// target holds under its key. A version is either a stored notification or a filed conflict;
/// both are decided by `LedgerRules`, exactly as if the version had arrived live, so that a merge
/// never lets in what the intake would have refused.
///
/// The one difference from the live path: a copy must be idempotent, so nothing is counted. A
/// version the target already holds (as its notification or as a filed conflict) is left as it
/// is, and one past the per-key cap is listed rather than counted on the stored row.
public enum LedgerMerge {
    /// How the version was recorded in the source.
    public enum Recorded: Sendable, Equatable {
        case notification
        /// A conflict against the version with `storedFingerprint`.
        case conflict(storedFingerprint: String)
    }

    public enum Step: Sendable, Equatable {
        /// The key is free: the version goes in as it was, with its history.
        case insert
        /// The target holds this very version; nothing changes.
        case alreadyThere
        /// A recorded conflict against the version the target holds too: it goes in as it was
        /// (its own event id, document and file name; a row from before conflict events existed
        /// stays without one, as it was never delivered).
        case copyConflict
        /// A contradiction found by the merge: a new conflict event is filed, as live.
        case fileConflict(conflictsWith: String, storedFingerprint: String)
        /// Past the per-key cap, or no conflict document can be built: listed, nothing written.
        case ignore(conflictsWith: String, storedFingerprint: String)
        /// A conflict whose key holds nothing in the target, which a consistent source never has.
        case orphan
    }

    public static func decide(
        fingerprint: String, recorded: Recorded, held: LedgerRules.Held?, canBuildConflictEvent: Bool
    ) -> Step {
        guard let held else { return recorded == .notification ? .insert : .orphan }
        let againstTheSameVersion: Bool
        if case .conflict(let storedFingerprint) = recorded {
            againstTheSameVersion = storedFingerprint == held.fingerprint
        } else {
            againstTheSameVersion = false
        }
        switch LedgerRules.decide(
            fingerprint: fingerprint, held: held, canBuildConflictEvent: canBuildConflictEvent || againstTheSameVersion)
        {
        case .new:
            return .insert
        case .retryOfStored, .retryOfConflict:
            return .alreadyThere
        case .ignoreConflict(let conflictsWith, let storedFingerprint):
            return .ignore(conflictsWith: conflictsWith, storedFingerprint: storedFingerprint)
        case .fileConflict(let conflictsWith, let storedFingerprint):
            return againstTheSameVersion
                ? .copyConflict : .fileConflict(conflictsWith: conflictsWith, storedFingerprint: storedFingerprint)
        }
    }
}

/// A version read back from a ledger, as much of it as a conflict document needs.
public struct StoredVersion: Sendable {
    public var provider: String
    public var rawBody: [UInt8]
    public var contentType: String?
    public var receivedAt: Date
    /// The version's own stored event document (a notification's event, a conflict row's
    /// conflict event), if any: it says what the body alone does not (test, sandbox, which check
    /// verified it).
    public var eventJSON: Data?

    public init(provider: String, rawBody: [UInt8], contentType: String?, receivedAt: Date, eventJSON: Data?) {
        self.provider = provider
        self.rawBody = rawBody
        self.contentType = contentType
        self.receivedAt = receivedAt
        self.eventJSON = eventJSON
    }
}

/// Builds, for a stored version, the `LedgerEntry.conflictEvent` the intake would have given it
/// live; nil when its body no longer reads as a notification (purged, or a provider this binary
/// does not know). The intake provides it (`StoredVersionReader`); the store only calls it.
public typealias ConflictEventSource =
    @Sendable (StoredVersion) -> (@Sendable (String, Int?, String?) -> (String, [UInt8]))?
