/// Payup key-in API request signatures ("카드결제 구인증 API 규격서" v1.3, 참고 2.1.1 and 2.2.1):
/// the lowercase hex SHA-256 of the parameters joined with `|`.
///
/// The manual says "(공백제거)": blanks are removed from the joined text before hashing. pgnoti
/// removes ASCII whitespace (space, tab, CR, LF), so a key read from a file with its newline,
/// or an order number padded with a space, signs the same as the bare value.
public enum PayupSignature {
    /// `sha256({merchantId}|{orderNumber}|{amount}|{apiCertKey}|{timestamp})`.
    public static func approve(
        merchantID: String, orderNumber: String, amount: String, apiCertKey: String, timestamp: String
    ) -> String {
        sign([merchantID, orderNumber, amount, apiCertKey, timestamp])
    }

    /// `sha256({merchantId}|{transactionId}|{apiCertKey})`.
    public static func cancel(merchantID: String, transactionID: String, apiCertKey: String) -> String {
        sign([merchantID, transactionID, apiCertKey])
    }

    public static func verifyApprove(
        _ signature: String, merchantID: String, orderNumber: String, amount: String, apiCertKey: String,
        timestamp: String
    ) -> Bool {
        matches(
            signature,
            approve(
                merchantID: merchantID, orderNumber: orderNumber, amount: amount, apiCertKey: apiCertKey,
                timestamp: timestamp))
    }

    public static func verifyCancel(
        _ signature: String, merchantID: String, transactionID: String, apiCertKey: String
    ) -> Bool {
        matches(signature, cancel(merchantID: merchantID, transactionID: transactionID, apiCertKey: apiCertKey))
    }

    /// The exact bytes that are hashed.
    static func signedBytes(_ parts: [String]) -> [UInt8] {
        Array(parts.joined(separator: "|").utf8).filter { !isBlank($0) }
    }

    private static func sign(_ parts: [String]) -> String {
        let digest = Digest.sha256(signedBytes(parts))
        // An empty digest (libcrypto refused) yields "", which `matches` never accepts.
        return digest.isEmpty ? "" : Digest.hex(digest)
    }

    /// Hex is compared case-insensitively (a signer may print it upper case), in constant time.
    private static func matches(_ presented: String, _ expected: String) -> Bool {
        guard !expected.isEmpty else { return false }
        let received = presented.utf8.filter { !isBlank($0) }.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
        return constantTimeEquals(received, Array(expected.utf8))
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }
}
