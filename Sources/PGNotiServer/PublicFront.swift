import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Metrics
import NIOCore
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import Synchronization

/// Carries the peer address into the handler.
public struct NotifyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let peer: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peer = source.channel.remoteAddress?.ipAddress
    }
}

/// What the public front decides with besides the intake's policy; replaced whole on reload.
struct FrontSettings: Sendable {
    var maxBodyBytes: Int
    var trustedProxies: [CIDR]
    var rateLimiter: RateLimiter?

    init(config: Config) {
        maxBodyBytes = config.maxBodyBytes
        trustedProxies = config.trustedProxies
        let rate = config.limits.requestsPerSecondPerSource
        rateLimiter = rate > 0 ? RateLimiter(rate: rate, burst: config.limits.burstPerSource) : nil
    }
}

/// `POST /notify/{provider}` (or `/notify/{provider}/{secret}`) and nothing else. A plain
/// responder rather than a router: the surface is one path, and every answer (404, 405, 413 …)
/// must be exact and logged.
public final class PublicFront: Sendable {
    let intake: Intake
    let logger: Logger
    private let settingsBox: Mutex<FrontSettings>
    private let rateLimited: BurstLog

    init(intake: Intake, settings: FrontSettings, logger: Logger) {
        self.intake = intake
        self.logger = logger
        self.settingsBox = Mutex(settings)
        self.rateLimited = BurstLog(
            logger: logger, message: "rate limit: refusing requests from a client over its rate")
    }

    var settings: FrontSettings { settingsBox.withLock { $0 } }

    func replaceSettings(_ settings: FrontSettings) {
        settingsBox.withLock { $0 = settings }
    }

    public var responder: CallbackResponder<NotifyRequestContext> {
        CallbackResponder { request, context in await self.respond(to: request, context: context) }
    }

    /// The route a path names: `/notify/<provider>` with an optional secret segment. Only PGs
    /// that post notifications have one.
    struct Route {
        var provider: ProviderID
        var secret: [UInt8]?

        init?(path: String) {
            let segments = path.split(separator: "/", omittingEmptySubsequences: true)
            guard segments.count == 2 || segments.count == 3, segments[0] == "notify",
                let provider = ProviderID(rawValue: String(segments[1])), provider.postsNotifications
            else { return nil }
            self.provider = provider
            self.secret = segments.count == 3 ? Array(segments[2].utf8) : nil
        }
    }

    /// The path as it may appear in a log line: anything after the provider is a secret, or a
    /// guess at one.
    static func maskedPath(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard segments.count > 2, segments[0] == "notify" else { return path }
        return "/notify/\(segments[1])/***"
    }

