import Foundation
import Hummingbird
import Logging
import NIOCore
import PGNotiCore

/// Carries the peer address into the handler; PGs are identified in logs by it.
public struct NotifyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }
}

/// `POST /notify/{provider}` and nothing else. A plain responder rather than a router: the
/// surface is one path, and every answer (404, 405, 413) must be exact and logged.
public struct HTTPFront: Sendable {
    let intake: Intake
    let logger: Logger
    let maxBodyBytes: Int

    public init(intake: Intake, logger: Logger, maxBodyBytes: Int) {
        self.intake = intake
        self.logger = logger
        self.maxBodyBytes = maxBodyBytes
    }

    public var responder: CallbackResponder<NotifyRequestContext> {
        CallbackResponder { request, context in await respond(to: request, context: context) }
    }

    func respond(to request: Request, context: NotifyRequestContext) async -> Response {
        let started = ContinuousClock.now
        let receivedAt = Date()
        let requestID = RequestID.next()
        let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count == 2, segments[0] == "notify",
            let provider = ProviderID(rawValue: String(segments[1])), intake.isEnabled(provider)
        else {
            logRouteRefusal("no such endpoint", status: .notFound, request, context, requestID)
            return Self.text(.notFound, "not found\n")
        }
        guard request.method == .post else {
            logRouteRefusal("method not allowed", status: .methodNotAllowed, request, context, requestID)
            var response = Self.text(.methodNotAllowed, "method not allowed: use POST\n")
            response.headers[.allow] = "POST"
            return response
        }

        var incoming = IncomingRequest(
            provider: provider, body: [], contentType: request.headers[.contentType],
            remoteAddress: context.remoteAddress, requestID: requestID, receivedAt: receivedAt)
        let result: IntakeResult
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > maxBodyBytes {
            result = await intake.rejectOversized(incoming, declaredLength: declared, limit: maxBodyBytes)
        } else {
            do {
                let (bytes, overflow) = try await Self.collect(request.body, limit: maxBodyBytes)
                incoming.body = bytes
                if overflow {
                    result = await intake.rejectOversized(incoming, declaredLength: nil, limit: maxBodyBytes)
                } else {
                    result = await intake.handle(incoming)
                }
            } catch {
                logger.warning(
                    "request body could not be read",
                    metadata: [
                        "request_id": "\(requestID)", "provider": "\(provider.rawValue)", "error": "\(error)",
                        "remote": "\(context.remoteAddress ?? "-")",
                    ])
                return Self.text(.badRequest, "unreadable body\n")
            }
        }
        log(result, provider: provider, requestID: requestID, remote: context.remoteAddress, since: started)
        return Self.text(HTTPResponse.Status(code: result.status), result.body)
    }

    /// Reads at most `limit` bytes; reports whether the sender had more.
    static func collect(_ body: RequestBody, limit: Int) async throws -> ([UInt8], Bool) {
        var bytes: [UInt8] = []
        for try await chunk in body {
            let room = limit - bytes.count
            if chunk.readableBytes > room {
                bytes.append(contentsOf: chunk.readableBytesView.prefix(room))
                return (bytes, true)
            }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return (bytes, false)
    }

    /// A request that never reached a provider (wrong path or method): logged, not kept.
    func logRouteRefusal(
        _ message: Logger.Message, status: HTTPResponse.Status, _ request: Request,
        _ context: NotifyRequestContext, _ requestID: String
    ) {
        logger.info(
            message,
            metadata: [
                "request_id": "\(requestID)", "path": "\(request.uri.path)", "method": "\(request.method)",
                "http_status": .stringConvertible(status.code), "remote": "\(context.remoteAddress ?? "-")",
            ])
    }

    /// The one line per notification that operators alert on.
    func log(
        _ result: IntakeResult, provider: ProviderID, requestID: String, remote: String?, since: ContinuousClock.Instant
    ) {
        let elapsed = ContinuousClock.now - since
        let latencyMs = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        var metadata: Logger.Metadata = [
            "request_id": "\(requestID)", "provider": "\(provider.rawValue)",
            "outcome": "\(result.outcome.rawValue)", "http_status": .stringConvertible(result.status),
            "latency_ms": .stringConvertible((latencyMs * 1000).rounded() / 1000), "remote": "\(remote ?? "-")",
        ]
        if let v = result.merchantID { metadata["merchant_id"] = "\(v)" }
        if let v = result.tid { metadata["tid"] = "\(v)" }
        if let v = result.state { metadata["state"] = "\(v)" }
        if let v = result.kind { metadata["kind"] = "\(v)" }
        if let v = result.eventID { metadata["event_id"] = "\(v)" }
        if let v = result.reason { metadata["reason"] = "\(v)" }
        if let v = result.detail { metadata["detail"] = "\(v)" }
        if let v = result.storedFingerprint { metadata["stored"] = "\(v)" }
        if let v = result.receivedFingerprint { metadata["received"] = "\(v)" }
        if let fields = result.maskedFields { metadata["fields"] = .dictionary(fields.mapValues { .string($0) }) }
        switch result.outcome {
        case .accepted, .duplicate: logger.info("notification", metadata: metadata)
        case .conflict, .rejected: logger.warning("notification", metadata: metadata)
        case .error: logger.error("notification", metadata: metadata)
        }
    }

    static func text(_ status: HTTPResponse.Status, _ body: String) -> Response {
        Response(
            status: status, headers: [.contentType: "text/plain; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

enum RequestID {
    /// Random per process, then a counter: unique across restarts without a clock.
    static let prefix = String(UInt32.random(in: .min ... .max), radix: 16)
    static let counter = Locked<UInt64>(0)
    static func next() -> String {
        let n = counter.withLock { value in
            value += 1
            return value
        }
        return "\(prefix)-\(String(n, radix: 16))"
    }
}
