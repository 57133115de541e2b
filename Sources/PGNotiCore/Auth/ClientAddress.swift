/// Who sent a request: the TCP peer, and the client behind it when the peer is a proxy the
/// operator trusts. Both are kept, so a forger behind the TLS proxy can still be traced.
public struct ClientAddress: Sendable, Equatable {
    /// The address the TCP connection came from.
    public let peer: String?
    /// The address allowlists and rate limits apply to: the peer itself, or, when the peer is a
    /// trusted proxy, the client it reported.
    public let client: String?

    public init(peer: String?, client: String?) {
        self.peer = peer
        self.client = client
    }

    /// - Parameters:
    ///   - forwardedFor: every `X-Forwarded-For` value, in header order.
    ///   - realIP: `X-Real-IP`, used when there is no usable `X-Forwarded-For`.
    ///
    /// `X-Forwarded-For` grows to the right: each proxy appends the address it received the
    /// request from. Walking from the right, the first address that is not itself a trusted
    /// proxy is the client; anything further left was written by that client and can be forged.
    /// From a peer that is not a trusted proxy both headers are ignored.
    public static func resolve(
        peer: String?, forwardedFor: [String], realIP: String?, trustedProxies: [CIDR]
    ) -> ClientAddress {
        guard let peer, let peerAddress = IPAddress(peer), trustedProxies.contains(peerAddress) else {
            return ClientAddress(peer: peer, client: peer)
        }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { String($0).trimmingSpaces }
        if hops.isEmpty {
            if let realIP, let address = IPAddress(realIP.trimmingSpaces) {
                return ClientAddress(peer: peer, client: address.description)
            }
            return ClientAddress(peer: peer, client: peer)
        }
        var nearest = peerAddress
        for hop in hops.reversed() {
            // Garbage in the chain: nothing left of it can be trusted, so the last proxy that
            // wrote a readable address is as far as we can see.
            guard let address = IPAddress(hop) else { break }
            if !trustedProxies.contains(address) { return ClientAddress(peer: peer, client: address.description) }
            nearest = address
        }
        return ClientAddress(peer: peer, client: nearest.description)
    }
}
