import Glibc

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

    private static func isLabelNoise(_ s: Unicode.Scalar) -> Bool {
        s == "\"" || s == "'" || s.properties.isWhitespace
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
        let input = Array(bytes)
        if input.allSatisfy({ $0 < 0x80 }) {
            return DecodedText(text: String(decoding: input, as: UTF8.self), isLossy: false)
        }
        switch charset {
        case .utf8:
            let text = String(decoding: input, as: UTF8.self)
            // A genuine U+FFFD in the input survives unchanged, so only a
            // byte-level difference means something was replaced.
            return DecodedText(text: text, isLossy: !text.utf8.elementsEqual(input))
        case .cp949:
            return decodeCP949(input)
        }
    }

    /// The raw `charset` parameter of a Content-Type header value, e.g. `application/x-www-form-urlencoded; charset=euc-kr` → "euc-kr"; nil when absent. Case-insensitive param name, quoted values allowed.
    public static func charsetLabel(ofContentType contentType: String?) -> String? {
        guard let contentType else { return nil }
        // The first segment is the media type itself, never a parameter.
        for param in contentType.split(separator: ";", omittingEmptySubsequences: true).dropFirst() {
            guard let eq = param.firstIndex(of: "=") else { continue }
            let name = trimSpaces(param[param.startIndex..<eq])
            guard name.lowercased() == "charset" else { continue }
            var value = trimSpaces(param[param.index(after: eq)...])
            if value.count >= 2, value.first == "\"", value.last == "\"" {
                value = String(value.dropFirst().dropLast())
            }
            return value.isEmpty ? nil : value
        }
        return nil
    }

    private static func trimSpaces(_ s: Substring) -> String {
        let scalars = s.unicodeScalars
            .drop(while: { $0.properties.isWhitespace })
            .reversed().drop(while: { $0.properties.isWhitespace }).reversed()
        return String(String.UnicodeScalarView(scalars))
    }

    private static let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]

    private static func decodeCP949(_ input: [UInt8]) -> DecodedText {
        // A descriptor per call: iconv_t carries conversion state and glibc
        // does not make it safe to share across threads.
        let cd = iconv_open("UTF-8", "CP949")
        guard let cd, cd != iconv_t(bitPattern: -1) else {
            // No CP949 module (e.g. a stripped container): degrade to an
            // obviously lossy result rather than trapping on a live request.
            var out: [UInt8] = []
            for b in input { out += b < 0x80 ? [b] : replacement }
            return DecodedText(text: String(decoding: out, as: UTF8.self), isLossy: true)
        }
        defer { iconv_close(cd) }

        var output: [UInt8] = []
        output.reserveCapacity(input.count * 2)
        var lossy = false
        // CP949 is at most 2 bytes per character, UTF-8 for Hangul 3, so this
        // chunk holds a full conversion of a typical field in one pass.
        var chunk = [UInt8](repeating: 0, count: max(64, input.count * 2 + 8))

        input.withUnsafeBufferPointer { inBuf in
            var consumed = 0
            while consumed < inBuf.count {
                var inLeft = inBuf.count - consumed
                var inPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(
                    mutating: inBuf.baseAddress! + consumed
                ).assumingMemoryBound(to: CChar.self)
                let (rc, err, produced): (Int, Int32, Int) = chunk.withUnsafeMutableBufferPointer { outBuf in
                    var outLeft = outBuf.count
                    var outPtr: UnsafeMutablePointer<CChar>? = UnsafeMutableRawPointer(outBuf.baseAddress!)
                        .assumingMemoryBound(to: CChar.self)
                    let rc = iconv(cd, &inPtr, &inLeft, &outPtr, &outLeft)
                    let err = rc == -1 ? errno : 0
                    return (rc, err, outBuf.count - outLeft)
                }
                output.append(contentsOf: chunk[0..<produced])
                consumed = inBuf.count - inLeft
                if rc != -1 { break }
                switch err {
                case E2BIG:
                    continue
                case EINVAL:
                    // Input ends mid-character: PGs cut GoodsName at a byte
                    // limit and split the last syllable. Keep the prefix.
                    output += replacement
                    lossy = true
                    consumed = inBuf.count
                default:
                    // EILSEQ (or anything unexpected): resynchronise one byte
                    // later so a single bad byte does not eat the rest.
                    output += replacement
                    lossy = true
                    consumed = min(consumed + 1, inBuf.count)
                    _ = iconv(cd, nil, nil, nil, nil)
                }
            }
        }
        return DecodedText(text: String(decoding: output, as: UTF8.self), isLossy: lossy)
    }
}