    func respond(to request: Request, context: NotifyRequestContext) async -> Response {
        let started = ContinuousClock.now
        let receivedAt = Date()
        let requestID = RequestID.next()
        let policy = intake.policy
        let settings = self.settings
        let path = request.uri.path

        guard let route = Route(path: path), policy.isEnabled(route.provider),
            route.secret == nil || policy.requiresPathSecret(route.provider)
        else {
            let why =
                Route(path: path).map { policy.isEnabled($0.provider) ? "no such endpoint" : "provider not enabled" }
                ?? "no such endpoint"
            logRouteRefusal(why, status: .notFound, request, context, requestID)
            return Self.notFound()
        }
        // Without the right secret nothing about the endpoint is revealed: not its method, not
        // its size limit, not its rate limit. The intake refuses such a request as a 404.
        let secretOK =
            !policy.requiresPathSecret(route.provider)
            || route.secret.map { policy.auth(for: route.provider).pathSecrets.matches($0) } ?? false
        guard request.method == .post else {
            guard secretOK else {
                logRouteRefusal("no such endpoint", status: .notFound, request, context, requestID)
                return Self.notFound()
            }
            logRouteRefusal("method not allowed", status: .methodNotAllowed, request, context, requestID)
            var response = Self.text(.methodNotAllowed, "method not allowed: use POST\n")
            response.headers[.allow] = "POST"
            return response
        }

        let forwardedFor = request.headers[values: Self.xForwardedFor]
        let address = ClientAddress.resolve(
            peer: context.peer, forwardedFor: forwardedFor, realIP: request.headers[Self.xRealIP],
            trustedProxies: settings.trustedProxies)
        var submission = Submission(
            provider: route.provider, body: [], contentType: request.headers[.contentType],
            pathSecret: route.secret.map { .presented($0) } ?? .none,
            forwardedFor: forwardedFor.isEmpty ? nil : forwardedFor.joined(separator: ", "),
            address: address, receivedAt: receivedAt, requestID: requestID)

        let result: IntakeResult
        let limit = settings.maxBodyBytes
        let maskedPath = Self.maskedPath(path)
        // The intake writes the request's log line; the front adds what only HTTP knows.
        let annotate: Intake.Annotation = { result in
            [
                "http_status": .stringConvertible(Int(Self.status(for: result).code)),
                "latency_ms": .stringConvertible(Self.milliseconds(since: started)),
                "path": .string(maskedPath),
            ]
        }
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            // Refused before a byte of the body is read; the guard closes the connection after.
            result =
                secretOK
                ? await intake.refuse(
                    submission, Rejection(.bodyTooLarge, "Content-Length \(declared); the limit is \(limit) bytes"),
                    annotate: annotate)
                : await intake.process(submission, annotate: annotate)
        } else {
            do {
                let (bytes, overflow) = try await Self.collect(request.body, limit: limit)
                submission.body = bytes
                if !secretOK {
                    result = await intake.process(submission, annotate: annotate)
                } else if overflow {
                    result = await intake.refuse(
                        submission,
                        Rejection(.bodyTooLarge, "more than \(limit) bytes sent; the limit is \(limit) bytes"),
                        annotate: annotate)
                } else if let limiter = settings.rateLimiter, !limiter.allow(address.client ?? "-") {
                    rateLimited.note(["client": .string(address.client ?? "-")])
                    result = await intake.refuse(
                        submission, Rejection(.rateLimited, "more than \(Int(limiter.rate)) requests per second"),
                        annotate: annotate)
                } else {
                    result = await intake.process(submission, annotate: annotate)
                }
            } catch {
                logger.warning(
                    "request body could not be read",
                    metadata: [
                        "request_id": "\(requestID)", "provider": "\(route.provider.rawValue)", "error": "\(error)",
                        "peer": "\(address.peer ?? "-")", "client": "\(address.client ?? "-")",
                    ])
                return Self.text(.badRequest, "unreadable body\n")
            }
        }
        Self.ackLatency.recordNanoseconds((ContinuousClock.now - started).nanoseconds)
        return Self.response(for: result)
    }

    /// Time from the request's arrival to its answer, for every answer.
    static let ackLatency = Timer(label: "pgnoti_ack_latency_seconds")

    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    static let xRealIP = HTTPField.Name("X-Real-IP")!

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

    /// The answer for a result. Only a committed result carries the ACK; every refusal is
    /// something else, so the PG retries while an operator looks.
    static func response(for result: IntakeResult) -> Response {
        let status = status(for: result)
        switch result.decision {
        case .committed(let ack, _): return text(.ok, ack)
        case .storeFailed: return text(.internalServerError, "error: not stored, retry later\n")
        case .refused(let rejection, _):
            if status == .notFound { return notFound() }
            var response = text(status, "rejected: \(rejection.reason.rawValue)\n")
            // The body was not read: the connection cannot carry another request.
            if rejection.reason == .bodyTooLarge { response.headers[.connection] = "close" }
            return response
        }
    }

    /// The status a result is answered with.
    static func status(for result: IntakeResult) -> HTTPResponse.Status {
        switch result.decision {
        case .committed: return .ok
        case .storeFailed: return .internalServerError
        case .refused(let rejection, _): return status(for: rejection.reason)
        }
    }

    static func status(for reason: Rejection.Reason) -> HTTPResponse.Status {
        switch reason {
        // Indistinguishable from a path that does not exist.
        case .pathSecretMismatch, .providerDisabled: .notFound
        case .signatureMissing, .signatureMismatch, .unknownMerchant, .sourceNotAllowed, .merchantNotAccepted,
            .stateMismatch, .testMerchant, .testMerchantOnly:
            .forbidden
        case .unsupportedMediaType: .unsupportedMediaType
        case .bodyTooLarge: .contentTooLarge
        case .rateLimited: .tooManyRequests
        case .missingField, .invalidField, .unsupportedCharset: .badRequest
        }
    }

    static func notFound() -> Response { text(.notFound, "not found\n") }

    /// A request that never reached the intake (wrong path or method): logged, not kept.
    func logRouteRefusal(
        _ message: String, status: HTTPResponse.Status, _ request: Request, _ context: NotifyRequestContext,
        _ requestID: String
    ) {
        logger.info(
            "\(message)",
            metadata: [
                "request_id": "\(requestID)", "path": "\(Self.maskedPath(request.uri.path))",
                "method": "\(request.method)", "http_status": .stringConvertible(Int(status.code)),
                "peer": "\(context.peer ?? "-")",
            ])
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        return (ms * 1000).rounded() / 1000
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
    static let counter = Atomic<UInt64>(0)
    static func next() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return "\(prefix)-\(String(n, radix: 16))"
    }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
