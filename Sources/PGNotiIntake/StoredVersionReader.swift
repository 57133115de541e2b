import Foundation
import PGNotiCore
import PGNotiStore

/// Reads a stored version's raw body again, as the intake read it when it arrived, to give
/// `copy-ledger` the conflict document the intake would have given it live (`Intake.read`,
/// `Intake.event`, `Intake.conflictDocument`: the same three steps). Only the shape is read:
/// the version was authenticated and verified when it was stored.
public struct StoredVersionReader: Sendable {
    let providers: [ProviderID: any PaymentProvider]

    public init(policy: IntakePolicy) {
        providers = policy.providers
    }

    /// For `PostgresLedgerCopy`.
    public var conflictEvents: ConflictEventSource {
        { version in self.conflictEvent(for: version) }
    }

    public func conflictEvent(for version: StoredVersion) -> (@Sendable (String, Int?, String?) -> (String, [UInt8]))? {
        guard let id = ProviderID(rawValue: version.provider), let provider = providers[id],
            !version.rawBody.isEmpty,
            let (notification, fields) = try? Intake.read(
                version.rawBody, contentType: version.contentType, with: provider)
        else { return nil }
        let recorded = Self.recorded(version.eventJSON)
        var verified = notification
        verified.verifiedBy = recorded.verifiedBy
        let event = Intake.event(
            verified, fields: fields, receivedAt: version.receivedAt, isTest: recorded.test, sandbox: recorded.sandbox)
        return Intake.conflictDocument(event)
    }

    /// What the version's own stored document says and its body does not: whether it was a test
    /// or a sandbox event, and which check verified it (verified again here it would need the
    /// keys of the day it arrived).
    static func recorded(_ eventJSON: Data?) -> (test: Bool, sandbox: Bool, verifiedBy: String?) {
        guard let eventJSON,
            let object = try? JSONSerialization.jsonObject(with: eventJSON) as? [String: Any]
        else { return (false, false, nil) }
        return (
            (object["test"] as? Bool) ?? false, (object["sandbox"] as? Bool) ?? false, object["verified_by"] as? String
        )
    }
}
