import PGNotiConfig
import PGNotiStore

extension QuarantinePolicy {
    /// The quarantine caps a configuration sets. Whoever opens the ledger passes these: its
    /// first commit sweeps the quarantine by them, so the defaults would drop what the operator
    /// chose to keep.
    public init(config: Config) {
        self.init(
            maxBytes: config.limits.quarantineMaxBytes, maxRows: config.rejectedKeep,
            keepDays: config.limits.quarantineKeepDays)
    }
}

extension Ledger {
    /// The one way the daemon and every command open the ledger a configuration names.
    public static func open(_ config: Config) throws -> Ledger {
        try Ledger(path: config.database, quarantinePolicy: QuarantinePolicy(config: config))
    }

    /// The same database, opened for a command that only reads (see `openReadOnly(path:)`).
    public static func openReadOnly(_ config: Config) throws -> Ledger {
        try Ledger.openReadOnly(path: config.database)
    }
}
