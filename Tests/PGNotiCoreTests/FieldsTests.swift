import Testing

@testable import PGNotiCore

private let fnCd = FieldKey("FnCd", "fn_cd")
private let fnName = FieldKey("FnName", "fn_name")
private let nameKey = FieldKey("Name", "name")
private let mallUserID = FieldKey("MallUserID", "mallUserID")

private func fields(_ s: String, _ charset: TextCharset = .cp949) -> Fields {
    Fields(FormBody(parsing: Array(s.utf8)), charset: charset)
}

@Test func caseAndSeparatorVariantsMatchTheSameKey() {
    for name in ["StateCd", "statecd", "state_cd", "STATE_CD", "State-Cd"] {
        #expect(fields("\(name)=1")[.stateCd] == "1", "\(name)")
    }
    #expect(fields("fn_cd=04&FN_NAME=x&NAME=y&mall_user_id=u")[fnCd] == "04")
    #expect(fields("fn_cd=04&FN_NAME=x&NAME=y&mall_user_id=u")[fnName] == "x")
    #expect(fields("fn_cd=04&FN_NAME=x&NAME=y&mall_user_id=u")[nameKey] == "y")
    #expect(fields("fn_cd=04&FN_NAME=x&NAME=y&mall_user_id=u")[mallUserID] == "u")
}

@Test func arrayBracketsAreIgnoredAndValuesKeptInOrder() {
    let f = fields("goodsCodeArray[]=A&x=1&goodsCodeArray[]=B")
    #expect(f.values("goodsCodeArray") == ["A", "B"])
    #expect(f["goodsCodeArray[]"] == "A")
}

@Test func spellingVariantsMergeIntoOneFieldInArrivalOrder() {
    let f = fields("Amt=1&TID=t&amt=2&AMT=3")
    #expect(f.all.map(\.name) == ["Amt", "TID"])
    #expect(f.all[0].values == ["1", "2", "3"])
    #expect(f.values("amt") == ["1", "2", "3"])
}

@Test func orderIDAliases() {
    #expect(fields("OID=o1")[.orderID] == "o1")
    #expect(fields("MOID=o2")[.orderID] == "o2")
    #expect(fields("Moid=o3")[.orderID] == "o3")
    #expect(fields("moid=o4")[.orderID] == "o4")
    // Both present: the key's first spelling wins, aliases are not merged.
    #expect(fields("MOID=m&OID=o")[.orderID] == "o")
    #expect(fields("MOID=m&OID=o").values(.orderID) == ["o"])
}

@Test func stringLiteralKeyIsASingleSpelling() {
    let key: FieldKey = "ResultCode"
    #expect(key.spellings == ["ResultCode"])
    #expect(FieldKey.orderID.spellings.first == "OID")
    #expect(fields("result_code=3001")[key] == "3001")
}

@Test func subscriptTrimsAndTreatsBlankAsAbsent() {
    let f = fields("Name=+%20hong+&Blank=+++&Empty=&Amt=1&Amt=+2+")
    #expect(f[nameKey] == "hong")
    #expect(f["Blank"] == nil)
    #expect(f["Empty"] == nil)
    #expect(f.contains("Blank"))
    #expect(f.contains("Empty"))
    #expect(!f.contains("Missing"))
    #expect(f["Missing"] == nil)
    #expect(f.values("Missing") == [])
    #expect(f.values("Amt") == ["1", "2"])
    // `all` keeps the untrimmed decoded text.
    #expect(f.all.first { $0.name == "Name" }?.values == ["  hong "])
}

@Test func decodesValuesWithTheGivenCharset() {
    let body = FormBody(
        parsing: Array("Name=".utf8) + [0xC8, 0xAB, 0xB1, 0xE6, 0xB5, 0xBF] + Array("&GoodsName=%8Cc".utf8))
    let f = Fields(body, charset: .cp949)
    #expect(f[nameKey] == "홍길동")
    #expect(f["GoodsName"] == "똠")

    let utf = fields("Name=%ED%99%8D%EA%B8%B8%EB%8F%99", .utf8)
    #expect(utf[nameKey] == "홍길동")
    #expect(utf.lossyFieldNames == [])
}

@Test func autoCharsetPicksUTF8OnlyWhenTheBytesAreValidUTF8() {
    let utf8 = FormBody(parsing: Array("Name=%ED%99%8D%EA%B8%B8%EB%8F%99".utf8))
    #expect(CharsetSetting.auto.resolve(for: utf8) == .utf8)
    #expect(Fields(utf8, charset: CharsetSetting.auto.resolve(for: utf8))["Name"] == "홍길동")
    let cp949 = FormBody(parsing: Array("Name=%C8%AB%B1%E6%B5%BF".utf8))
    #expect(CharsetSetting.auto.resolve(for: cp949) == .cp949)
    #expect(Fields(cp949, charset: CharsetSetting.auto.resolve(for: cp949))["Name"] == "홍길동")
    #expect(CharsetSetting.cp949.resolve(for: utf8) == .cp949)
}

@Test func decodingHonoursTheDeclaredCharsetAndRefusesOthers() throws {
    let body = Array("Name=%ED%99%8D".utf8)
    #expect(
        try Fields.decoding(body, contentType: "application/x-www-form-urlencoded; charset=UTF-8", charset: .cp949)[
            "Name"] == "홍")
    #expect(try Fields.decoding(body, contentType: nil, charset: .cp949).charset == .cp949)
    #expect(
        throws: Rejection(
            .unsupportedMediaType, "Content-Type application/json is not application/x-www-form-urlencoded")
    ) {
        try Fields.decoding(body, contentType: "application/json", charset: .cp949)
    }
    do {
        _ = try Fields.decoding(body, contentType: "application/x-www-form-urlencoded; charset=latin1", charset: .cp949)
        Issue.record("latin1 accepted")
    } catch {
        #expect(error.reason == .unsupportedCharset)
    }
}

@Test func lossyFieldsAreReported() {
    // GoodsName cut mid-syllable by the PG's byte limit.
    let body = FormBody(parsing: Array("GoodsName=%C8%AB%B1&Name=%C8%AB&TID=x".utf8))
    let f = Fields(body, charset: .cp949)
    #expect(f.lossyFieldNames == ["GoodsName"])
    #expect(f["GoodsName"] == "홍\u{FFFD}")
    #expect(f.all.map(\.isLossy) == [true, false, false])
}

@Test func fieldNamesAreDecodedWithTheBodyCharset() {
    // 한 = C7 D1 in CP949; no PG does this today, but a name must not turn into mojibake if one does.
    let f = fields("%C7%D1=1&Amt=2")
    #expect(f.all.map(\.name) == ["한", "Amt"])
    #expect(f["한"] == "1")
}
