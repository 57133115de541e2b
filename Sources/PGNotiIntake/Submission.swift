import Foundation
import PGNotiCore

/// One request, from whichever door it came in: a PG's HTTP post, a quarantine release, a line
/// of a Toss file. Everything the intake needs to decide, and nothing about HTTP.
public struct Submission: Sendable {
    /// Where a submission came from, for the log line.
    public enum Origin: Sendable, Equatable {
        case http
        /// A quarantined request released by an operator.
        case release(quarantineID: Int64)
        /// A row of a Toss transaction file (1-based line number).
        case file(name: String, line: Int)
        /// The result of a Payup call pgnoti made.
        case payup(intentID: String)
    }

    /// The path secret a request presented, as far as the intake may know it.
    public enum PathSecret: Sendable, Equatable {
        /// The URL carried no secret segment.
        case none
        /// The segment as received (live requests).
        case presented([UInt8])
        /// Only its SHA-256, as the quarantine keeps it (released requests).
        case digest([UInt8])

        /// What the quarantine stores: never the secret itself.
        var sha256: [UInt8]? {
            switch self {
            case .none: nil
            case .presented(let bytes): Digest.sha256(bytes)
            case .digest(let digest): digest
            }
        }
    }

    public var provider: ProviderID
    public var body: [UInt8]
    public var contentType: String?
    public var pathSecret: PathSecret
    /// `X-Forwarded-For` as received, kept for the quarantine.
    public var forwardedFor: String?
    public var address: ClientAddress
    /// When pgnoti first received it; a release keeps the original time.
    public var receivedAt: Date
    public var requestID: String
    public var origin: Origin

    public init(
        provider: ProviderID, body: [UInt8], contentType: String?, pathSecret: PathSecret = .none,
        forwardedFor: String? = nil, address: ClientAddress, receivedAt: Date, requestID: String,
        origin: Origin = .http
    ) {
        self.provider = provider
        self.body = body
        self.contentType = contentType
        self.pathSecret = pathSecret
        self.forwardedFor = forwardedFor
        self.address = address
        self.receivedAt = receivedAt
        self.requestID = requestID
        self.origin = origin
    }
}
