import Foundation
import Logging
import PGNotiCore
@_spi(Testing) import PGNotiStore
import PGNotiTestSupport
import Synchronization
import Testing

/// A fresh directory per test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (URL) async throws -> R) async throws -> R {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("pgnoti-store-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url)
}

/// A whole-microsecond timestamp, so stored and read-back dates compare equal.
let fixedDate = Date(timeIntervalSince1970: 1_750_000_000.123456)

/// Whole microseconds, and recent enough that the quarantine's age limit keeps it.
let recentDate = Date(unixMicroseconds: Date().addingTimeInterval(-3600).unixMicroseconds)

func makeEntry(
    tid: String, state: String = "0", provider: ProviderID = .smartro, merchantID: String = "M100",
    amount: Int = 1000, rawBody: [UInt8]? = nil, contentType: String? = "application/x-www-form-urlencoded",
    eventID: String? = nil, receivedAt: Date = fixedDate
) -> LedgerEntry {
    let key = NotificationKey(provider: provider, merchantID: merchantID, tid: tid, state: state)
    let id = eventID ?? "evt-\(provider.rawValue)-\(merchantID)-\(tid)-\(state)"
    let json = Array(#"{"id":"\#(id)","tid":"\#(tid)","state":"\#(state)","amount":\#(amount)}"#.utf8)
    let fingerprint = "amount=\(amount);result=3001"
    return LedgerEntry(
        key: key, fingerprint: fingerprint, eventID: id, kind: "payment.approved", amount: amount,
        resultCode: "3001", rawBody: rawBody ?? Array("TID=\(tid)&Amt=\(amount)".utf8), contentType: contentType,
        peer: "203.0.113.7", client: "198.51.100.1", receivedAt: receivedAt,
        eventJSON: { json },
        conflictEvent: { stored, storedAmount, storedResult in
            let conflictID = "conflict-\(id)-\(amount)"
            return (
                conflictID,
                Array(
                    #"{"id":"\#(conflictID)","conflicts_with":"\#(stored)","stored_amount":\#(storedAmount ?? -1)}"#
                        .utf8)
            )
        })
}

func makeQuarantineEntry(
    reason: String = "signature_mismatch", size: Int = 10, parsed: Bool = false, receivedAt: Date = recentDate
) -> QuarantineEntry {
    QuarantineEntry(
        provider: "smartro", reason: reason, detail: "test", rawBody: [UInt8](repeating: 0x61, count: size),
        contentType: "application/x-www-form-urlencoded", forwardedFor: nil, peer: "203.0.113.7",
        client: "203.0.113.7", pathSecretSHA256: nil, parsed: parsed, merchantID: parsed ? "M100" : nil,
        tid: parsed ? "T" : nil, receivedAt: receivedAt)
}

extension RecordOutcome {
    /// The event id of an accepted record, nil for any other outcome.
    var acceptedID: String? {
        if case .accepted(let id, _) = self { return id }
        return nil
    }

    var fileName: String? {
        switch self {
        case .accepted(_, let name), .conflict(_, _, _, let name): return name
        default: return nil
        }
    }
}

/// Starts `record` in a task and returns once the ledger has it queued, so
/// the order of records inside a held batch is the order of these calls.
func submit(_ entry: LedgerEntry, to ledger: Ledger) async throws -> Task<RecordOutcome, any Error> {
    let before = ledger.queuedRecordCount
    let task = Task { try await ledger.record(entry) }
    try await waitUntil(timeout: .seconds(5), "record to be queued") { ledger.queuedRecordCount == before + 1 }
    return task
}

func files(in directory: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
}
