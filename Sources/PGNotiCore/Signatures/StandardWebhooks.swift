import Foundation

/// The signing secret of a Standard Webhooks endpoint (www.standardwebhooks.com): `whsec_`
/// followed by the Base64 of the key bytes, as the receivers' libraries expect it. Never
/// printed: `description` shows only that a secret is there.
public struct WebhookSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public static let prefix = "whsec_"
    let key: [UInt8]

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case empty, notBase64
        case tooShort(bytes: Int)
        public var description: String {
            switch self {
            case .empty: "the webhook secret is empty"
            case .notBase64: "the webhook secret is not whsec_ followed by Base64"
            case .tooShort(let bytes):
                "the webhook secret holds \(bytes) bytes; use at least 24 (e.g. `openssl rand -base64 32`)"
            }
        }
    }

    /// Reads a secret as a file holds it: surrounding whitespace and the newline are ignored,
    /// the `whsec_` prefix is optional (as in the receivers' libraries).
    public init(_ text: String) throws(Problem) {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw .empty }
        let encoded = trimmed.hasPrefix(Self.prefix) ? String(trimmed.dropFirst(Self.prefix.count)) : trimmed
        guard let key = Data(base64Encoded: encoded) else { throw .notBase64 }
        guard key.count >= 24 else { throw .tooShort(bytes: key.count) }
        self.key = Array(key)
    }

    public var description: String { "<webhook secret>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}

/// Standard Webhooks request signing: what a receiver's `Webhook(secret).verify(body, headers)`
/// checks.
public enum StandardWebhooks {
    /// `webhook-signature`: `v1,` + Base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).
    public static func signature(secret: WebhookSecret, id: String, timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(id).\(timestamp).".utf8)
        message.append(contentsOf: body)
        return "v1," + Data(Digest.hmacSHA256(key: secret.key, message: message)).base64EncodedString()
    }
}
