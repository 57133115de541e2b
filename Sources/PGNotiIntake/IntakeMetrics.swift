import Metrics
import PGNotiCore

/// The intake's counters, made once for every label set: creating a metric goes through the
/// factory's lock and registry, and building its key costs allocations, neither of which
/// belongs on every request. Made on first use, after the daemon has bootstrapped the metrics
/// system.
public final class IntakeMetrics: Sendable {
    static let shared = IntakeMetrics()

    private let requests: [ProviderID: [IntakeResult.Outcome: Counter]]
    private let quarantinedBy: [Rejection.Reason: Counter]
    private let conflictsBy: [ProviderID: Counter]
    let quarantineDropped = Counter(label: "pgnoti_quarantine_dropped_total")
    let conflictsIgnored = Counter(label: "pgnoti_conflicts_ignored_total")

    private init() {
        var requests: [ProviderID: [IntakeResult.Outcome: Counter]] = [:]
        var conflicts: [ProviderID: Counter] = [:]
        for provider in ProviderID.allCases {
            var byOutcome: [IntakeResult.Outcome: Counter] = [:]
            for outcome in IntakeResult.Outcome.allCases {
                byOutcome[outcome] = Counter(
                    label: "pgnoti_requests_total",
                    dimensions: [("provider", provider.rawValue), ("outcome", outcome.rawValue)])
            }
            requests[provider] = byOutcome
            conflicts[provider] = Counter(
                label: "pgnoti_conflicts_total", dimensions: [("provider", provider.rawValue)])
        }
        self.requests = requests
        self.conflictsBy = conflicts
        var quarantined: [Rejection.Reason: Counter] = [:]
        for reason in Rejection.Reason.allCases {
            quarantined[reason] = Counter(label: "pgnoti_quarantined_total", dimensions: [("reason", reason.rawValue)])
        }
        self.quarantinedBy = quarantined
    }

    /// Creates every series now, so `/metrics` shows each at 0 from the start: an alert rule on
    /// a counter that does not exist yet never fires.
    public static func register() { _ = shared }

    func requests(_ provider: ProviderID, _ outcome: IntakeResult.Outcome) -> Counter {
        requests[provider]![outcome]!
    }

    func quarantined(_ reason: Rejection.Reason) -> Counter {
        quarantinedBy[reason]!
    }

    func conflicts(_ provider: ProviderID) -> Counter {
        conflictsBy[provider]!
    }
}
