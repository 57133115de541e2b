import Testing

@testable import PGNotiCore

/// Smartro's published test key for MID SMTPAY001m (WEBLink manual v5.2 §4.4).
private let testKey = "0/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow=="
private let tid = "SMTPAY001m01012501011230001234"

// Independent vectors computed with python3 hashlib/base64:
//   text = tid[:10] + rc + tid[10:15] + key + tid[15:]
//   md5:    base64(hashlib.md5(text).hexdigest())
//   sha256: base64(hashlib.sha256(text).digest())
private let md5Sign = "NWE4ZDJiMTJhNjBjYWRkY2QwZDU2ZTU1NjIyMWVlMDQ="
private let md5SignUpperHex = "NUE4RDJCMTJBNjBDQUREQ0QwRDU2RTU1NjIyMUVFMDQ="
private let sha256Sign = "f1RuYk/u/ebrIUnkkWryGPVVVuYkWTHQkdFiLTGX8RY="

@Test func signedTextSplicesKeyIntoTID() {
    #expect(
        SmartroSignature.signedText(tid: tid, resultCode: "3001", merchantKey: testKey)
            == "SMTPAY001m3001010120/4GFsSd7ERVRGX9WHOzJ96GyeMTwvIaKSWUCKmN3fDklNRGw3CualCFoMPZaS99YiFGOuwtzTkrLo4bR4V+Ow==501011230001234"
    )
}

@Test func signedTextWithShortTID() {
    #expect(
        SmartroSignature.signedText(tid: "ABCDEFGHIJKL", resultCode: "0000", merchantKey: "K") == "ABCDEFGHIJ0000KLK")
    #expect(SmartroSignature.signedText(tid: "ABC", resultCode: "3001", merchantKey: "K") == "ABC3001K")
    #expect(SmartroSignature.signedText(tid: "", resultCode: "3001", merchantKey: "K") == "3001K")
}

@Test func makeMatchesIndependentVectors() {
    #expect(SmartroSignature.make(tid: tid, resultCode: "3001", merchantKey: testKey, algorithm: .md5) == md5Sign)
    #expect(SmartroSignature.make(tid: tid, resultCode: "3001", merchantKey: testKey, algorithm: .sha256) == sha256Sign)
    #expect(SmartroSignature.make(tid: tid, resultCode: "3001", merchantKey: testKey, algorithm: .either) == sha256Sign)
}

private func verify(
    _ sign: String, tid: String = tid, resultCode: String = "3001", key: String = testKey,
    _ allowed: SmartroSignAlgorithm
) -> SmartroSignAlgorithm? {
    SmartroSignature.verify(signValue: sign, tid: tid, resultCode: resultCode, merchantKey: key, allowed: allowed)
}

@Test func verifiesBothAlgorithms() {
    #expect(verify(md5Sign, .md5) == .md5)
    #expect(verify(sha256Sign, .sha256) == .sha256)
    #expect(verify(md5Sign, .either) == .md5)
    #expect(verify(sha256Sign, .either) == .sha256)
}

@Test func allowedRestrictsAlgorithms() {
    #expect(verify(md5Sign, .sha256) == nil)
    #expect(verify(sha256Sign, .md5) == nil)
}

@Test func md5AcceptsUpperCaseHex() {
    #expect(verify(md5SignUpperHex, .md5) == .md5)
    #expect(verify(md5SignUpperHex, .either) == .md5)
}

@Test func rejectsWrongKeyTamperedFieldsAndGarbage() {
    let otherKey = "nja3kmcUhyD8hQIS51wxFYCYXEWP530/qWB1/LjLPGNch9KeOPtnWYgLghLBUFOUShq4g3uYTMwL9f8164XLOw=="
    #expect(verify(sha256Sign, key: otherKey, .either) == nil)
    #expect(verify(md5Sign, key: otherKey, .either) == nil)
    #expect(verify(sha256Sign, resultCode: "0000", .either) == nil)
    #expect(verify(md5Sign, resultCode: "0000", .either) == nil)
    #expect(verify(sha256Sign, tid: "SMTPAY001m01012501011230001235", .either) == nil)
    #expect(verify("", .either) == nil)
    #expect(verify("   ", .either) == nil)
    #expect(verify("====", .either) == nil)
    #expect(verify("not base64 at all!", .either) == nil)
}

@Test func plusArrivingAsSpaceStillVerifies() {
    // python3 vector; this TID was chosen because its SignValue contains '+'.
    let plusTID = "SMTPAY001m01012501010000000002"
    let sign = "wyEP1d9FRtopbDEIO8J9tle3cu8g8T85Bq+/BW6o97M="
    #expect(SmartroSignature.make(tid: plusTID, resultCode: "3001", merchantKey: testKey, algorithm: .sha256) == sign)
    #expect(verify(sign, tid: plusTID, .sha256) == .sha256)
    // What an unescaped Base64 looks like after form decoding.
    let received = FormBody(parsing: Array("SignValue=\(sign)".utf8)).pairs[0].value
    let spaced = String(decoding: received, as: UTF8.self)
    #expect(spaced.contains(" "))
    #expect(verify(spaced, tid: plusTID, .either) == .sha256)
}

@Test func leadingPlusArrivingAsSpaceStillVerifies() {
    // python3 vector whose SignValue starts with '+': trimming spaces alone would break it.
    let plusTID = "SMTPAY001m01012501010000000129"
    let sign = "+5K+1LINeieEOUTqa4TB+kZlzpoP4s6f9YNzvTFr7Mw="
    let spaced = String(sign.map { $0 == "+" ? " " : $0 })
    #expect(verify(spaced, tid: plusTID, .sha256) == .sha256)
    #expect(verify(spaced + "\r\n", tid: plusTID, .sha256) == .sha256)
}

@Test func toleratesMissingPaddingAndSurroundingWhitespace() {
    #expect(verify(String(sha256Sign.dropLast()), .sha256) == .sha256)
    #expect(verify(String(md5Sign.dropLast()), .md5) == .md5)
    #expect(verify("  \(sha256Sign)\r\n", .either) == .sha256)
    #expect(verify("\t\(md5Sign) ", .either) == .md5)
}
