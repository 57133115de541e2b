import Testing

@testable import PGNotiCore

@Test func cardNumberKeepsFirstSixAndLastFour() {
    #expect(Masking.cardNumber("1234567890123456") == "123456******3456")
    #expect(Masking.cardNumber("1234-5678-9012-3456") == "1234-56**-****-3456")
    #expect(Masking.cardNumber("53275012****1234") == "532750******1234")
    #expect(Masking.cardNumber("1234567890123") == "123456***0123")
}

@Test func shortCardNumberIsMaskedExceptLastTwo() {
    #expect(Masking.cardNumber("123456789012") == "**********12")
    #expect(Masking.cardNumber("1234") == "**34")
    // Too short to reveal two characters without revealing most of it.
    #expect(Masking.cardNumber("12") == "*2")
    #expect(Masking.cardNumber("") == "")
}

@Test func phoneKeepsFirstThreeAndLastFourDigits() {
    #expect(Masking.phone("010-1234-5678") == "010-****-5678")
    #expect(Masking.phone("01012345678") == "010****5678")
    #expect(Masking.phone("02-123-4567") == "02-1**-4567")
    #expect(Masking.phone("1234567") == "*****67")
}

@Test func emailKeepsFirstCharacterAndDomain() {
    #expect(Masking.email("hong@example.com") == "h***@example.com")
    #expect(Masking.email("h@example.com") == "h***@example.com")
    #expect(Masking.email("@example.com") == "***@example.com")
    #expect(Masking.email("not-an-email") == "****")
}

@Test func secretLeaksNothing() {
    #expect(Masking.secret("8001011234567") == "****")
    #expect(Masking.secret("800101") == "****")
    #expect(Masking.secret("") == "****")
}
