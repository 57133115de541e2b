import Metrics
import PGNotiCore
import Synchronization

/// The intake's counters, made once per label set: creating a metric goes through the
/// factory's lock and registry, which is not something to do on every request.
final class IntakeMetrics: Sendable {
    static let shared = IntakeMetrics()

    private let counters = Mutex<[String: Counter]>([:])
    let quarantineDropped = Counter(label: "pgnoti_quarantine_dropped_total")
    let conflictsIgnored = Counter(label: "pgnoti_conflicts_ignored_total")

    func requests(_ provider: ProviderID, _ outcome: IntakeResult.Outcome) -> Counter {
        counter(
            "pgnoti_requests_total", [("provider", provider.rawValue), ("outcome", outcome.rawValue)])
    }

    func quarantined(_ reason: Rejection.Reason) -> Counter {
        counter("pgnoti_quarantined_total", [("reason", reason.rawValue)])
    }

    func conflicts(_ provider: ProviderID) -> Counter {
        counter("pgnoti_conflicts_total", [("provider", provider.rawValue)])
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        if let existing = counters.withLock({ $0[key] }) { return existing }
        let made = Counter(label: label, dimensions: dimensions)
        return counters.withLock { counters in
            if let existing = counters[key] { return existing }
            counters[key] = made
            return made
        }
    }
}
