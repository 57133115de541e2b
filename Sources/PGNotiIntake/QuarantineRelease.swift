import Foundation
import Logging
import PGNotiCore
import PGNotiStore

/// Brings a quarantined request back through the intake, with the configuration as it is now:
/// decode, authenticate, verify, dedup, ledger, outbox. A request refused because a merchant
/// key was wrong or an allowlist incomplete becomes the event it should have been, once.
public struct QuarantineRelease: Sendable {
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        case accepted(eventID: String)
        case duplicate(eventID: String)
        case refused(reason: String)
        case notFound
        /// `pgnoti purge` removed its body: there is nothing left to run again.
        case purged
        /// The store failed; nothing changed.
        case failed(String)

        /// One line per item, as `pgnoti quarantine release` prints it.
        public var description: String {
            switch self {
            case .accepted(let id): "accepted \(id)"
            case .duplicate(let id): "duplicate \(id)"
            case .refused(let reason): "refused \(reason)"
            case .notFound: "refused not_found"
            case .purged: "refused purged (its body was removed by pgnoti purge)"
            case .failed(let error): "refused store_failed (\(error))"
            }
        }
    }

    let quarantine: any OperatorQueries
    let intake: Intake
    let trustedProxies: [CIDR]

    public init(quarantine: any OperatorQueries, intake: Intake, trustedProxies: [CIDR]) {
        self.quarantine = quarantine
        self.intake = intake
        self.trustedProxies = trustedProxies
    }

    public func release(id: Int64) async -> Outcome {
        let item: QuarantinedRequest?
        do { item = try await quarantine.quarantined(id: id) } catch { return .failed("\(error)") }
        guard let item, let provider = ProviderID(rawValue: item.provider) else { return .notFound }
        if item.isPurged { return .purged }

        // The client is worked out again: the operator may have added the proxy to
        // trusted_proxies since.
        var address = ClientAddress(peer: item.peer, client: item.client)
        if let forwardedFor = item.forwardedFor {
            address = ClientAddress.resolve(
                peer: item.peer, forwardedFor: [forwardedFor], realIP: nil, trustedProxies: trustedProxies)
        }
        let submission = Submission(
            provider: provider, body: Array(item.rawBody), contentType: item.contentType,
            pathSecret: item.pathSecretSHA256.map { .digest(Array($0)) } ?? .none,
            forwardedFor: item.forwardedFor, address: address, receivedAt: item.receivedAt,
            requestID: "release-\(id)", origin: .release(quarantineID: id))
        // Refused again, the item simply stays where it is.
        let result = await intake.process(submission, quarantine: false)
        let outcome: Outcome
        switch result.decision {
        case .committed(_, .accepted(let eventID, _)):
            outcome = .accepted(eventID: eventID)
        case .committed(_, .conflict(let conflict)):
            // Past the conflict cap no conflict event is filed: the item is then the version
            // it contradicts.
            outcome = .accepted(eventID: conflict.filed?.eventID ?? conflict.conflictsWith)
        case .committed(_, .duplicate(let eventID)):
            outcome = .duplicate(eventID: eventID)
        case .refused(let rejection, _):
            return .refused(reason: rejection.reason.rawValue)
        case .storeFailed(let why):
            return .failed(why)
        }
        if case .accepted(let eventID) = outcome {
            try? await quarantine.markReleased(id: id, eventID: eventID)
        } else if case .duplicate(let eventID) = outcome {
            try? await quarantine.markReleased(id: id, eventID: eventID)
        }
        return outcome
    }
}
