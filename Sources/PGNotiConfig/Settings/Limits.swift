import Foundation
import PGNotiCore

/// Bounds on what a client can make the daemon do. Every one has a default; see README "Limits".
public struct Limits: Sendable, Equatable {
    /// Time a connection has to deliver a complete request (head and body) once it starts one.
    public var readTimeoutSeconds = 10
    /// Connections over this are closed as soon as they are accepted.
    public var maxConnections = 4096
    public var maxHeaderBytes = 16 * 1024
    /// Per client address; 0 turns the limit off, so a PG's retry storm is never refused by default.
    public var requestsPerSecondPerSource = 0
    /// Requests a client may send at once above the rate.
    public var burstPerSource = 10
    /// Stored bytes of refused requests; never-parsed garbage is evicted first.
    public var quarantineMaxBytes = 256 * 1024 * 1024
    public var quarantineKeepDays = 30
    /// On SIGTERM, requests still being read after this are cut (unACKed) and the daemon exits.
    /// Below the unit's TimeoutStopSec (30 s), so systemd never has to kill it.
    public var shutdownGraceSeconds = 20

    public init() {}
}

extension ConfigLoader {
    func parseLimits(_ table: TableReader) throws(ConfigError) -> Limits {
        try table.allow([
            "read_timeout_seconds", "max_connections", "max_header_bytes", "requests_per_second_per_source",
            "burst_per_source", "quarantine_max_bytes", "quarantine_keep_days", "shutdown_grace_seconds",
        ])
        var limits = Limits()
        func bounded(_ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let value = try table.int(key) else { return nil }
            guard range.contains(value) else {
                throw ConfigError(table.name(key), "must be between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        if let v = try bounded("read_timeout_seconds", 1...600) { limits.readTimeoutSeconds = v }
        if let v = try bounded("max_connections", 1...1_000_000) { limits.maxConnections = v }
        if let v = try bounded("max_header_bytes", 1024...(1 << 20)) { limits.maxHeaderBytes = v }
        if let v = try bounded("requests_per_second_per_source", 0...1_000_000) {
            limits.requestsPerSecondPerSource = v
        }
        if let v = try bounded("burst_per_source", 1...1_000_000) { limits.burstPerSource = v }
        if let v = try bounded("quarantine_max_bytes", 1024 * 1024...(1 << 40)) { limits.quarantineMaxBytes = v }
        if let v = try bounded("quarantine_keep_days", 1...3650) { limits.quarantineKeepDays = v }
        // Below the shipped unit's TimeoutStopSec=30s with room to close the ledger, so systemd
        // never has to SIGKILL a daemon that is still finishing commits.
        if let v = try bounded("shutdown_grace_seconds", 1...25) { limits.shutdownGraceSeconds = v }
        return limits
    }
}
