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
        let t = Array(tid)
        func part(_ from: Int, _ to: Int?) -> String {
            let lo = min(from, t.count)
            let hi = min(to ?? t.count, t.count)
            return String(t[lo..<hi])
        }
        return part(0, 10) + resultCode + part(10, 15) + merchantKey + part(15, nil)
    }

    /// The SignValue Smartro would send (algorithm must be .md5 or .sha256; .either → sha256).
    public static func make(tid: String, resultCode: String, merchantKey: String, algorithm: SmartroSignAlgorithm)
        -> String
    {
        let text = Array(signedText(tid: tid, resultCode: resultCode, merchantKey: merchantKey).utf8)
        return Data(expectedBytes(text, algorithm == .md5 ? .md5 : .sha256)).base64EncodedString()
    }

    /// nil when it does not verify; otherwise the concrete algorithm (.md5 or .sha256) that matched.
    public static func verify(
        signValue: String, tid: String, resultCode: String, merchantKey: String, allowed: SmartroSignAlgorithm
    ) -> SmartroSignAlgorithm? {
        let received = candidates(signValue)
        guard !received.isEmpty else { return nil }
        let text = Array(signedText(tid: tid, resultCode: resultCode, merchantKey: merchantKey).utf8)

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
    /// both readings are tried.
    private static func candidates(_ signValue: String) -> [[UInt8]] {
        let stripped = signValue.unicodeScalars.filter { $0 == " " || !$0.properties.isWhitespace }
        let whole = String(String.UnicodeScalarView(stripped))
        var texts = [whole]
        let trimmed = String(whole.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
        if trimmed != whole { texts.append(trimmed) }

        var out: [[UInt8]] = []
        for text in texts {
            var b64 = String(text.map { $0 == " " ? "+" : $0 })
            while b64.hasSuffix("=") { b64.removeLast() }
            guard !b64.isEmpty else { continue }
            b64 += String(repeating: "=", count: (4 - b64.count % 4) % 4)
            if let data = Data(base64Encoded: b64) { out.append(Array(data)) }
        }
        return out
    }

    private static func asciiLowercased(_ bytes: [UInt8]) -> [UInt8] {
        bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
    }
}
