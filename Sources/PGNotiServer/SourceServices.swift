import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiStore
import ServiceLifecycle

/// The doors besides the public listener that `[toss]` and `[payup]` open: the Toss inbox
/// watcher, the scheduled Toss pull and the Payup client. Secrets are read here, once, at start.
struct SourceServices {
    var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
    var payup: PayupClient?

    init(config: Config, intake: Intake, ledger: any LedgerStore, logger: Logger) throws {
        let loader = ConfigLoader()
        if config.toss.enabled {
            let importer = TossImporter(
                intake: intake, progress: ledger, logger: logger, finalAfterMinutes: config.toss.finalAfterMinutes)
            if let inbox = config.toss.inbox {
                services.append(
                    .init(
                        service: TossInbox(
                            directory: inbox, importer: importer, progress: ledger,
                            stable: .milliseconds(Int64(config.toss.stableSeconds * 1000)),
                            poll: .milliseconds(Int64(config.toss.pollSeconds * 1000)),
                            finalAfterMinutes: config.toss.finalAfterMinutes, logger: logger)))
            }
            if let minutes = config.toss.pullIntervalMinutes, let puller = try Self.puller(config, importer, logger) {
                services.append(
                    .init(
                        service: TossPullSchedule(
                            puller: puller, every: .seconds(Int64(minutes) * 60),
                            finalAfterMinutes: config.toss.finalAfterMinutes, logger: logger)))
            }
        }
        if config.payup.clientConfigured, let merchant = config.payup.merchantID,
            let keyPath = config.payup.apiCertKeyPath, let tokenPath = config.payup.clientTokenPath
        {
            payup = PayupClient(
                baseURL: config.payup.baseURL, merchantID: merchant,
                apiCertKey: try loader.readSecret(keyPath, key: "payup.api_cert_key_file"),
                token: try loader.readSecret(tokenPath, key: "payup.client_token_file"),
                timeout: .milliseconds(Int64(config.payup.timeoutSeconds * 1000)), intake: intake, journal: ledger,
                transport: PayupHTTPTransport(readTimeout: .milliseconds(Int64(config.payup.timeoutSeconds * 1000))),
                logger: logger)
        }
    }

    static func puller(_ config: Config, _ importer: TossImporter, _ logger: Logger) throws -> TossPuller? {
        try TossPullerFactory.make(config, importer, logger)
    }
}

/// The configured pull, or nil without a merchant id and MertKey; reads the MertKey.
public enum TossPullerFactory {
    public static func make(_ config: Config, _ importer: TossImporter, _ logger: Logger) throws -> TossPuller? {
        guard let merchant = config.toss.merchantID, let keyPath = config.toss.mertKeyPath else { return nil }
        return TossPuller(
            url: config.toss.pullURL, merchantID: merchant,
            mertKey: try ConfigLoader().readSecret(keyPath, key: "toss.mert_key_file"),
            timeout: .milliseconds(Int64(config.toss.pullTimeoutSeconds * 1000)), importer: importer, logger: logger)
    }
}

/// Pulls today's (and, until it is final, yesterday's) TRX and REV rows on a schedule; TRX
/// before REV, so that a day's approvals are filed before its cancels.
struct TossPullSchedule: Service {
    let puller: TossPuller
    let every: Duration
    let finalAfterMinutes: Int
    let logger: Logger

    /// The days to pull now: `TossPuller.daysToPull`, and yesterday for as long as its last
    /// body ended in a row without its newline that has not been taken yet (that row is taken
    /// only once the body has come back unchanged for `final_after_minutes`).
    func days(now: Date) async -> [String] {
        var days = TossPuller.daysToPull(now: now, finalAfterMinutes: finalAfterMinutes)
        let yesterday = KoreanTime.day(now.addingTimeInterval(-86_400))
        if !days.contains(yesterday) {
            for service in TossPuller.Service.allCases
            where await puller.importer.hasPendingLine(fileName: puller.fileName(date: yesterday, service: service)) {
                days.insert(yesterday, at: 0)
                break
            }
        }
        return days
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                for day in await days(now: Date()) {
                    for service in TossPuller.Service.allCases {
                        do {
                            _ = try await puller.pull(date: day, service: service)
                        } catch {
                            logger.error(
                                "Toss pull failed",
                                metadata: ["day": "\(day)", "service": "\(service.rawValue)", "error": "\(error)"])
                        }
                    }
                }
                try? await Task.sleep(for: every)
            }
        }
    }
}
