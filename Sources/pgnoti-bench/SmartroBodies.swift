import Foundation
import PGNotiConfig
import PGNotiCore

#if canImport(Glibc)
    import Glibc
#endif

/// Signed Smartro approval bodies for the published test merchant, the way the PG sends them:
/// form-encoded CP949 with a valid MD5-form SignValue. Body `i` carries TID number `i`, so
/// distinct indices are distinct notifications.
struct SmartroBodies {
    static let merchantID = Config.smartroTestMID
    private let encodedName: String
    private let encodedGoods: String
    private let encodedMessage: String
    private let encodedCard: String

    init() throws {
        encodedName = try Self.percentCP949("홍길동")
        encodedGoods = try Self.percentCP949("테스트상품 똠방각하")
        encodedMessage = try Self.percentCP949("카드 결제 성공")
        encodedCard = try Self.percentCP949("삼성")
    }

    func body(_ i: Int) -> String {
        let tid = Self.merchantID + "0101" + Self.padded(i, to: 16)
        let sign = SmartroSignature.make(
            tid: tid, resultCode: "3001", merchantKey: Config.smartroTestKey, algorithm: .md5)
        let fields: [(String, String)] = [
            ("PayMethod", "CARD"), ("MID", Self.merchantID), ("MallUserID", "user1"),
            ("Amt", String(1000 + i % 90_000)), ("Name", encodedName), ("GoodsName", encodedGoods),
            ("TID", tid), ("OTID", tid), ("OID", "ORD" + Self.padded(i, to: 8)), ("AuthDate", "261123103000"),
            ("AuthCode", "30017594"), ("ResultCode", "3001"), ("ResultMsg", encodedMessage), ("StateCd", "0"),
            ("FnCd", "04"), ("FnName", encodedCard), ("pinNo", "5409%2A%2A%2A%2A%2A%2A%2A%2A1234"),
            ("CardQuota", "00"), ("BuyerEmail", "buyer%40example.com"), ("BuyerTel", "01098765432"),
            ("BuyerAuthNum", "8203151"), ("SignValue", Self.percentASCII(sign)),
        ]
        return fields.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    static func padded(_ n: Int, to width: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    static func percentASCII(_ text: String) -> String {
        percent(Array(text.utf8))
    }

    static func percent(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                out.append(byte)
            default:
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    struct EncodingFailure: Error, CustomStringConvertible { let description: String }

    /// UTF-8 text to percent-encoded CP949, through the system iconv (the daemon decodes with it).
    static func percentCP949(_ text: String) throws -> String {
        let converter = iconv_open("CP949", "UTF-8")
        guard let converter, converter != iconv_t(bitPattern: -1) else {
            throw EncodingFailure(description: "iconv has no CP949")
        }
        defer { iconv_close(converter) }
        var input = Array(text.utf8).map { CChar(bitPattern: $0) }
        var output = [CChar](repeating: 0, count: input.count * 2 + 8)
        let produced: Int = try input.withUnsafeMutableBufferPointer { inBuf in
            try output.withUnsafeMutableBufferPointer { outBuf in
                var inPtr: UnsafeMutablePointer<CChar>? = inBuf.baseAddress
                var inLeft = inBuf.count
                var outPtr: UnsafeMutablePointer<CChar>? = outBuf.baseAddress
                var outLeft = outBuf.count
                guard iconv(converter, &inPtr, &inLeft, &outPtr, &outLeft) != -1 else {
                    throw EncodingFailure(description: "cannot encode \(text) as CP949")
                }
                return outBuf.count - outLeft
            }
        }
        return percent(output.prefix(produced).map { UInt8(bitPattern: $0) })
    }
}
