import Foundation
import Logging
import PGNotiCore
import PGNotiStore

/// How a request reaches Payup. The client's logic (journal, sign, settle) is here; the HTTP
/// that carries it is the server's (`PayupHTTPTransport`), and tests hand in a fake.
public protocol PayupTransport: Sendable {
    /// POSTs `json` to `url` and returns Payup's answer, or why there is none.
    func post(url: String, json: [UInt8], timeout: Duration) async -> PayupTransportResult
    func shutdown() async
}

public enum PayupTransportResult: Sendable {
    case answered(status: Int, body: [UInt8])
    case failed(PayupFailure)
}

/// Why a call to Payup failed. Whether the request can have reached Payup decides between
/// "not sent" (safe to retry) and "unknown" (never retry); the transport judges it from the
/// error's type.
public enum PayupFailure: Sendable, Equatable {
    /// No connection was ever made (refused, unreachable, DNS, connect timeout).
    case neverConnected(String)
    /// Sent, and no answer came in time.
    case timedOut
    /// Sent, and the connection or the answer broke.
    case lost(String)
}

/// The durable Payup key-in client ("카드결제 구인증 API 규격서" v1.3). Payup's answer is the only
/// record of a payment, so the call runs inside the daemon, which owns the ledger:
///
/// 1. the intent (operation, order, amount, time; never card data) is committed before anything
///    is sent;
/// 2. the request goes out signed (§2.1.1 / §2.2.1) with pgnoti's apiCertKey;
/// 3. the answer, or the lack of one, is filed through the intake as an event: `0000` becomes
///    `payment.approved` / `payment.canceled`, any other code `payment.failed`, a timeout or a
///    lost answer `payment.unknown`, which `pgnoti payup pending` lists for the operator.
///
/// Card data lives only in memory for the one request: it reaches no file, log line or event.
public final class PayupClient: Sendable {
    public enum Operation: String, Sendable {
        case approve, cancel
    }

    /// What the merchant's app hears.
    public struct Answer: Sendable {
        public let status: Int
        public let body: [UInt8]
    }

    let baseURL: String
    let merchantID: String
    let apiCertKey: SecretValues
    let token: SecretValues
    let timeout: Duration
    let intake: Intake
    let journal: any SourceProgress
    let logger: Logger
    let transport: any PayupTransport

    public init(
        baseURL: String, merchantID: String, apiCertKey: SecretValues, token: SecretValues, timeout: Duration,
        intake: Intake, journal: any SourceProgress, transport: any PayupTransport, logger: Logger
    ) {
        self.baseURL = baseURL
        self.merchantID = merchantID
        self.apiCertKey = apiCertKey
        self.token = token
        self.timeout = timeout
        self.intake = intake
        self.journal = journal
        self.transport = transport
        self.logger = logger
    }

    public func shutdown() async {
        await transport.shutdown()
    }

    /// `Authorization: Bearer <client token>`, compared in constant time.
    public func authorizes(_ header: String?) -> Bool {
        guard let header, header.lowercased().hasPrefix("bearer ") else { return false }
        return token.matches(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
    }

    /// §2.1 members the request must carry (merchant id and signature are pgnoti's to add).
    static let approveRequired = [
        "orderNumber", "cardNo", "expireMonth", "expireYear", "birthday", "cardPw", "amount", "quota", "itemName",
        "userName",
    ]

    public func call(_ operation: Operation, body: [UInt8]) async -> Answer {
        guard let parsed = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            return Self.error(400, "the request body is not a JSON object")
        }
        // §2.0: every member of a request is a string.
        var request: [String: String] = [:]
        for (name, value) in parsed {
            switch value {
            case let text as String: request[name] = text
            case let number as NSNumber: request[name] = number.stringValue
            default: return Self.error(400, "\(name) must be a string")
            }
        }
        let required = operation == .approve ? Self.approveRequired : ["transactionId"]
        for name in required where (request[name] ?? "").isEmpty {
            return Self.error(400, "\(name) is required")
        }
        let timestamp = Self.timestamp(Date())
        // A cancel names only the transaction; the approval's intent knows the order, which the
        // cancel event carries so that consumers see both under one order.
        var order = request["orderNumber"]
        if operation == .cancel, order == nil, let transaction = request["transactionId"] {
            order = try? await journal.payupApproval(transactionID: transaction)?.orderNumber
        }
        let intent = PayupIntent(
            id: Self.newIntentID(), operation: operation.rawValue, merchantID: merchantID,
            orderNumber: order, amount: request["amount"], transactionID: request["transactionId"],
            timestamp: timestamp, state: .sent, createdAt: Date())
        do {
            try await journal.savePayupIntent(intent)
        } catch {
            logger.error("Payup call not sent: the intent could not be journaled", metadata: ["error": "\(error)"])
            return Self.error(503, "not sent: the intent could not be stored (\(error))")
        }

        let path: String
        switch operation {
        case .approve:
            request["timestamp"] = timestamp
            request["signature"] = apiCertKey.withValues {
                PayupSignature.approve(
                    merchantID: merchantID, orderNumber: request["orderNumber"] ?? "", amount: request["amount"] ?? "",
                    apiCertKey: $0.first ?? "", timestamp: timestamp)
            }
            path = "/v2/api/payment/\(merchantID)/keyin2"
        case .cancel:
            request["merchantId"] = merchantID
            request["signature"] = apiCertKey.withValues {
                PayupSignature.cancel(
                    merchantID: merchantID, transactionID: request["transactionId"] ?? "", apiCertKey: $0.first ?? "")
            }
            path = "/v2/api/payment/\(merchantID)/cancel2"
        }
        let sent = await send(path: path, request: request)
        return await settle(intent, operation: operation, sent)
    }

