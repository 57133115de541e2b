import Foundation
import Logging
import PGNotiConfig
import PGNotiCore
import PGNotiLogging
import PGNotiStore
import Synchronization
import Testing

@testable import PGNotiIntake

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-intake-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

let publishedSmartroKey = Config.smartroTestKey
let pathSecret = "intake-test-path-secret-0123"

/// A production-shaped configuration: every PG enabled, the unsigned ones behind a path secret.
func productionConfig() -> Config {
    var config = Config()
    config.smartro.enabled = true
    config.smartro.merchantKeys = ["SMTPAY001m": SecretValues([publishedSmartroKey])]
    config.smartro.auth.acceptTestMerchants = true
    config.tomatopay.enabled = true
    config.tomatopay.auth.pathSecrets = SecretValues([pathSecret])
    config.innopay.enabled = true
    config.innopay.auth.allowSources = [CIDR("203.0.113.0/24")!]
    config.innopay.auth.acceptTestMerchants = true
    return config
}

func submission(
    _ body: String, provider: ProviderID = .tomatopay, contentType: String? = "application/x-www-form-urlencoded",
    secret: String? = pathSecret, client: String = "203.0.113.7", receivedAt: Date = Date()
) -> Submission {
    Submission(
        provider: provider, body: Array(body.utf8), contentType: contentType,
        pathSecret: secret.map { .presented(Array($0.utf8)) } ?? .none,
        address: ClientAddress(peer: client, client: client), receivedAt: receivedAt, requestID: "t")
}

func smartroBody(
    tid: String = "SMTPAY001m01012411231530001234", resultCode: String = "3001", key: String = publishedSmartroKey,
    extra: String = "StateCd=0&Amt=15000&PayMethod=CARD"
) -> String {
    let sign = SmartroSignature.make(tid: tid, resultCode: resultCode, merchantKey: key, algorithm: .md5)
    let escaped = sign.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? sign
    return "MID=SMTPAY001m&TID=\(tid)&ResultCode=\(resultCode)&\(extra)&SignValue=\(escaped)"
}

/// A store in front of a real ledger that can hold every commit until told to go on, to show
/// that no answer leaves the intake before its commit has returned.
final class HoldingStore: NotificationStore {
    let ledger: Ledger
    private let gate = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let held = Mutex(false)
    let failNext = Mutex(false)

    init(ledger: Ledger) { self.ledger = ledger }

    func hold() { held.withLock { $0 = true } }

    var isWaiting: Bool { gate.withLock { $0 != nil } }

    func release() {
        held.withLock { $0 = false }
        gate.withLock { continuation in
            continuation?.resume()
            continuation = nil
        }
    }

    func record(_ entry: LedgerEntry) async throws -> RecordOutcome {
        if held.withLock({ $0 }) {
            await withCheckedContinuation { continuation in gate.withLock { $0 = continuation } }
        }
        if failNext.withLock({ value in
            defer { value = false }
            return value
        }) {
            throw LedgerError.closed
        }
        return try await ledger.record(entry)
    }

    func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome {
        try await ledger.quarantine(entry)
    }
}
