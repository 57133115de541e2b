import Testing

@testable import PGNotiCore

@Suite struct CIDRTests {
    @Test func ipv4BlocksAndSingleAddresses() throws {
        let block = try #require(CIDR("211.193.35.0/24"))
        #expect(block.contains(IPAddress("211.193.35.215")!))
        #expect(!block.contains(IPAddress("211.193.36.1")!))
        let one = try #require(CIDR("211.193.35.20"))
        #expect(one.prefixLength == 32)
        #expect(one.contains(IPAddress("211.193.35.20")!))
        #expect(!one.contains(IPAddress("211.193.35.21")!))
        #expect(try #require(CIDR("0.0.0.0/0")).contains(IPAddress("8.8.8.8")!))
    }

    @Test func ipv6BlocksAndMappedIPv4() throws {
        let block = try #require(CIDR("2001:db8::/32"))
        #expect(block.contains(IPAddress("2001:db8:1::5")!))
        #expect(!block.contains(IPAddress("2001:db9::1")!))
        #expect(!block.contains(IPAddress("10.0.0.1")!))
        // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d; it is the same client.
        let v4 = try #require(CIDR("127.0.0.0/8"))
        #expect(v4.contains(IPAddress("::ffff:127.0.0.1")!))
        #expect(IPAddress("::ffff:127.0.0.1")?.description == "127.0.0.1")
        #expect(IPAddress("[::1]")?.description == "::1")
        #expect(try #require(CIDR("::1")).contains(IPAddress("::1")!))
    }

    @Test(arguments: ["", "10.0.0.1/33", "2001:db8::/129", "10.0.0/8", "example.com", "10.0.0.1/x"])
    func garbageIsNotABlock(text: String) {
        #expect(CIDR(text) == nil)
    }
}

@Suite struct ClientAddressTests {
    let proxies = [CIDR("10.0.0.0/8")!, CIDR("::1")!]

    @Test func untrustedPeerHeadersAreIgnored() {
        let address = ClientAddress.resolve(
            peer: "203.0.113.9", forwardedFor: ["211.193.35.20"], realIP: "211.193.35.20", trustedProxies: proxies)
        #expect(address == ClientAddress(peer: "203.0.113.9", client: "203.0.113.9"))
    }

    @Test func trustedProxyGivesTheRightmostUntrustedHop() {
        // The client wrote the first entry itself: it can be anything.
        let address = ClientAddress.resolve(
            peer: "10.0.0.5", forwardedFor: ["211.193.35.20, 198.51.100.7", "10.1.1.1"], realIP: nil,
            trustedProxies: proxies)
        #expect(address == ClientAddress(peer: "10.0.0.5", client: "198.51.100.7"))
    }

    @Test func realIPWhenThereIsNoForwardedFor() {
        let address = ClientAddress.resolve(
            peer: "10.0.0.5", forwardedFor: [], realIP: "211.193.35.20", trustedProxies: proxies)
        #expect(address.client == "211.193.35.20")
    }

    @Test func garbageInTheChainStopsAtTheLastReadableProxy() {
        let address = ClientAddress.resolve(
            peer: "10.0.0.5", forwardedFor: ["211.193.35.20, not-an-ip, 10.2.2.2"], realIP: nil,
            trustedProxies: proxies)
        #expect(address.client == "10.2.2.2")
    }
}

@Suite struct SecretValuesTests {
    @Test func anyValueMatchesAndNothingLeaks() {
        let secrets = SecretValues(["old-path-secret-value-1", "new-path-secret-value-2"])
        #expect(secrets.matches("old-path-secret-value-1"))
        #expect(secrets.matches("new-path-secret-value-2"))
        #expect(!secrets.matches("old-path-secret-value-"))
        #expect(!secrets.matches(""))
        #expect(secrets.matches(sha256: Digest.sha256(Array("new-path-secret-value-2".utf8))))
        #expect(!secrets.matches(sha256: Digest.sha256(Array("guess".utf8))))
        for text in ["\(secrets)", String(reflecting: secrets), "\([secrets])"] {
            #expect(!text.contains("path-secret"), "\(text)")
        }
        #expect(SecretValues([""]).isEmpty)
    }
}
