import Testing

@testable import PGNotiCore

private func parse(_ s: String) -> [(String, [UInt8])] {
    FormBody(parsing: Array(s.utf8)).pairs.map { (String(decoding: $0.name, as: UTF8.self), $0.value) }
}

private func strings(_ s: String) -> [String] {
    FormBody(parsing: Array(s.utf8)).pairs.map {
        String(decoding: $0.name, as: UTF8.self) + "=" + String(decoding: $0.value, as: UTF8.self)
    }
}

@Test func splitsOnAmpersandAndSkipsEmptySegments() {
    #expect(strings("a=1&&b=2&") == ["a=1", "b=2"])
    #expect(strings("&") == [])
    #expect(FormBody(parsing: [UInt8]()).pairs == [])
}

@Test func splitsNameAndValueAtFirstEquals() {
    #expect(strings("k=a=b") == ["k=a=b"])
    let pairs = FormBody(parsing: Array("flag&x=".utf8)).pairs
    #expect(pairs == [FormPair(name: Array("flag".utf8), value: []), FormPair(name: Array("x".utf8), value: [])])
}

@Test func plusBecomesSpaceButEscapedPlusStaysPlus() {
    #expect(parse("n=a+b%2Bc")[0].1 == Array("a b+c".utf8))
}

@Test func percentEscapesDecodeInEitherCase() {
    #expect(parse("n=%41%4a%4A%e2%82%ac")[0].1 == [0x41, 0x4A, 0x4A, 0xE2, 0x82, 0xAC])
    #expect(parse("%53tate%43d=1")[0].0 == "StateCd")
}

@Test func malformedPercentIsKeptLiterally() {
    #expect(parse("a=100%")[0].1 == Array("100%".utf8))
    #expect(parse("a=%4")[0].1 == Array("%4".utf8))
    #expect(parse("a=%zz1")[0].1 == Array("%zz1".utf8))
    #expect(parse("a=%G1")[0].1 == Array("%G1".utf8))
    // The first `%` is literal, the second starts a valid escape.
    #expect(parse("a=%%41")[0].1 == Array("%A".utf8))
}

@Test func rawHighBytesAreKept() {
    // 한글 in EUC-KR, sent unescaped as some PGs do.
    let body: [UInt8] = Array("Name=".utf8) + [0xC7, 0xD1, 0xB1, 0xDB] + Array("&x=1".utf8)
    let pairs = FormBody(parsing: body).pairs
    #expect(pairs.count == 2)
    #expect(pairs[0].value == [0xC7, 0xD1, 0xB1, 0xDB])
}

@Test func repeatedNamesAreKeptInArrivalOrder() {
    #expect(
        strings("goodsCodeArray[]=A&x=1&goodsCodeArray[]=B")
            == ["goodsCodeArray[]=A", "x=1", "goodsCodeArray[]=B"])
    #expect(parse("goodsCodeArray%5B%5D=A")[0].0 == "goodsCodeArray[]")
}

@Test func trailingLineBreakIsNotPartOfTheLastValue() {
    #expect(strings("a=1&b=2\r\n") == ["a=1", "b=2"])
    #expect(strings("a=1\n") == ["a=1"])
    // An escaped newline is data, not transport noise.
    #expect(parse("a=1%0D%0A")[0].1 == [0x31, 0x0D, 0x0A])
}

@Test func parsesAnySequence() {
    let body = FormBody(parsing: "a=1".utf8)
    #expect(body == FormBody(pairs: [FormPair(name: [0x61], value: [0x31])]))
}
