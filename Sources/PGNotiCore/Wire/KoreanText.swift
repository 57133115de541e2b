import Glibc
import Synchronization

/// The two text encodings Korean PGs actually send. EUC-KR is folded into
/// CP949 on purpose: CP949 is a superset, and PG servers running Windows
/// emit UHC-only syllables (똠, 햏, 뷁) while still labelling them "euc-kr".
public enum TextCharset: String, Sendable, Codable, CaseIterable {
    case cp949, utf8

    public init?(label: String) {
        let trimmed = label.unicodeScalars
            .drop(while: Self.isLabelNoise)
            .reversed().drop(while: Self.isLabelNoise).reversed()
        switch String(String.UnicodeScalarView(trimmed)).lowercased() {
        case "euc-kr", "euckr", "euc_kr", "ks_c_5601-1987", "ksc5601",
            "cp949", "ms949", "x-windows-949", "windows-949", "uhc":
            self = .cp949
        case "utf-8", "utf8":
            self = .utf8
        default:
            return nil
        }
    }

    /// The name events and logs use: `cp949` or `utf-8`.
    public var label: String { self == .cp949 ? "cp949" : "utf-8" }

    private static func isLabelNoise(_ s: Unicode.Scalar) -> Bool {
        s == "\"" || s == "'" || s.properties.isWhitespace
    }
}

/// How a provider decodes a body that declares no charset.
public enum CharsetSetting: Sendable, Equatable {
    case fixed(TextCharset)
    /// UTF-8 when every byte sequence is valid UTF-8, CP949 otherwise: for PG builds that post
    /// UTF-8 without saying so (Smartro §3.1.3 allows UTF-8 for ReturnURL posts). CP949 bytes of
    /// Hangul are almost never valid UTF-8, so the guess errs only on pure ASCII, where both agree.
    case auto

    public static let cp949 = CharsetSetting.fixed(.cp949)

    public func resolve(for body: FormBody) -> TextCharset {
        switch self {
        case .fixed(let charset): return charset
        case .auto:
            let valid = body.pairs.allSatisfy { KoreanText.isValidUTF8($0.name) && KoreanText.isValidUTF8($0.value) }
            return valid ? .utf8 : .cp949
        }
    }
}

public struct DecodedText: Sendable, Equatable {
    public let text: String
    /// True when at least one U+FFFD was substituted, so callers can flag the
    /// record instead of silently storing a mangled buyer name.
    public let isLossy: Bool

    public init(text: String, isLossy: Bool) {
        self.text = text
        self.isLossy = isLossy
    }
}

public enum KoreanText {
    public static func decode(_ bytes: some Collection<UInt8>, as charset: TextCharset) -> DecodedText {
        if bytes.allSatisfy({ $0 < 0x80 }) {
            return DecodedText(text: String(decoding: bytes, as: UTF8.self), isLossy: false)
        }
        switch charset {
        case .utf8:
            let text = String(decoding: bytes, as: UTF8.self)
            // A genuine U+FFFD in the input survives unchanged, so only a
            // byte-level difference means something was replaced.
            return DecodedText(text: text, isLossy: !text.utf8.elementsEqual(bytes))
        case .cp949:
            return decodeCP949(Array(bytes))
        }
    }

    public static func isValidUTF8(_ bytes: [UInt8]) -> Bool {
        if bytes.allSatisfy({ $0 < 0x80 }) { return true }
        return String(validating: bytes, as: UTF8.self) != nil
    }

    private static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    private static func decodeCP949(_ input: [UInt8]) -> DecodedText {
        guard let converter = ConverterPool.cp949.take() else {
            // No CP949 module (e.g. a stripped container): degrade to an
            // obviously lossy result rather than trapping on a live request.
            var out: [UInt8] = []
            for b in input { out += b < 0x80 ? [b] : replacement }
            return DecodedText(text: String(decoding: out, as: UTF8.self), isLossy: true)
        }
        defer { ConverterPool.cp949.give(back: converter) }
        let cd = converter.descriptor

        // A valid CP949 character of 2 bytes becomes at most 3 UTF-8 bytes, an invalid byte one
        // 3-byte replacement: three times the input always fits, so it is converted straight
        // into the result.
        var lossy = false
        let text = String(unsafeUninitializedCapacity: input.count * 3 + 4) { out in
            var produced = 0
            input.withUnsafeBufferPointer { inBuf in
                var consumed = 0
                while consumed < inBuf.count {
                    var inLeft = inBuf.count - consumed
                    var inPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(
                        mutating: inBuf.baseAddress! + consumed
                    ).assumingMemoryBound(to: CChar.self)
                    var outLeft = out.count - produced
                    var outPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(out.baseAddress! + produced)
                        .assumingMemoryBound(to: CChar.self)
                    let rc = iconv(cd, &inPtr, &inLeft, &outPtr, &outLeft)
                    let err = rc == -1 ? errno : 0
                    produced = out.count - outLeft
                    consumed = inBuf.count - inLeft
                    if rc != -1 { break }
                    func replace() {
                        for b in replacement where produced < out.count {
                            out[produced] = b
                            produced += 1
                        }
                        lossy = true
                    }
                    switch err {
                    case EINVAL:
                        // Input ends mid-character: PGs cut GoodsName at a byte limit and split
                        // the last syllable. Keep the prefix.
                        replace()
                        consumed = inBuf.count
                    default:
                        // EILSEQ (or anything unexpected, E2BIG cannot happen): resynchronise one
                        // byte later so a single bad byte does not eat the rest.
                        replace()
                        consumed = min(consumed + 1, inBuf.count)
                        _ = iconv(cd, nil, nil, nil, nil)
                    }
                }
            }
            return produced
        }
        return DecodedText(text: text, isLossy: lossy)
    }
}

/// An open iconv descriptor. It carries conversion state, and glibc does not make one safe to
/// share across threads, so each is used by one caller at a time.
final class Converter: @unchecked Sendable {
    let descriptor: iconv_t

    init?(to: String, from: String) {
        guard let cd = iconv_open(to, from), cd != iconv_t(bitPattern: -1) else { return nil }
        descriptor = cd
    }

    deinit { iconv_close(descriptor) }
}

/// Opening a descriptor loads and sets up glibc's conversion tables, which costs more than
/// converting a field; a small pool reuses them across requests and threads.
final class ConverterPool: Sendable {
    static let cp949 = ConverterPool(to: "UTF-8", from: "CP949")

    private let to: String
    private let from: String
    private let idle = Mutex<[Converter]>([])
    /// More than the cores that could convert at once; the rest are closed on return.
    private let capacity = 16

    init(to: String, from: String) {
        self.to = to
        self.from = from
    }

    func take() -> Converter? {
        if let reused = idle.withLock({ $0.popLast() }) { return reused }
        return Converter(to: to, from: from)
    }

    func give(back converter: Converter) {
        // Back to the initial shift state, so the next caller starts clean.
        _ = iconv(converter.descriptor, nil, nil, nil, nil)
        idle.withLock { pool in
            if pool.count < capacity { pool.append(converter) }
        }
    }
}
