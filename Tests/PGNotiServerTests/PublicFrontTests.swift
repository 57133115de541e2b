import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import PGNotiConfig
import PGNotiCore
import PGNotiIntake
import PGNotiStore
import Testing

@testable import PGNotiServer

/// The public front's answers, decided in process (HummingbirdTesting's router mode): no
/// socket, no daemon, the same responder the daemon serves.
struct PublicFrontAnswerTests {
    static let secret = "front-test-path-secret-0123"
    static let tomato = "MID=tomato001m&TID=T1&StateCd=0&Amt=1000&ResultCode=3001"
    static let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]

    /// A store that fails every commit: the disk is gone.
    struct FailingStore: NotificationStore {
        struct Broken: Error {}
        func record(_ entry: LedgerEntry) async throws -> RecordOutcome { throw Broken() }
        func quarantine(_ entry: QuarantineEntry) async throws -> QuarantineOutcome { throw Broken() }
    }

    static func config(rate: Int = 0, maxBody: Int = 65_536) -> Config {
        var config = Config()
        config.tomatopay.enabled = true
        config.tomatopay.auth.pathSecrets = SecretValues([secret])
        config.innopay.enabled = true
        config.innopay.auth.allowUnauthenticated = true
        config.maxBodyBytes = maxBody
        config.limits.requestsPerSecondPerSource = rate
        config.limits.burstPerSource = 1
        return config
    }

    static func application(_ config: Config, store: (any NotificationStore)? = nil) throws -> some ApplicationProtocol
    {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgnoti-front-\(UUID())")
        let ledger = try store ?? Ledger(path: directory.appendingPathComponent("db.sqlite").path)
        var logger = Logger(label: "front-test")
        logger.logLevel = .critical
        let intake = Intake(policy: IntakePolicy(config: config), store: ledger, logger: logger)
        let front = PublicFront(intake: intake, settings: FrontSettings(config: config), logger: logger)
        return Application(responder: front.responder, logger: logger)
    }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    @Test func aStoredNotificationGetsTheExactAck() async throws {
        try await PublicFrontAnswerTests.application(Self.config()).test(.router) { client in
            let response = try await client.execute(
                uri: "/notify/tomatopay/\(Self.secret)", method: .post, headers: Self.form, body: Self.body(Self.tomato)
            )
            #expect(response.status == .ok)
            #expect(String(buffer: response.body) == "OK")
        }
    }

    @Test func aMissingOrWrongSecretIsA404LikeAnyUnknownPath() async throws {
        try await PublicFrontAnswerTests.application(Self.config()).test(.router) { client in
            for uri in ["/notify/tomatopay", "/notify/tomatopay/wrong-secret-wrong-secret", "/notify/nowhere", "/"] {
                let response = try await client.execute(
                    uri: uri, method: .post, headers: Self.form, body: Self.body(Self.tomato))
                #expect(response.status == .notFound, "\(uri)")
                #expect(String(buffer: response.body) == "not found\n", "\(uri)")
            }
            // A PG without a path secret has no secret segment to guess at.
            let innopay = try await client.execute(
                uri: "/notify/innopay/anything", method: .post, headers: Self.form, body: Self.body("x=1"))
            #expect(innopay.status == .notFound)
        }
    }

    @Test func otherMethodsGet405WithAllowOnlyBehindTheSecret() async throws {
        try await PublicFrontAnswerTests.application(Self.config()).test(.router) { client in
            let get = try await client.execute(uri: "/notify/tomatopay/\(Self.secret)", method: .get)
            #expect(get.status == .methodNotAllowed)
            #expect(get.headers[.allow] == "POST")
            let guessed = try await client.execute(uri: "/notify/tomatopay", method: .get)
            #expect(guessed.status == .notFound, "no method advice without the secret")
        }
    }

    @Test func aDeclaredBodyOverTheLimitIs413BeforeItIsRead() async throws {
        try await PublicFrontAnswerTests.application(Self.config(maxBody: 1024)).test(.router) { client in
            var headers = Self.form
            headers[.contentLength] = "4096"
            let response = try await client.execute(
                uri: "/notify/innopay", method: .post, headers: headers,
                body: Self.body(String(repeating: "a", count: 4096)))
            #expect(response.status == .contentTooLarge)
            #expect(String(buffer: response.body) == "rejected: body_too_large\n")
        }
    }

    @Test func aBodyThatIsNotAFormIs415() async throws {
        try await PublicFrontAnswerTests.application(Self.config()).test(.router) { client in
            let response = try await client.execute(
                uri: "/notify/innopay", method: .post, headers: [.contentType: "application/json"],
                body: Self.body(#"{"pgMid":"testpay01m"}"#))
            #expect(response.status == .unsupportedMediaType)
        }
    }

    @Test func aClientOverItsRateGets429() async throws {
        try await PublicFrontAnswerTests.application(Self.config(rate: 1)).test(.router) { client in
            var statuses: [HTTPResponse.Status] = []
            for n in 0..<4 {
                let response = try await client.execute(
                    uri: "/notify/tomatopay/\(Self.secret)", method: .post, headers: Self.form,
                    body: Self.body(Self.tomato.replacingOccurrences(of: "TID=T1", with: "TID=R\(n)")))
                statuses.append(response.status)
            }
            #expect(statuses.first == .ok)
            #expect(statuses.contains(.tooManyRequests), "\(statuses)")
        }
    }

    @Test func aStoreThatCannotCommitGives500AndNeverTheAck() async throws {
        try await PublicFrontAnswerTests.application(Self.config(), store: FailingStore()).test(.router) { client in
            let response = try await client.execute(
                uri: "/notify/tomatopay/\(Self.secret)", method: .post, headers: Self.form, body: Self.body(Self.tomato)
            )
            #expect(response.status == .internalServerError)
            #expect(String(buffer: response.body) != "OK")
        }
    }
}
