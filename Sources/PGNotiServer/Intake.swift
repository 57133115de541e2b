import Foundation
import Logging
import PGNotiCore
import PGNotiSpool
import PGNotiStore

/// What one request became. `accepted`, `duplicate` and `conflict` were committed and ACKed;
/// `rejected` and `error` were not ACKed, so the PG will try again.
public enum Outcome: String, Sendable {
    case accepted, duplicate, conflict, rejected, error
}

public struct IncomingRequest: Sendable {
    public var provider: ProviderID
    public var body: [UInt8]
    public var contentType: String?
    public var remoteAddress: String?
    public var requestID: String
    public var receivedAt: Date

    public init(
        provider: ProviderID, body: [UInt8], contentType: String?, remoteAddress: String?,
        requestID: String, receivedAt: Date
    ) {
        self.provider = provider
        self.body = body
        self.contentType = contentType
        self.remoteAddress = remoteAddress
        self.requestID = requestID
        self.receivedAt = receivedAt
    }
}

public struct IntakeResult: Sendable {
    public var status: Int
    public var body: String
    public var outcome: Outcome
    public var eventID: String?
    public var merchantID: String?
    public var tid: String?
    public var state: String?
    public var kind: String?
    public var reason: String?
    /// Why it was refused or failed; never holds a secret.
    public var detail: String?
    /// For a conflict: the fingerprint already stored, and the one just received.
    public var storedFingerprint: String?
    public var receivedFingerprint: String?
    /// The decoded fields with personal data masked; filled only when debug logging is on.
    public var maskedFields: [String: String]?
}

/// The heart of the daemon, independent of HTTP: decode, verify, commit, then decide the answer.
/// The ACK is only ever produced from a `RecordOutcome`, i.e. after the ledger committed.
public struct Intake: Sendable {
    let providers: [ProviderID: any PaymentProvider]
    let ledger: Ledger
    let relay: OutboxRelay?
    let logger: Logger
    let rejectedKeep: Int

    public init(
        providers: [any PaymentProvider], ledger: Ledger, relay: OutboxRelay?, logger: Logger,
        rejectedKeep: Int = 10_000
    ) {
        self.providers = Dictionary(providers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        self.ledger = ledger
        self.relay = relay
        self.logger = logger
        self.rejectedKeep = rejectedKeep
    }

    public func isEnabled(_ id: ProviderID) -> Bool { providers[id] != nil }

    /// A body over the limit is refused before parsing but still kept (its first bytes), so an
    /// operator can see what was sent.
    public func rejectOversized(_ request: IncomingRequest, declaredLength: Int?, limit: Int) async -> IntakeResult {
        let size = declaredLength.map { "Content-Length \($0)" } ?? "more than \(limit) bytes sent"
        return await reject(request, Rejection(.bodyTooLarge, "\(size); the limit is \(limit) bytes"))
    }

    public func handle(_ request: IncomingRequest) async -> IntakeResult {
        guard let provider = providers[request.provider] else {
            return IntakeResult(status: 404, body: "unknown provider\n", outcome: .rejected, reason: "unknown_provider")
        }
        let notification: PaymentNotification
        do {
            notification = try Self.interpret(request, with: provider)
        } catch {
            return await reject(request, error)
        }
        return await commit(notification, request, provider)
    }

    static func interpret(_ request: IncomingRequest, with provider: any PaymentProvider) throws(Rejection)
        -> PaymentNotification
    {
        if let contentType = request.contentType {
            let mediaType = contentType.split(separator: ";", maxSplits: 1)[0]
                .trimmingCharacters(in: .whitespaces).lowercased()
            guard mediaType.isEmpty || mediaType == "application/x-www-form-urlencoded" else {
                throw Rejection(
                    .unsupportedMediaType, "Content-Type \(mediaType) is not application/x-www-form-urlencoded")
            }
        }
        var charset = provider.defaultCharset
        if let label = KoreanText.charsetLabel(ofContentType: request.contentType) {
            guard let declared = TextCharset(label: label) else {
                throw Rejection(.unsupportedCharset, "charset \(label) is neither EUC-KR/CP949 nor UTF-8")
            }
            charset = declared
        }
        let fields = Fields(FormBody(parsing: request.body), charset: charset)
        return try provider.interpret(fields)
    }

    private func reject(_ request: IncomingRequest, _ rejection: Rejection) async -> IntakeResult {
        var stored = true
        do {
            try await ledger.recordRejected(
                RejectedRequest(
                    provider: request.provider.rawValue, reason: rejection.reason.rawValue, detail: rejection.detail,
                    rawBody: request.body, contentType: request.contentType, remoteAddress: request.remoteAddress,
                    receivedAt: request.receivedAt), keep: rejectedKeep)
        } catch {
            stored = false
            logger.error(
                "could not keep rejected request",
                metadata: [
                    "request_id": "\(request.requestID)", "error": "\(error)",
                ])
        }
        var result = IntakeResult(
            status: rejection.httpStatus, body: "rejected: \(rejection.reason.rawValue)\n",
            outcome: .rejected, reason: rejection.reason.rawValue)
        result.detail = stored ? rejection.detail : rejection.detail + " (and it could not be kept)"
        return result
    }

    private func commit(
        _ notification: PaymentNotification, _ request: IncomingRequest,
        _ provider: any PaymentProvider
    ) async -> IntakeResult {
        var result = IntakeResult(
            status: 500, body: "error: not stored, retry later\n", outcome: .error,
            merchantID: notification.merchantID, tid: notification.tid,
            state: notification.state, kind: notification.kind.rawValue)
        let event = Event(notification: notification, receivedAt: request.receivedAt)
        result.eventID = event.id
        if logger.logLevel <= .debug { result.maskedFields = LogRedaction.masked(notification.rawFields) }
        do {
            let entry = LedgerEntry(
                provider: notification.provider.rawValue, merchantID: notification.merchantID,
                tid: notification.tid, state: notification.state, fingerprint: notification.fingerprint,
                eventID: event.id, eventJSON: try event.jsonBytes(),
                queueFileName: QueueFileName.make(receivedAt: request.receivedAt, eventID: event.id),
                rawBody: request.body, contentType: request.contentType, remoteAddress: request.remoteAddress,
                receivedAt: request.receivedAt)
            let outcome = try await ledger.record(entry)
            // Committed: from here on the PG may hear its ACK.
            result.status = 200
            result.body = provider.ackBody
            switch outcome {
            case .accepted(let id):
                result.outcome = .accepted
                result.eventID = id
                relay?.wake()
            case .duplicate(let id):
                result.outcome = .duplicate
                result.eventID = id
            case .conflict(let id, let storedFingerprint):
                result.outcome = .conflict
                result.eventID = id
                result.storedFingerprint = storedFingerprint
                result.receivedFingerprint = notification.fingerprint
            }
        } catch {
            result.reason = "store_failed"
            result.detail = "\(error)"
        }
        return result
    }
}
