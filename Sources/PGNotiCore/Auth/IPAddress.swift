import Glibc

/// An IPv4 or IPv6 address as bytes. IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a
/// dual-stack socket reports for an IPv4 peer) are folded into IPv4, so one allowlist entry
/// covers both spellings.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    /// 4 bytes for IPv4, 16 for IPv6.
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var trimmed = Substring(text)
        if trimmed.hasPrefix("["), trimmed.hasSuffix("]") { trimmed = trimmed.dropFirst().dropLast() }
        // A zone (`fe80::1%eth0`) names an interface, not part of the address.
        if let percent = trimmed.firstIndex(of: "%") { trimmed = trimmed[..<percent] }
        let string = String(trimmed)
        var v4 = in_addr()
        if inet_pton(AF_INET, string, &v4) == 1 {
            bytes = withUnsafeBytes(of: v4.s_addr) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, string, &v6) == 1 else { return nil }
        let raw = withUnsafeBytes(of: v6) { Array($0) }
        if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xFF && raw[11] == 0xFF {
            bytes = Array(raw[12..<16])
        } else {
            bytes = raw
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var v6 = in6_addr()
        withUnsafeMutableBytes(of: &v6) { $0.copyBytes(from: bytes) }
        guard inet_ntop(AF_INET6, &v6, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An address block such as `211.193.35.0/24` or `2001:db8::/32`; a bare address is a block of one.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0]).trimmingSpaces) else { return nil }
        let bits = address.bytes.count * 8
        var length = bits
        if parts.count == 2 {
            guard let parsed = Int(String(parts[1]).trimmingSpaces), (0...bits).contains(parsed) else { return nil }
            // `::ffff:0:0/96`-style blocks written for mapped addresses keep their meaning.
            length = parts[0].contains(":") && address.isIPv4 ? max(0, parsed - 96) : parsed
        }
        network = IPAddress(masked: address.bytes, prefixLength: length)
        prefixLength = length
    }

    public func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        return IPAddress(masked: address.bytes, prefixLength: prefixLength) == network
    }

    public var description: String { "\(network)/\(prefixLength)" }
}

extension IPAddress {
    fileprivate init(masked bytes: [UInt8], prefixLength: Int) {
        var out = bytes
        for i in out.indices {
            let keep = min(8, max(0, prefixLength - i * 8))
            out[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        self.bytes = out
    }
}

extension Sequence<CIDR> {
    public func contains(_ address: IPAddress) -> Bool {
        contains { $0.contains(address) }
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
