import CPGNotiOpenSSL

/// Digests via the system libcrypto, so the daemon follows the distribution's
/// OpenSSL security updates instead of carrying its own hash code.
public enum Digest {
    /// Empty only if libcrypto refuses the algorithm (e.g. MD5 under FIPS).
    public static func md5(_ bytes: some Collection<UInt8>) -> [UInt8] {
        digest(Array(bytes), EVP_md5())
    }

    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        digest(Array(bytes), EVP_sha256())
    }

    /// Lowercase, because PG sample code compares against PHP's `md5()` output.
    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// HMAC-SHA256 (RFC 2104); empty only if libcrypto fails to allocate.
    public static func hmacSHA256(key: [UInt8], message: some Collection<UInt8>) -> [UInt8] {
        let input = Array(message)
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { keyBuf in
            input.withUnsafeBytes { inBuf in
                out.withUnsafeMutableBufferPointer { outBuf in
                    HMAC(
                        EVP_sha256(), keyBuf.baseAddress, Int32(keyBuf.count),
                        inBuf.baseAddress?.assumingMemoryBound(to: UInt8.self), inBuf.count, outBuf.baseAddress,
                        &length)
                }
            }
        }
        guard result != nil else { return [] }
        return Array(out[0..<Int(length)])
    }

    private static func digest(_ input: [UInt8], _ md: OpaquePointer?) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = input.withUnsafeBytes { inBuf in
            out.withUnsafeMutableBufferPointer { outBuf in
                EVP_Digest(inBuf.baseAddress, inBuf.count, outBuf.baseAddress, &length, md, nil)
            }
        }
        // EVP_Digest only fails on allocation failure or a disabled algorithm
        // (FIPS builds refuse MD5). An empty digest makes signature checks
        // fail closed instead of taking the daemon down on every request.
        guard ok == 1 else { return [] }
        return Array(out[0..<Int(length)])
    }
}

/// Compares signatures without leaking, through timing, how many leading
/// bytes matched. Length is not secret (it is fixed by the algorithm).
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            CRYPTO_memcmp(pa.baseAddress, pb.baseAddress, pa.count) == 0
        }
    }
}