    enum Sent {
        case answered(status: Int, object: [String: Any])
        case unknown(String)
        case notSent(String)
    }

    private func send(path: String, request: [String: String]) async -> Sent {
        guard let json = try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys]) else {
            return .notSent("the request could not be encoded")
        }
        switch await transport.post(url: baseURL + path, json: Array(json), timeout: timeout) {
        case .answered(let code, let bytes):
            guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
                return .unknown("HTTP \(code) without a Payup answer")
            }
            // Whatever Payup echoed beyond its documented answer (card data) stops here.
            let answer = Payup.documented(object)
            if Payup.classify(answer) == .unclassifiable {
                return .unknown("HTTP \(code): Payup's answer has no usable responseCode")
            }
            return .answered(status: code, object: answer)
        case .failed(.neverConnected(let why)): return .notSent("could not connect to Payup: \(why)")
        case .failed(.timedOut): return .unknown("no answer within \(timeout)")
        case .failed(.lost(let why)): return .unknown("the answer was lost: \(why)")
        }
    }

    /// Files the outcome and settles the intent; the app hears Payup's documented answer.
    private func settle(_ intent: PayupIntent, operation: Operation, _ sent: Sent) async -> Answer {
        var intent = intent
        var document: [String: Any] = [
            "operation": operation.rawValue, "intent_id": intent.id, "merchant_id": merchantID,
            "timestamp": intent.timestamp,
        ]
        if let order = intent.orderNumber { document["order_number"] = order }
        if let amount = intent.amount { document["amount"] = amount }
        if let transaction = intent.transactionID { document["transaction_id"] = transaction }
        switch sent {
        case .notSent(let why):
            intent.state = .notSent
            intent.error = why
            try? await journal.savePayupIntent(intent)
            logger.error(
                "Payup call not sent",
                metadata: ["intent_id": "\(intent.id)", "operation": "\(operation)", "error": "\(why)"])
            return Self.json(502, ["outcome": "not_sent", "intent_id": intent.id, "error": why])
        case .unknown(let why):
            document["outcome"] = "unknown"
            document["error"] = why
            intent.state = .unknown
            intent.error = why
        case .answered(_, let object):
            document["outcome"] = "response"
            document["response"] = object
            intent.responseCode = object["responseCode"] as? String
            intent.responseMessage = object["responseMsg"].map { "\($0)" }
            intent.state =
                Payup.classify(object) == .success ? (operation == .approve ? .approved : .canceled) : .failed
            if operation == .approve, let transaction = object["transactionId"] as? String, !transaction.isEmpty {
                // Kept so that a later cancel of this payment carries its order.
                intent.transactionID = transaction
            }
        }
        let bytes =
            (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])).map(Array.init) ?? []
        let submission = Submission(
            provider: .payup, body: bytes, contentType: Payup.mediaType, address: ClientAddress(peer: nil, client: nil),
            receivedAt: Date(), requestID: "payup-\(intent.id)", origin: .payup(intentID: intent.id))
        let result = await intake.process(submission)
        intent.eventID = result.eventID
        if !result.isCommitted {
            // An outcome with no event is not settled: it stays for `payup pending`.
            intent.state = .unknown
            intent.error = intent.error ?? "the outcome could not be filed as an event"
            logger.error(
                "Payup outcome not filed as an event; the intent keeps it",
                metadata: [
                    "intent_id": "\(intent.id)", "error": "\(result.error ?? result.rejection?.description ?? "?")",
                ])
        }
        do {
            try await journal.savePayupIntent(intent)
        } catch {
            logger.error(
                "Payup intent could not be updated", metadata: ["intent_id": "\(intent.id)", "error": "\(error)"])
        }
        switch sent {
        case .answered(let status, let object):
            // The app reads the outcome from responseCode, as the ledger did; the HTTP status
            // Payup used (a 500 carrying 0000) is kept beside it, not in place of it.
            var answer = object
            answer["http_status"] = status
            if let event = result.eventID { answer["event_id"] = event }
            answer["intent_id"] = intent.id
            return Self.json(200, answer)
        case .unknown(let why):
            var answer: [String: Any] = ["outcome": "unknown", "intent_id": intent.id, "error": why]
            if let event = result.eventID { answer["event_id"] = event }
            return Self.json(504, answer)
        case .notSent: return Self.error(500, "unreachable")
        }
    }

    static func timestamp(_ date: Date) -> String {
        String(KoreanTime.iso8601(date).prefix(19).filter { $0.isASCII && $0.isNumber })
    }

    static func newIntentID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in String(UInt8.random(in: 0...255, using: &generator), radix: 16) }
            .map { $0.count == 1 ? "0" + $0 : $0 }.joined()
    }

    static func error(_ status: Int, _ message: String) -> Answer {
        json(status, ["error": message])
    }

    static func json(_ status: Int, _ object: [String: Any]) -> Answer {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Answer(status: status, body: Array(data))
    }
}
