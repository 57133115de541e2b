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

@Test func namesAndAddressesAreMaskedWhateverTheProvidersSpelling() {
    #expect(Masking.name("김똠순") == "김**")
    #expect(Masking.address("서울특별시 강남구 테헤란로 1") == "서울특별시 ****")
    let fields = [
        DecodedField(name: "Name", values: ["김똠순"], isLossy: false),
        DecodedField(name: "recipientName", values: ["이수령"], isLossy: false),
        DecodedField(name: "address", values: ["부산광역시 해운대구 1"], isLossy: false),
        DecodedField(name: "addressDetail", values: ["101동 202호"], isLossy: false),
    ]
    let shown = Masking.fields(fields).map(\.value).joined(separator: " ")
    for clear in ["똠순", "수령", "해운대", "202호"] { #expect(!shown.contains(clear), "\(clear) in \(shown)") }
}

@Test func anEventForTheScreenHasEveryPersonalMemberMasked() {
    let event: [String: Any] = [
        "buyer": ["name": "김똠순", "phone": "01012345678", "email": "kim@example.com"],
        "delivery": [
            "recipient_name": "이수령", "recipient_phone": "01098765432", "address": "서울특별시 강남구 1",
            "address_detail": "3층",
        ],
        "raw": ["buyerName": "김똠순", "address": "서울특별시 강남구 1"], "amount": 1000,
    ]
    let masked = Masking.event(event)
    let text = "\(masked)"
    for clear in ["똠순", "수령", "강남구", "3층", "12345678", "kim@"] { #expect(!text.contains(clear), "\(clear)") }
    #expect(masked["amount"] as? Int == 1000)
}
