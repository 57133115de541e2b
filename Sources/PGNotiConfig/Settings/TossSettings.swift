import Foundation
import PGNotiCore

/// `[toss]`: TossPayments transaction files, dropped into an inbox by Toss's FTP push or pulled
/// over HTTP. Toss signs nothing: the inbox's file permissions and the pull's key are the trust.
public struct TossSettings: Sendable, Equatable {
    public var enabled = false
    /// Where the FTP server drops `<mid>_AUTH_<yyyymmdd>.dat` / `_REV_` files; nil: no watching
    /// (files come by `pgnoti toss import` or the pull).
    public var inbox: String?
    /// A file is taken once its size and modification time have not changed for this long (or
    /// at once when it was renamed into the inbox).
    public var stableSeconds = 10.0
    /// How often the inbox is looked at besides inotify's wake-ups.
    public var pollSeconds = 2.0
    /// A day's file is final (moved to `inbox/done/`) this many minutes after the following
    /// midnight, KST: Toss pushes the previous day in full at 00:05. A file's last line without
    /// its newline is taken only once its day is over and the file unchanged this long.
    public var finalAfterMinutes = 60
    /// The pull: `mertid`, the MertKey's file, the download URL, and an optional schedule.
    public var merchantID: String?
    public var mertKeyPath: String?
    public var pullURL = "https://pgweb.tosspayments.com/pg/wmp/outerpage/trxdown.jsp"
    /// Pull today's (and until it is final, yesterday's) TRX and REV every this many minutes;
    /// nil: the daemon does not pull.
    public var pullIntervalMinutes: Int?
    public var pullTimeoutSeconds = 30.0

    public init() {}
}

extension ConfigLoader {
    static let tossMertKeyCredential = "toss-mert-key"

    func parseToss(_ table: TableReader, _ report: inout SecretReport) throws(ConfigError) -> TossSettings {
        try table.allow([
            "enabled", "inbox", "stable_seconds", "poll_seconds", "final_after_minutes", "merchant_id",
            "mert_key_file", "pull_url", "pull_interval_minutes", "pull_timeout_seconds",
        ])
        var toss = TossSettings()
        toss.enabled = try table.bool("enabled") ?? true
        toss.inbox = try table.string("inbox")
        if let v = try table.double("stable_seconds") {
            guard (0...3600).contains(v) else { throw ConfigError("toss.stable_seconds", "must be 0 to 3600") }
            toss.stableSeconds = v
        }
        if let v = try table.double("poll_seconds") {
            guard (0.05...600).contains(v) else { throw ConfigError("toss.poll_seconds", "must be 0.05 to 600") }
            toss.pollSeconds = v
        }
        if let v = try table.int("final_after_minutes") {
            guard (0...1440).contains(v) else { throw ConfigError("toss.final_after_minutes", "must be 0 to 1440") }
            toss.finalAfterMinutes = v
        }
        toss.merchantID = try table.string("merchant_id")
        toss.mertKeyPath = try secretFile(
            table, "mert_key_file", credential: Self.tossMertKeyCredential, &report)
        if let url = try table.httpURL("pull_url", expected: "an http(s) URL without a query", allowQuery: false) {
            toss.pullURL = url
        }
        if let v = try table.int("pull_interval_minutes") {
            guard (1...1440).contains(v) else {
                throw ConfigError("toss.pull_interval_minutes", "must be 1 to 1440 (leave it out to not pull)")
            }
            guard toss.merchantID != nil, toss.mertKeyPath != nil else {
                throw ConfigError(
                    "toss.pull_interval_minutes",
                    "the pull needs toss.merchant_id and the MertKey (toss.mert_key_file or the \(Self.tossMertKeyCredential) credential)"
                )
            }
            toss.pullIntervalMinutes = v
        }
        if let v = try table.double("pull_timeout_seconds") {
            guard (1...600).contains(v) else { throw ConfigError("toss.pull_timeout_seconds", "must be 1 to 600") }
            toss.pullTimeoutSeconds = v
        }
        return toss
    }
}
