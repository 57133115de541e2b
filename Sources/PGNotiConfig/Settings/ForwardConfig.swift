import Foundation
import PGNotiCore

/// `[forward]`: how `pgnoti forward` delivers the queue to the merchant's app. The daemon
/// itself never reads the secret; the forwarder does, when it starts.
public struct ForwardConfig: Sendable, Equatable {
    /// The app's webhook endpoint.
    public var url: String?
    /// Where the signing secret is: `secret_file`, else the `forward-secret` credential.
    public var secretPath: String?
    public var timeoutSeconds = 10.0
    /// How long opening a connection may take (a refused one is retried within it): a dead app
    /// costs this per attempt, not `timeoutSeconds`.
    public var connectTimeoutSeconds = 5.0
    public var concurrency = 4
    public var giveUpAfterHours = 72.0
    public var keepDoneDays = 7.0
    /// The first retry's delay; each later one is three times longer, up to four hours.
    public var retryInitialSeconds = 5.0
    /// With a PostgreSQL database: how long the active forwarder's lease lasts without a
    /// renewal (renewed every third of it), so how soon another host's forwarder takes over.
    public var leaseSeconds = 15.0

    public init() {}
}

extension ConfigLoader {
    public static let forwardSecretCredential = "forward-secret"

    /// The forwarder's signing secret, from `path` (the `--secret-file` flag) or where the
    /// configuration says. The error names the source, never the content.
    public func forwardSecret(_ forward: ForwardConfig, path override: String? = nil) throws(ConfigError)
        -> WebhookSecret
    {
        let key = override != nil ? "--secret-file" : "forward.secret_file"
        guard let path = override ?? forward.secretPath else {
            throw ConfigError(
                "forward.secret_file",
                "no signing secret: set forward.secret_file, pass --secret-file, or load the \(Self.forwardSecretCredential) credential"
            )
        }
        let text = try readFileOrStdin(path, key: key)
        do {
            return try WebhookSecret(text)
        } catch {
            throw ConfigError(key, "\(path): \(error)")
        }
    }

    func parseForward(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> ForwardConfig {
        try table.allow([
            "url", "secret_file", "timeout_seconds", "connect_timeout_seconds", "concurrency", "give_up_after_hours",
            "keep_done_days", "retry_initial_seconds", "lease_seconds",
        ])
        var forward = ForwardConfig()
        forward.url = try table.httpURL("url", expected: "an http:// or https:// URL")
        forward.secretPath = try secretFile(
            table, "secret_file", credential: Self.forwardSecretCredential, &report)
        func positive(_ key: String, _ range: ClosedRange<Double>) throws(ConfigError) -> Double? {
            guard let value = try table.double(key) else { return nil }
            guard range.contains(value) else {
                throw ConfigError("forward.\(key)", "must be between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        if let v = try positive("timeout_seconds", 0.1...600) { forward.timeoutSeconds = v }
        if let v = try positive("connect_timeout_seconds", 0.1...600) { forward.connectTimeoutSeconds = v }
        if let v = try table.int("concurrency") {
            guard (1...256).contains(v) else { throw ConfigError("forward.concurrency", "must be between 1 and 256") }
            forward.concurrency = v
        }
        if let v = try positive("give_up_after_hours", 0.0001...8760) { forward.giveUpAfterHours = v }
        if let v = try positive("keep_done_days", 0...3650) { forward.keepDoneDays = v }
        if let v = try positive("retry_initial_seconds", 0.01...3600) { forward.retryInitialSeconds = v }
        if let v = try positive("lease_seconds", 1...3600) { forward.leaseSeconds = v }
        return forward
    }

    /// The holder renews at a third of its lease and starts no attempt within `timeout_seconds`
    /// of its end: with a lease under 1.5 × the timeout, it would stop delivering between
    /// renewals. Only a PostgreSQL database has a lease.
    func requireRenewableLease(_ config: Config) throws(ConfigError) {
        guard config.postgres != nil else { return }
        let forward = config.forward
        guard forward.leaseSeconds >= forward.timeoutSeconds * 1.5 else {
            throw ConfigError(
                "forward.lease_seconds",
                "must be at least 1.5 × forward.timeout_seconds (\(forward.timeoutSeconds * 1.5)): the active forwarder renews its lease every third of it and starts no delivery within timeout_seconds of its end"
            )
        }
    }
}
