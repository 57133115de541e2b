/// A request's `Content-Type`, read once: the media type and the `charset` parameter; other
/// parameters on demand.
public struct ContentType: Sendable, Equatable {
    /// Lowercased, e.g. `application/x-www-form-urlencoded`; empty when the header was empty.
    public let mediaType: String
    /// The raw `charset` parameter (`euc-kr`, `"UTF-8"` unquoted), nil when absent or empty.
    public let charsetLabel: String?
    private let header: String

    public init(_ header: String) {
        // Bytes, not Characters: this runs on every request.
        let bytes = Array(header.utf8)
        let end = bytes.firstIndex(of: UInt8(ascii: ";")) ?? bytes.endIndex
        mediaType = Self.lowercased(Self.trim(bytes[..<end]))
        charsetLabel = Self.parameter("charset", in: bytes)
        self.header = header
    }

    /// The value of the parameter `name` (case-insensitive), unquoted; nil when absent or empty.
    public func parameter(_ name: String) -> String? {
        Self.parameter(name.lowercased(), in: Array(header.utf8))
    }

    /// `name` must be lowercase. The first segment is the media type itself, never a parameter.
    private static func parameter(_ name: String, in bytes: [UInt8]) -> String? {
        for param in bytes.split(separator: UInt8(ascii: ";"), omittingEmptySubsequences: false).dropFirst() {
            guard let eq = param.firstIndex(of: UInt8(ascii: "=")) else { continue }
            guard lowercased(trim(param[param.startIndex..<eq])) == name else { continue }
            var value = trim(param[(eq + 1)...])
            if value.count >= 2, value.first == UInt8(ascii: "\""), value.last == UInt8(ascii: "\"") {
                value = value.dropFirst().dropLast()
            }
            return value.isEmpty ? nil : String(decoding: value, as: UTF8.self)
        }
        return nil
    }

    static func trim(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
        guard let first = s.firstIndex(where: { !isSpace($0) }), let last = s.lastIndex(where: { !isSpace($0) }) else {
            return []
        }
        return s[first...last]
    }

    static func lowercased(_ s: ArraySlice<UInt8>) -> String {
        String(decoding: s.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }, as: UTF8.self)
    }

    public static let formURLEncoded = "application/x-www-form-urlencoded"

    /// PGs post forms; an absent or empty media type is taken as one (some send none).
    public var isForm: Bool { mediaType.isEmpty || mediaType == Self.formURLEncoded }

}
