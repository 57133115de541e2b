import Foundation

public enum SmartroSignAlgorithm: String, Sendable, Codable, CaseIterable {
    case md5, sha256, either
}

/// Smartro WEBLink `SignValue` (manual §3.2/§6.4).
///
/// The merchant key is spliced into the middle of the TID rather than
/// appended, so the signed text is built by character position. Two encodings
/// exist in the field: the older samples Base64 the *hex text* of an MD5
/// digest, newer builds Base64 the raw SHA-256 digest.
public enum SmartroSignature {
    public static func signedText(tid: String, resultCode: String, merchantKey: String) -> String {
        String(decoding: signedBytes(tid: tid, resultCode: resultCode, merchantKey: merchantKey), as: UTF8.self)
    }

    /// The same text as bytes. The manual splits the TID by position (1–10, 11–15, 16–); TIDs
    /// are ASCII, so a byte is a character here.
    static func signedBytes(tid: String, resultCode: String, merchantKey: String) -> [UInt8] {
        let t = Array(tid.utf8)
        func part(_ from: Int, _ to: Int?) -> ArraySlice<UInt8> {
            let lo = min(from, t.count)
            return t[lo..<max(lo, min(to ?? t.count, t.count))]
        }
        var out: [UInt8] = []
        out.reserveCapacity(t.count + resultCode.utf8.count + merchantKey.utf8.count)
        out += part(0, 10)
        out += resultCode.utf8
        out += part(10, 15)
        out += merchantKey.utf8
        out += part(15, nil)
        return out
    }

    /// The SignValue Smartro would send (algorithm must be .md5 or .sha256; .either → sha256).
    public static func make(tid: String, resultCode: String, merchantKey: String, algorithm: SmartroSignAlgorithm)
        -> String
    {
        let text = signedBytes(tid: tid, resultCode: resultCode, merchantKey: merchantKey)
        return Data(expectedBytes(text, algorithm == .md5 ? .md5 : .sha256)).base64EncodedString()
    }

    /// nil when it does not verify; otherwise the concrete algorithm (.md5 or .sha256) that matched.
    public static func verify(
        signValue: String, tid: String, resultCode: String, merchantKey: String, allowed: SmartroSignAlgorithm
    ) -> SmartroSignAlgorithm? {
        let received = candidates(signValue)
        guard !received.isEmpty else { return nil }
        let text = signedBytes(tid: tid, resultCode: resultCode, merchantKey: merchantKey)

        let order: [SmartroSignAlgorithm] =
            switch allowed {
            case .md5: [.md5]
            case .sha256: [.sha256]
            case .either: [.sha256, .md5]
            }
        for algorithm in order {
            let expected = expectedBytes(text, algorithm)
            // An empty digest means libcrypto refused the algorithm; it must
            // never "match" an empty SignValue.
            guard !expected.isEmpty else { continue }
            for candidate in received {
                let got = algorithm == .md5 ? asciiLowercased(candidate) : candidate
                if constantTimeEquals(got, expected) { return algorithm }
            }
        }
        return nil
    }

    private static func expectedBytes(_ text: [UInt8], _ algorithm: SmartroSignAlgorithm) -> [UInt8] {
        switch algorithm {
        case .md5:
            let digest = Digest.md5(text)
            return digest.isEmpty ? [] : Array(Digest.hex(digest).utf8)
        case .sha256, .either:
            return Digest.sha256(text)
        }
    }

    /// Decodings of a SignValue as it may arrive in a form post. Merchants'
    /// relays often forward Base64 unescaped, so `+` becomes a space; a
    /// leading/trailing space is then ambiguous (a `+` or padding noise), so
    /// both readings are tried. Works on bytes: this runs on every Smartro post.
    static func candidates(_ signValue: String) -> [[UInt8]] {
        // Other whitespace (CR, LF, tab) is line-wrapping noise; spaces stand for `+`.
        let whole = signValue.utf8.filter { $0 == 0x20 || !(0x09...0x0D).contains($0) }
        var texts = [whole]
        let first = whole.firstIndex { $0 != 0x20 } ?? whole.endIndex
        let last = whole.lastIndex { $0 != 0x20 }.map { $0 + 1 } ?? first
        if first != 0 || last != whole.count { texts.append(Array(whole[first..<max(first, last)])) }

        var out: [[UInt8]] = []
        for text in texts {
            var b64 = text.map { $0 == 0x20 ? UInt8(ascii: "+") : $0 }
            while b64.last == UInt8(ascii: "=") { b64.removeLast() }
            guard !b64.isEmpty else { continue }
            b64 += Array(repeating: UInt8(ascii: "="), count: (4 - b64.count % 4) % 4)
            if let data = Data(base64Encoded: Data(b64)) { out.append(Array(data)) }
        }
        return out
    }

    private static func asciiLowercased(_ bytes: [UInt8]) -> [UInt8] {
        bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }
}
