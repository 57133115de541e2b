/// One or more values of a secret (a path secret, a merchant key). Two at once is how a secret
/// is rotated: the PG console is switched to the new value while the old one still works.
///
/// The values never appear in `description`, `debugDescription` or a reflection dump, so a
/// secret cannot reach a log line or an error message by being interpolated.
public struct SecretValues: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    private let values: [[UInt8]]

    public init(_ values: [String]) {
        self.values = values.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    public var isEmpty: Bool { values.isEmpty }
    public var count: Int { values.count }

    /// Compares `presented` with every value in constant time per value, so neither which value
    /// matched nor how many leading bytes agreed shows in the timing. Lengths are compared by
    /// digest, which hides them too.
    public func matches(_ presented: [UInt8]) -> Bool {
        let digest = Digest.sha256(presented)
        var matched = false
        for value in values where constantTimeEquals(Digest.sha256(value), digest) {
            matched = true
        }
        return matched
    }

    public func matches(_ presented: String) -> Bool { matches(Array(presented.utf8)) }

    /// True when `digest` is the SHA-256 of one of the values: how a quarantined request's path
    /// secret is re-checked on release without the secret it presented ever being stored.
    public func matches(sha256 digest: [UInt8]) -> Bool {
        var matched = false
        for value in values where constantTimeEquals(Digest.sha256(value), digest) {
            matched = true
        }
        return matched
    }

    /// The values themselves, for the one caller that must use them (a signature check).
    public func withValues<R>(_ body: ([String]) throws -> R) rethrows -> R {
        try body(values.map { String(decoding: $0, as: UTF8.self) })
    }

    public var description: String { "<\(values.count) secret value(s)>" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
