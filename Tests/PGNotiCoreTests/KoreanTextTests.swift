import Testing

@testable import PGNotiCore

// Expected bytes produced with python3: '똠'.encode('cp949') etc.
private let ttom: [UInt8] = [0x8C, 0x63]  // 똠 (UHC-only)
private let haeng: [UInt8] = [0xC1, 0x64]  // 햏 (UHC-only)
private let bwelk: [UInt8] = [0x94, 0xEE]  // 뷁 (UHC-only)
private let gyeoljewallyo: [UInt8] = [0xB0, 0xE1, 0xC1, 0xA6, 0xBF, 0xCF, 0xB7, 0xE1]  // 결제완료
private let hongGildong: [UInt8] = [0xC8, 0xAB, 0xB1, 0xE6, 0xB5, 0xBF]  // 홍길동

@Test func decodesEucKrKoreanAsCP949() {
    #expect(KoreanText.decode(gyeoljewallyo, as: .cp949) == DecodedText(text: "결제완료", isLossy: false))
    let mixed = Array("No.1 ".utf8) + hongGildong + Array(" (VIP)".utf8)
    #expect(KoreanText.decode(mixed, as: .cp949) == DecodedText(text: "No.1 홍길동 (VIP)", isLossy: false))
}

@Test func decodesUHCOnlySyllablesRaw() {
    #expect(KoreanText.decode(ttom, as: .cp949).text == "똠")
    #expect(KoreanText.decode(haeng, as: .cp949).text == "햏")
    #expect(KoreanText.decode(ttom + haeng + bwelk, as: .cp949) == DecodedText(text: "똠햏뷁", isLossy: false))
}

@Test func decodesUHCOnlySyllablesPercentEncoded() {
    // 똠 = %8Cc, 햏 = %C1d: the trail byte is plain ASCII, so it is usually not escaped.
    let body = FormBody(parsing: Array("GoodsName=%8Cc%C1d%8C%63".utf8))
    #expect(KoreanText.decode(body.pairs[0].value, as: .cp949).text == "똠햏똠")
}

@Test func truncatedFinalSyllableKeepsPrefixAndIsLossy() {
    let cut = Array(hongGildong.dropLast())
    #expect(KoreanText.decode(cut, as: .cp949) == DecodedText(text: "홍길\u{FFFD}", isLossy: true))
}

@Test func invalidByteIsReplacedOnceAndDecodingContinues() {
    #expect(
        KoreanText.decode([0x41, 0x80, 0x42] + ttom, as: .cp949) == DecodedText(text: "A\u{FFFD}B똠", isLossy: true))
    #expect(KoreanText.decode([0xFF, 0xFF], as: .cp949) == DecodedText(text: "\u{FFFD}\u{FFFD}", isLossy: true))
    // A lead byte whose trail is not a valid trail byte must not swallow the ASCII after it.
    #expect(
        KoreanText.decode([0xC7, 0x20, 0x41] + hongGildong, as: .cp949)
            == DecodedText(text: "\u{FFFD} A홍길동", isLossy: true))
}

@Test func asciiIsNeverLossy() {
    #expect(KoreanText.decode(Array("OK 3001".utf8), as: .cp949) == DecodedText(text: "OK 3001", isLossy: false))
    #expect(KoreanText.decode([UInt8](), as: .cp949) == DecodedText(text: "", isLossy: false))
}

@Test func decodesDeclaredUTF8() {
    #expect(KoreanText.decode(Array("결제완료 똠".utf8), as: .utf8) == DecodedText(text: "결제완료 똠", isLossy: false))
    // A genuine U+FFFD in the input is not a replacement we made.
    #expect(KoreanText.decode(Array("a\u{FFFD}".utf8), as: .utf8).isLossy == false)
    #expect(KoreanText.decode([0x61, 0xC3], as: .utf8) == DecodedText(text: "a\u{FFFD}", isLossy: true))
    // EUC-KR bytes under a wrong utf-8 label must be flagged, not silently stored.
    #expect(KoreanText.decode(gyeoljewallyo, as: .utf8).isLossy)
}

@Test func charsetLabelsMapToCharsets() {
    for label in [
        "euc-kr", "EUC-KR", "euckr", "euc_kr", "ks_c_5601-1987", "KS_C_5601-1987", "ksc5601",
        "cp949", "CP949", "ms949", "x-windows-949", "windows-949", "uhc", "\"euc-kr\"", " 'EUC-KR' ",
    ] {
        #expect(TextCharset(label: label) == .cp949, "\(label)")
    }
    for label in ["utf-8", "UTF-8", "utf8", "\"utf-8\"", " Utf-8 "] {
        #expect(TextCharset(label: label) == .utf8, "\(label)")
    }
    for label in ["", "latin1", "iso-8859-1", "euc-jp", "utf-16", "euc kr"] {
        #expect(TextCharset(label: label) == nil, "\(label)")
    }
}

@Test func charsetParameterIsFoundInContentType() {
    #expect(ContentType("application/x-www-form-urlencoded").charsetLabel == nil)
    #expect(ContentType("application/x-www-form-urlencoded").isForm)
    #expect(ContentType("").isForm)
    #expect(ContentType("Application/X-WWW-Form-Urlencoded ; charset=euc-kr").isForm)
    #expect(!ContentType("application/json").isForm)
    #expect(ContentType("application/x-www-form-urlencoded; charset=euc-kr").charsetLabel == "euc-kr")
    #expect(ContentType("application/x-www-form-urlencoded;Charset=\"EUC-KR\"").charsetLabel == "EUC-KR")
    #expect(ContentType("text/plain; format=flowed; CHARSET = utf-8 ").charsetLabel == "utf-8")
    #expect(ContentType("text/plain; charset=").charsetLabel == nil)
    // A media type is never mistaken for a parameter.
    #expect(ContentType("charset=utf-8").charsetLabel == nil)
}

@Test func otherParametersAreFoundInContentType() {
    let type = ContentType("application/vnd.pgnoti.toss-row; Kind=AUTH ;delimiter=\"comma\"; charset=euc-kr")
    #expect(type.mediaType == "application/vnd.pgnoti.toss-row")
    #expect(type.parameter("kind") == "AUTH")
    #expect(type.parameter("KIND") == "AUTH")
    #expect(type.parameter("delimiter") == "comma")
    #expect(type.parameter("charset") == type.charsetLabel)
    #expect(ContentType("kind=AUTH").parameter("kind") == nil, "the media type is no parameter")
    #expect(ContentType("text/plain; kind=").parameter("kind") == nil)
    #expect(ContentType("text/plain").parameter("kind") == nil)
}

@Test func concurrentDecodingIsSafe() async {
    let input = Array("Name=".utf8) + hongGildong + ttom + haeng + [0xB0]
    let results = await withTaskGroup(of: DecodedText.self) { group in
        for _ in 0..<400 {
            group.addTask { KoreanText.decode(input, as: .cp949) }
        }
        return await group.reduce(into: [DecodedText]()) { $0.append($1) }
    }
    #expect(results.count == 400)
    #expect(results.allSatisfy { $0 == DecodedText(text: "Name=홍길동똠햏\u{FFFD}", isLossy: true) })
}
