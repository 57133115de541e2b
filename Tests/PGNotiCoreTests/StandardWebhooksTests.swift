import Testing

@testable import PGNotiCore

@Suite struct StandardWebhooksTests {
    /// A made-up secret (not a real endpoint's); the expected value was computed with the
    /// reference implementation, Python `standardwebhooks` 1.1.0:
    /// `Webhook(secret).sign("evt_1", datetime.fromtimestamp(1795000000, timezone.utc), '{"a":"김"}')`.
    @Test func signsLikeTheReferenceImplementation() throws {
        let secret = try WebhookSecret("whsec_cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk\n")
        let signature = StandardWebhooks.signature(
            secret: secret, id: "evt_1", timestamp: 1_795_000_000, body: Array(#"{"a":"김"}"#.utf8))
        #expect(signature == "v1,pxGoip+z82o7gVdQhyqAaZ7bcowO5nmJ0WFJx8IQsSk=")
    }

    @Test func theSameSecretWithoutPrefixSignsTheSame() throws {
        let with = try WebhookSecret("whsec_cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk")
        let without = try WebhookSecret("  cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk  ")
        let body = Array("{}".utf8)
        #expect(
            StandardWebhooks.signature(secret: with, id: "x", timestamp: 1, body: body)
                == StandardWebhooks.signature(secret: without, id: "x", timestamp: 1, body: body))
        #expect(
            StandardWebhooks.signature(secret: with, id: "x", timestamp: 1, body: body)
                != StandardWebhooks.signature(secret: with, id: "x", timestamp: 2, body: body))
    }

    @Test func refusesSecretsThatAreNotKeys() {
        #expect(throws: WebhookSecret.Problem.empty) { try WebhookSecret(" \n") }
        #expect(throws: WebhookSecret.Problem.notBase64) { try WebhookSecret("whsec_not base64!") }
        #expect(throws: WebhookSecret.Problem.tooShort(bytes: 3)) { try WebhookSecret("whsec_YWJj") }
    }

    @Test func neverPrintsTheKey() throws {
        let secret = try WebhookSecret("whsec_cGdub3RpLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODlhYmNk")
        #expect("\(secret)" == "<webhook secret>")
        #expect(String(reflecting: secret) == "<webhook secret>")
        var dump = ""
        Swift.dump(secret, to: &dump)
        #expect(!dump.contains("cGdub3"))
    }

    @Test func hmacMatchesRFC4231TestCase2() {
        let mac = Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        #expect(Digest.hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
