import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PGNotiCore
import PGNotiIntake

/// The HTTP pull of Toss's transaction rows ("거래연동 방안" §2): a GET of the download page with
/// `mertid`, `servicecode`, `trxdate` and `key` = MD5 hex of mertid + MertKey, whose body is read
/// like a pushed file. The key is a secret: no log line or error shows the URL with it.
public struct TossPuller: Sendable {
    public enum Service: String, Sendable, CaseIterable {
        /// Approvals (§2.3), read as an AUTH file.
        case trx = "TRX"
        /// Cancels and refunds (§2.4), read as a REV file.
        case rev = "REV"

        var kind: TossFile.Kind { self == .trx ? .auth : .rev }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// Worth another try (a timeout, a 5xx); an HTML page or a 4xx is not.
        let retryable: Bool
    }

    let url: String
    let merchantID: String
    let mertKey: SecretValues
    let timeout: Duration
    let attempts: Int
    let retryDelay: Duration
    let importer: TossImporter
    let logger: Logger

    public init(
        url: String, merchantID: String, mertKey: SecretValues, timeout: Duration, importer: TossImporter,
        logger: Logger, attempts: Int = 3, retryDelay: Duration = .seconds(2)
    ) {
        self.url = url
        self.merchantID = merchantID
        self.mertKey = mertKey
        self.timeout = timeout
        self.attempts = attempts
        self.retryDelay = retryDelay
        self.importer = importer
        self.logger = logger
    }

    /// §2.1: "상점 아이디 + MertKey 값으로 MD5로 생성한 키 값".
    static func key(merchantID: String, mertKey: SecretValues) -> String {
        mertKey.withValues { Digest.hex(Digest.md5(Array((merchantID + ($0.first ?? "")).utf8))) }
    }

    /// Downloads one day of one service and files its new rows. Retries a timeout or a 5xx
    /// with backoff; an HTML error page fails at once with its title.
    ///
    /// The body is read like a pushed file: a last row without its newline is left until its
    /// day is over and the body has come back unchanged for `final_after_minutes`.
    public func pull(date: String, service: Service, now: Date = Date()) async throws -> TossImportSummary {
        let bytes = try await download(date: date, service: service)
        return try await importer.ingest(
            fileName: fileName(date: date, service: service), bytes: bytes, modifiedAt: nil, now: now)
    }

    /// The name a day's body is read under: `<mid>_AUTH_<date>.dat` for TRX, `_REV_` for REV.
    public func fileName(date: String, service: Service) -> String {
        TossFile.Name(merchantID: merchantID, kind: service.kind, date: date).fileName
    }

    func download(date: String, service: Service) async throws -> [UInt8] {
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: .init(redirectConfiguration: .follow(max: 3, allowCycles: false)))
        defer { _ = client.shutdown() }
        let described = "GET \(url) (mertid \(merchantID), servicecode \(service.rawValue), trxdate \(date))"
        var delay = retryDelay
        for attempt in 1...max(1, attempts) {
            do {
                return try await fetch(client, date: date, service: service, described: described)
            } catch let failure as Failure where failure.retryable && attempt < attempts {
                logger.warning(
                    "Toss pull failed; retrying",
                    metadata: [
                        "error": "\(failure)", "attempt": .stringConvertible(attempt),
                        "retry_in_seconds": .stringConvertible(delay.components.seconds),
                    ])
                try await Task.sleep(for: delay)
                delay *= 2
            }
        }
        throw Failure(description: "\(described): gave up", retryable: false)
    }

    private func fetch(_ client: HTTPClient, date: String, service: Service, described: String) async throws
        -> [UInt8]
    {
        var components = URLComponents(string: url)
        components?.queryItems = [
            URLQueryItem(name: "mertid", value: merchantID), URLQueryItem(name: "servicecode", value: service.rawValue),
            URLQueryItem(name: "trxdate", value: date),
            URLQueryItem(name: "key", value: Self.key(merchantID: merchantID, mertKey: mertKey)),
        ]
        guard let target = components?.url?.absoluteString else {
            throw Failure(description: "\(described): not a URL", retryable: false)
        }
        let request = HTTPClientRequest(url: target)
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        } catch {
            // AsyncHTTPClient's errors do not carry the URL, so the key stays out of this text.
            throw Failure(description: "\(described): \(Self.describe(error))", retryable: true)
        }
        let bytes = Array(body.readableBytesView)
        let code = Int(response.status.code)
        let contentType = response.headers.first(name: "content-type")?.lowercased() ?? ""
        if contentType.contains("text/html") || Self.looksLikeHTML(bytes) {
            throw Failure(
                description:
                    "\(described): Toss answered an HTML page (HTTP \(code)\(Self.title(bytes).map { ", \"\($0)\"" } ?? "")), not transaction rows: check toss.merchant_id, the MertKey and the date",
                retryable: code >= 500)
        }
        guard (200..<300).contains(code) else {
            throw Failure(description: "\(described): HTTP \(code)", retryable: code >= 500 || code == 429)
        }
        return bytes
    }

    static func looksLikeHTML(_ bytes: [UInt8]) -> Bool {
        let start = bytes.drop { $0 == 0x20 || (0x09...0x0D).contains($0) || $0 == 0xEF || $0 == 0xBB || $0 == 0xBF }
        return start.first == UInt8(ascii: "<")
    }

    /// The page's `<title>`, for the error message (decoded loosely: it is only shown).
    static func title(_ bytes: [UInt8]) -> String? {
        let text = KoreanText.decode(bytes.prefix(8192), as: .cp949).text
        guard let open = text.range(of: "<title>", options: .caseInsensitive),
            let close = text.range(of: "</title>", options: .caseInsensitive, range: open.upperBound..<text.endIndex)
        else { return nil }
        let title = text[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
        return title.isEmpty ? nil : String(title.prefix(120))
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }

    /// Days to pull now: today, and yesterday until its files are final (Toss sends the
    /// previous day in full at 00:05 KST).
    public static func daysToPull(now: Date, finalAfterMinutes: Int) -> [String] {
        let today = KoreanTime.day(now)
        let yesterday = KoreanTime.day(now.addingTimeInterval(-86_400))
        let sinceMidnight = KoreanTime.minutesSinceMidnight(now)
        return sinceMidnight < finalAfterMinutes ? [yesterday, today] : [today]
    }
}
